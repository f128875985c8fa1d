"""recsys/baselines."""
