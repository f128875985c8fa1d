"""recsys: learned embeddings of categorical data, two-tower retrieval, bundles.

The public API (everything else is internal and may move):
- `recsys.load_config(path, overrides=())`: a validated config of any kind.
- `recsys.train(config, output)`: train the config's model kind, write its
  bundle (what `recsys train` runs); `write=False` keeps it in memory.
- `recsys.load_bundle(path)`: load a bundle of any model kind; the bundle
  classes `Bundle` (two-tower retrieval), `TabularBundle`, `TextBundle`.
- `recsys.TwoStageRecommender`: retrieval then a tabular re-ranker.
- `recsys.similar_words(bundle, word, k)`: a text bundle's nearest words.
- `recsys.layers` and `recsys.models`: the Keras layers and models.

Keras runs on JAX unless `KERAS_BACKEND` says otherwise: JAX is the
fastest backend here on CPU and GPU (benchmarks/RESULTS.md), and the CLI,
the service and the Python API must agree. Importing recsys imports
neither Keras nor TensorFlow; each loads when first needed.
"""

import os

# Before Keras is imported (by any recsys module), so that the default
# applies; an explicit KERAS_BACKEND, or Keras already imported, wins.
os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use so that
# `import recsys` stays cheap and Keras-free.
_PUBLIC = {
    "Bundle": "recsys.bundles.two_tower",
    "TabularBundle": "recsys.bundles.tabular",
    "TextBundle": "recsys.bundles.text",
    "TrainResult": "recsys.kinds.base",
    "TwoStageRecommender": "recsys.two_stage",
    "load_bundle": "recsys.bundles",
    "load_config": "recsys.config",
    "similar_words": "recsys.bundles.text",
    "train": "recsys.kinds.run",
}


# Modules the README calls through `recsys.` (`recsys.batch.recommend_all`,
# `recsys.tune.tune`), imported on first use too.
_SUBMODULES = ("batch", "layers", "models", "tune", "two_stage")


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"recsys.{name}")
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, *_SUBMODULES])


__all__ = [*sorted(_PUBLIC), "__version__"]
