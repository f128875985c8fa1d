"""Item indexes: exact (numpy) and approximate (ScaNN) inner product search."""

from recsys.index.brute_force_index import BruteForceIndex
from recsys.index.builder import BRUTE_FORCE_MAX_ITEMS
from recsys.index.builder import SUPPORTED_KINDS
from recsys.index.builder import build_index
from recsys.index.builder import build_index_from_config
from recsys.index.builder import load_index
from recsys.index.recall import recall_against_exact
from recsys.index.scann_index import ScannIndex
from recsys.index.tuning import DEFAULT_RECALL_TARGET

__all__ = [
    "BRUTE_FORCE_MAX_ITEMS",
    "DEFAULT_RECALL_TARGET",
    "SUPPORTED_KINDS",
    "BruteForceIndex",
    "ScannIndex",
    "build_index",
    "build_index_from_config",
    "load_index",
    "recall_against_exact",
]
