"""Text-classifier bundles: the text preprocessor, the model and its classes.

A `model.kind = "text"` bundle directory holds `manifest.json`,
`metrics.json`, `preprocessor.json` (the tokenizer and vocabulary),
`model.keras` (the `TextClassifier`) and the class labels in the manifest.
It is written atomically, like every bundle (`recsys.bundles.two_tower`).
"""

import os
import threading

import numpy as np
import pandas as pd

from recsys.bundles.two_tower import COMMON_FILES
from recsys.bundles.two_tower import ManifestProperties
from recsys.bundles.two_tower import open_bundle
from recsys.bundles.two_tower import read_preprocessor
from recsys.bundles.two_tower import write_atomically
from recsys.bundles.two_tower import write_manifest
from recsys.data.texts import check_texts
from recsys.errors import positive_int
from recsys.evaluation.classification import class_probabilities
from recsys.storage.files import BundleError
from recsys.storage.files import load_keras_bytes

KIND = "text"
FILES = (*COMMON_FILES, "model.keras")


def write_text_bundle(path, *, config, metrics, preprocessor, model, classes):
    """Writes a text-classifier bundle directory atomically.

    Args:
        path: str. Destination directory (an existing bundle is replaced).
        config: dict. The run config.
        metrics: dict. Written to `metrics.json` and the manifest.
        preprocessor: the fitted `features.Preprocessor`.
        model: the trained `recsys.models.TextClassifier`.
        classes: list. Class labels, in the model's output order.

    Returns:
        The absolute path of the bundle.
    """

    def fill(tmp):
        preprocessor.save(os.path.join(tmp, "preprocessor.json"))
        model.save(os.path.join(tmp, "model.keras"))
        write_manifest(
            tmp, kind=KIND, config=config, metrics=metrics, classes=classes
        )

    return write_atomically(path, fill, KIND)


