"""Small utilities shared by every package: atomic file writes, seeding, progress and logging."""
