"""Data sets and splits."""

from recsys.data.movielens import load_movielens
from recsys.data.split import temporal_split

__all__ = ["load_movielens", "temporal_split"]