class TextBundle(ManifestProperties):
    """A loaded text classifier: texts in, class probabilities out.

    Use `TextBundle.load(path)` (or `recsys.load_bundle(path)`).

    Example:

    ```python
    bundle = TextBundle.load("artifacts/tweets_text")
    bundle.predict_proba(["Thank you Iowa! #MAGA"])  # [[0.65, 0.35]]
    bundle.predict_labels(["Thank you Iowa! #MAGA"])  # ["android"]
    similar_words(bundle, "hillary", k=5)
    ```
    """

    def __init__(self, path, manifest, preprocessor, model):
        self.path = path
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.model = model
        # Keras' `predict` keeps per-call state on the model: two threads in
        # it at once broke it for good (`'NoneType' object is not callable`).
        self._predict_lock = threading.Lock()
        self.classes = list(manifest["classes"])
        self.text_column = manifest["config"]["data"]["text"]
        self.input_columns = [self.text_column]  # what `predict` reads

    @classmethod
    def load(cls, path):
        """Loads a bundle directory written by `recsys train`.

        Raises:
            BundleError: if the directory is missing, incomplete, corrupt
                or holds another kind of bundle.
        """
        files, manifest = open_bundle(path, KIND, FILES, FILES)
        with files:
            files.read("metrics.json")  # checked, though read on demand
            preprocessor = read_preprocessor(files)
            model_bytes = files.read("model.keras")
        where = os.path.join(path, "model.keras")
        model = load_keras_bytes(model_bytes, where)
        classes = manifest.get("classes")
        outputs = getattr(model, "num_classes", None)
        if not isinstance(classes, list) or len(classes) != outputs:
            raise BundleError(
                f"{where} scores {outputs} classes and {path}/manifest.json "
                f"lists {str(classes)[:80]}: they must agree. Fix: retrain "
                "the bundle."
            )
        return cls(path, manifest, preprocessor, model)

    def token_ids(self, texts):
        """The model's input: `(n, sequence_length)` token ids.

        Args:
            texts: a string; a list, array or Series of strings; or a
                DataFrame holding the bundle's text column.

        Raises:
            ValueError: for a value that is not a string, or an empty text.
            KeyError: for a DataFrame without the text column.
        """
        column = self.text_column
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, pd.DataFrame):
            if column not in texts.columns:
                raise KeyError(
                    f"Column '{column}' (the texts) is missing from the "
                    f"input. Available columns: {list(texts.columns)}."
                )
            texts = texts[column]
        texts = pd.Series(list(texts), dtype=object)
        check_texts(texts, column)
        return self.preprocessor.transform_column(column, texts)

    def predict_proba(self, texts, batch_size=1024):
        """Class probabilities, `(n, num_classes)`, in `classes` order.

        Args:
            texts: see `token_ids`.
            batch_size: int. Texts per model call.
        """
        batch_size = positive_int(batch_size, "batch_size")
        ids = self.token_ids(texts)
        if not len(ids):
            return np.zeros((0, len(self.classes)), np.float32)
        with self._predict_lock:
            output = self.model.predict(ids, batch_size=batch_size, verbose=0)
        return class_probabilities(output).astype(np.float32)

    def predict(self, texts, batch_size=1024):
        """What the model outputs, as every bundle's `predict` does.

        Returns:
            `(n,)` positive-class probabilities for two classes (the
            positive class is `classes[1]`), else `(n, num_classes)`.
            `recsys score` and `recsys predict --input` write these.
        """
        probabilities = self.predict_proba(texts, batch_size=batch_size)
        return probabilities[:, 1] if len(self.classes) == 2 else probabilities

    def predict_labels(self, texts, batch_size=1024):
        """The most probable class of each text (a numpy array of labels)."""
        probabilities = self.predict_proba(texts, batch_size=batch_size)
        return np.asarray(self.classes, dtype=object)[probabilities.argmax(1)]

    def word_vectors(self):
        """`(words, matrix)`: the vocabulary and its rows of the embedding.

        Padding and out-of-vocabulary rows are left out, so `matrix[i]` is
        the vector of `words[i]`. An open (hashed) vocabulary has no words.
        """
        name = self.text_column
        words = self.preprocessor.vocabularies_.get(name)
        if words is None:
            raise ValueError(
                f"Text feature '{name}' hashes its tokens "
                '(vocabulary = "hash"): there are no words to look up.'
            )
        table = np.asarray(self.model.embedding.embeddings)
        offset = 1 + self.preprocessor.feature(name).num_oov_buckets
        return list(words), table[offset : offset + len(words)]


def similar_words(bundle, word, k=10):
    """The `k` words nearest to `word` by cosine similarity of embeddings.

    Args:
        bundle: a `TextBundle`.
        word: str. A word of the vocabulary (lowercased, as the tokenizer
            does: `"Hillary"` looks up `"hillary"`).
        k: int. How many neighbours (at most every other word).

    Returns:
        list of `(word, cosine similarity)`, nearest first, `word` left out.

    Raises:
        KeyError: if `word` is not in the vocabulary.

    Example:

    ```python
    similar_words(TextBundle.load("artifacts/tweets_text"), "crooked", 5)
    ```
    """
    k = positive_int(k, "k")
    if not callable(getattr(bundle, "word_vectors", None)):
        raise TypeError(
            "similar_words reads a text bundle's word vectors. Received: "
            f"{type(bundle).__name__}. Fix: pass a TextBundle (a two-tower "
            "bundle's neighbours are Bundle.similar_items)."
        )
    words, matrix = bundle.word_vectors()
    position = {w: i for i, w in enumerate(words)}
    key = str(word).strip().lower()  # the tokenizer lowercases
    if key not in position:
        raise KeyError(
            f"{word!r} is not in the vocabulary of {len(words)} words. Fix: "
            "try another word, or a lower `min_frequency` at training time."
        )
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    unit = matrix / norms[:, None]
    similarity = unit @ unit[position[key]]
    similarity[position[key]] = -np.inf
    # Every other word at most: `word` itself (at -inf) never.
    order = np.argsort(-similarity, kind="stable")[: min(k, len(words) - 1)]
    return [(words[i], float(similarity[i])) for i in order]
