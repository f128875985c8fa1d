"""Data sets and splits."""

from recsys.data.movielens import load_movielens
from recsys.data.split import temporal_split
from recsys.data.synthetic import SyntheticInteractions

__all__ = ["SyntheticInteractions", "load_movielens", "temporal_split"]
