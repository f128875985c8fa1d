"""Feature specs, stable hashing and the `Preprocessor`."""

from recsys.features.hashing import canonical_string
from recsys.features.hashing import canonical_strings
from recsys.features.hashing import multi_hash
from recsys.features.hashing import recommended_buckets
from recsys.features.hashing import stable_hash
from recsys.features.preprocessor import NotFittedError
from recsys.features.preprocessor import Preprocessor
from recsys.features.pretrained import VectorFileError
from recsys.features.pretrained import embedding_matrix
from recsys.features.pretrained import load_vectors
from recsys.features.specs import BucketizedFeature
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import MultiCategoricalFeature
from recsys.features.specs import NumericFeature
from recsys.features.specs import TextFeature
from recsys.features.specs import default_embedding_dim
from recsys.features.specs import feature_from_config

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
