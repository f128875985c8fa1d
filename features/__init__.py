"""Feature specs, stable hashing and the `Preprocessor`."""

from features.hashing import canonical_string
from features.hashing import canonical_strings
from features.hashing import multi_hash
from features.hashing import recommended_buckets
from features.hashing import stable_hash
from features.preprocessor import NotFittedError
from features.preprocessor import Preprocessor
from features.pretrained import VectorFileError
from features.pretrained import embedding_matrix
from features.pretrained import load_vectors
from features.specs import BucketizedFeature
from features.specs import CategoricalFeature
from features.specs import MultiCategoricalFeature
from features.specs import NumericFeature
from features.specs import TextFeature
from features.specs import default_embedding_dim
from features.specs import feature_from_config

__all__ = [
    "BucketizedFeature",
    "CategoricalFeature",
    "MultiCategoricalFeature",
    "NotFittedError",
    "NumericFeature",
    "Preprocessor",
    "TextFeature",
    "VectorFileError",
    "canonical_string",
    "canonical_strings",
    "default_embedding_dim",
    "embedding_matrix",
    "feature_from_config",
    "load_vectors",
    "multi_hash",
    "recommended_buckets",
    "stable_hash",
]
