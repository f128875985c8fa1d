"""recsys: learned embeddings of categorical data, two-tower retrieval, bundles.

The public API:
- `recsys.Bundle`: load a trained bundle and `recommend(user_ids, k)`.
- `recsys.load_bundle(path)`: load a bundle of any model kind.
- `recsys.TextBundle` and `recsys.similar_words(bundle, word, k)`: text
  classifiers (`model.kind = "text"`) and their nearest words.
- `recsys.models`: `TwoTower`, `Tower`; `recsys.layers`: Keras layers.
- `recsys.config.load_config` and `recsys.kinds.two_tower.train_bundle`: the
  config-driven training that `recsys train` runs.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Importing recsys must not import Keras: the backend is chosen by the
    # KERAS_BACKEND variable, which callers (and the CLI) may still set.
    if name == "Bundle":
        from recsys.bundles.two_tower import Bundle

        return Bundle
    if name == "TextBundle":
        from recsys.bundles.text import TextBundle

        return TextBundle
    if name == "similar_words":
        from recsys.bundles.text import similar_words

        return similar_words
    if name == "load_bundle":
        from recsys.bundles.two_tower import load_bundle

        return load_bundle
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


__all__ = [
    "Bundle",
    "TextBundle",
    "__version__",
    "load_bundle",
    "similar_words",
]
