"""Training: optimiser and schedule, EMA, reproducible RNG state for bit-exact resume."""
