"""Example configs for other people's tables (README, "Configs"); data only."""
