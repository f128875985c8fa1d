"""Keras layers of recsys."""

from recsys.layers.multi_hash_embedding import MultiHashEmbedding
from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.layers.remove_accidental_hits import RemoveAccidentalHits

__all__ = ["MultiHashEmbedding", "PooledEmbedding", "RemoveAccidentalHits"]
