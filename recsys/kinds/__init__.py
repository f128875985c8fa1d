"""recsys/kinds."""
