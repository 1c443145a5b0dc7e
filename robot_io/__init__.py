"""PyBullet table-top tasks with a Franka Panda behind the gymnasium API (placeholder until the sim lands)."""
