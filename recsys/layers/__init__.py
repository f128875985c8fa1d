"""Keras layers of recsys."""

from recsys.layers.auxiliary_head import AuxiliaryHead
from recsys.layers.cross_network import CrossNetwork
from recsys.layers.dlrm_interaction import DLRMInteraction
from recsys.layers.embedding_stack import EmbeddingStack
from recsys.layers.multi_hash_embedding import MultiHashEmbedding
from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.layers.remove_accidental_hits import RemoveAccidentalHits
from recsys.layers.sequence_encoder import SequenceEncoder
from recsys.layers.sparse_rows_embedding import SparseRowsEmbedding
from recsys.layers.wide_biases import WideBiases

__all__ = [
    "AuxiliaryHead",
    "CrossNetwork",
    "DLRMInteraction",
    "EmbeddingStack",
    "MultiHashEmbedding",
    "PooledEmbedding",
    "RemoveAccidentalHits",
    "SequenceEncoder",
    "SparseRowsEmbedding",
    "WideBiases",
]
