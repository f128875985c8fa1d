"""recsys/evaluation."""
