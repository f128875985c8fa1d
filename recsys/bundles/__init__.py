"""recsys/bundles."""
