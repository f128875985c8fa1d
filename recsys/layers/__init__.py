"""Keras layers of recsys."""

from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.layers.remove_accidental_hits import RemoveAccidentalHits

__all__ = ["PooledEmbedding", "RemoveAccidentalHits"]
