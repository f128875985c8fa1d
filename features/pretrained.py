"""Pretrained word vectors (GloVe, word2vec) as embedding weights.

Reads the GloVe text format (`word v1 ... vd` per line), the word2vec text
format (the same after a `count dim` header line) and the word2vec binary
format (`count dim` header, then per word: the word, a space, `dim` float32
little-endian values), and aligns the vectors with a fitted vocabulary.
"""

import os
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from recsys.features.specs import CategoricalFeature

if TYPE_CHECKING:
    from recsys.features.preprocessor import Preprocessor

SUPPORTED_FORMATS = ("auto", "glove", "word2vec", "word2vec_binary")


class VectorFileError(ValueError):
    """A vector file is missing, corrupt, or of the wrong dimension."""


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise VectorFileError(f"Vector file {path} is empty.")
    first = head.split(b"\n", 1)[0].split()
    header = len(first) == 2 and all(p.isdigit() for p in first)
    if header:
        rest = head.split(b"\n", 1)[1] if b"\n" in head else b""
        # Packed floats are almost never valid UTF-8; text vectors are.
        try:
            rest.decode("utf-8")
        except UnicodeDecodeError:
            return "word2vec_binary"
        return "word2vec"
    return "glove"


def _read_text(
    path: str, wanted: Collection[str] | None, skip_header: bool
) -> tuple[list[str], list[np.ndarray], int | None]:
    words, vectors, dim = [], [], None
    with open(path, encoding="utf-8", errors="strict") as f:
        if skip_header:
            f.readline()
        for number, line in enumerate(f, start=1 + skip_header):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) < 2:
                continue  # blank line
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise VectorFileError(
                    f"{path}, line {number}: {len(parts) - 1} values, but the "
                    f"file's vectors have {dim}. The file is corrupt."
                )
            if wanted is not None and parts[0] not in wanted:
                continue
            try:
                vectors.append(np.array(parts[1:], dtype=np.float32))
            except ValueError:
                raise VectorFileError(
                    f"{path}, line {number}: non-numeric values."
                ) from None
            words.append(parts[0])
    return words, vectors, dim


def _read_binary(
    path: str, wanted: Collection[str] | None
) -> tuple[list[str], list[np.ndarray], int | None]:
    words, vectors = [], []
    with open(path, "rb") as f:
        try:
            count, dim = map(int, f.readline().split())
        except ValueError:
            raise VectorFileError(f"{path}: bad word2vec header.") from None
        size = 4 * dim
        for number in range(count):
            word = bytearray()
            while (char := f.read(1)) != b" ":
                if not char:
                    raise VectorFileError(
                        f"{path}: truncated after {number} of {count} vectors."
                    )
                if char != b"\n":
                    word += char
            data = f.read(size)
            if len(data) != size:
                raise VectorFileError(
                    f"{path}: truncated after {number} of {count} vectors."
                )
            text = word.decode("utf-8", errors="replace")
            if wanted is None or text in wanted:
                words.append(text)
                vectors.append(np.frombuffer(data, dtype="<f4").copy())
    return words, vectors, dim


def load_vectors(
    path: str, format: str = "auto", words: Collection[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Reads word vectors.

    Args:
        path: str. The vector file.
        format: str. `"glove"`, `"word2vec"` (text), `"word2vec_binary"`,
            or `"auto"` (from the header and the bytes). Defaults to
            `"auto"`.
        words: optional set of words to keep (the rest is skipped).

    Returns:
        `(words, vectors)`: a list of words and a float32 array
        `(len(words), dim)`.

    Raises:
        VectorFileError: for a missing, empty or corrupt file.
    """
    if format not in SUPPORTED_FORMATS:
        raise ValueError(
            f"`format` must be one of {SUPPORTED_FORMATS}. "
            f"Received: format={format!r}"
        )
    if not os.path.isfile(path):
        raise VectorFileError(f"Vector file not found: {path}")
    if format == "auto":
        format = _sniff(path)
    try:
        if format == "word2vec_binary":
            found, vectors, dim = _read_binary(path, words)
        else:
            found, vectors, dim = _read_text(path, words, format == "word2vec")
    except UnicodeDecodeError:
        raise VectorFileError(
            f"{path} is not UTF-8 text; for word2vec binary files pass "
            'format="word2vec_binary".'
        ) from None
    if dim is None:
        raise VectorFileError(f"Vector file {path} holds no vectors.")
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
    return found, matrix


def embedding_matrix(
    preprocessor: "Preprocessor",
    name: str,
    path: str,
    format: str = "auto",
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Embedding weights for feature `name`, aligned with its vocabulary.

    Rows of words found in the file are their vectors; the padding row 0 is
    zeros; out-of-vocabulary rows and words missing from the file are drawn
    from a normal distribution with the found vectors' standard deviation.

    Args:
        preprocessor: a fitted `Preprocessor`.
        name: str. A categorical or text feature with an exact vocabulary.
        path: str. The vector file. format: see `load_vectors`.
        seed: int. Seed of the random rows.

    Returns:
        `(matrix, coverage)`: float32 `(input_dim, dim)` and the share of
        the vocabulary found in the file.

    Raises:
        VectorFileError: if the file's dimension differs from the feature's
            `embedding_dim`.
    """
    feature = preprocessor.feature(name)
    exact = getattr(feature, "vocabulary", None) == "exact"
    if not isinstance(feature, CategoricalFeature) or not exact:
        raise ValueError(
            f"Feature '{name}' needs an exact vocabulary to align pretrained "
            "vectors with."
        )
    vocabulary = preprocessor.vocabularies_[name]
    found, vectors = load_vectors(path, format, words=set(vocabulary))
    dim = vectors.shape[1]
    expected = feature.embedding_dim
    if expected is not None and expected != dim:
        raise VectorFileError(
            f"Vectors in {path} have dimension {dim}, but feature '{name}' "
            f"has embedding_dim={expected}. Fix: set embedding_dim={dim} or "
            "use vectors of that size."
        )
    rng = np.random.default_rng(seed)
    scale = float(vectors.std()) if len(vectors) else 0.05
    matrix = rng.normal(0, scale, (preprocessor.input_dim(name), dim))
    matrix = matrix.astype(np.float32)
    matrix[0] = 0.0
    offset = 1 + feature.num_oov_buckets
    position = {word: offset + i for i, word in enumerate(vocabulary)}
    for word, vector in zip(found, vectors, strict=True):
        matrix[position[word]] = vector
    return matrix, len(found) / max(len(vocabulary), 1)
