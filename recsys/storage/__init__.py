"""recsys/storage."""
