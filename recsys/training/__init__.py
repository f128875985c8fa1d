"""recsys/training."""
