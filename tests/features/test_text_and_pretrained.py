import struct

import numpy as np
import pandas as pd
import pytest

from recsys.features import Preprocessor
from recsys.features import TextFeature
from recsys.features import VectorFileError
from recsys.features import embedding_matrix
from recsys.features import feature_from_config
from recsys.features import load_vectors

TWEETS = pd.DataFrame(
    {
        "text": [
            "Thank you Ohio!! https://t.co/abc #MAGA",
            "Crooked Hillary... sad! 2016",
            "thank you, Ohio",
            None,
        ]
    }
)


def _fitted(**kwargs):
    feature = TextFeature("text", sequence_length=6, **kwargs)
    return Preprocessor(features=[feature]).fit(TWEETS)


def test_text_tokenizer_handles_case_urls_numbers_and_punctuation():
    pre = _fitted()
    vocab = pre.vocabularies_["text"]
    for token in ("thank", "ohio", "!", "#", "maga", "xxurl", "xxnum", "."):
        assert token in vocab
    assert "Thank" not in vocab and "https" not in vocab and "2016" not in vocab


def test_text_sequences_keep_order_truncate_and_pad():
    pre = _fitted()
    ids = pre.transform(TWEETS)["text"]
    assert ids.shape == (4, 6) and ids.dtype == np.int32
    vocab = pre.vocabularies_["text"]
    first = [
        2 + vocab.index(t) for t in ("thank", "you", "ohio", "!", "!", "xxurl")
    ]
    np.testing.assert_array_equal(ids[0], first)  # cut after 6 tokens
    np.testing.assert_array_equal(ids[2, 4:], [0, 0])  # 4 tokens, padded
    np.testing.assert_array_equal(ids[3], 0)  # null text


def test_text_vocabulary_caps_and_oov():
    pre = _fitted(max_tokens=3)
    assert len(pre.vocabularies_["text"]) == 3
    ids = pre.transform_column("text", ["zebra unicorn"])
    np.testing.assert_array_equal(ids[0, :2], [1, 1])  # OOV id
    assert pre.input_dim("text") == 1 + 1 + 3


def test_text_feature_config_round_trip():
    feature = TextFeature(
        "text", sequence_length=12, vocabulary="hash", num_buckets=99
    )
    assert feature_from_config(feature.get_config()) == feature


def test_text_rejects_non_strings_and_bad_length():
    with pytest.raises(ValueError, match="must hold strings.*3"):
        _fitted().transform(pd.DataFrame({"text": ["a", 3]}))
    with pytest.raises(ValueError, match="sequence_length"):
        TextFeature("text", sequence_length=0)


def test_text_ngrams_follow_the_words():
    pre = Preprocessor(
        features=[TextFeature("text", sequence_length=20, ngrams=3)]
    ).fit(TWEETS)
    tokens = pre.tokenize("text", ["Sad! so sad", None])
    words = ["sad", "!", "so", "sad"]
    bigrams = ["sad !", "! so", "so sad"]
    assert tokens == [[*words, *bigrams, "sad ! so", "! so sad"], []]
    assert "thank you" in pre.vocabularies_["text"]
    ids = pre.transform_column("text", ["thank you"])
    vocab = pre.vocabularies_["text"]
    expected = [2 + vocab.index(t) for t in ("thank", "you", "thank you")]
    np.testing.assert_array_equal(ids[0, :4], [*expected, 0])


def test_text_char_ngrams_mark_word_boundaries():
    feature = TextFeature("text", sequence_length=30, char_ngrams=[2, 3])
    pre = Preprocessor(features=[feature]).fit(TWEETS)
    tokens = pre.tokenize("text", ["Ok!"])[0]
    # Words first, then each word's n-grams, 2 then 3 characters long.
    assert tokens == ["ok", "!", *"<o ok k> <ok ok> <! !> <!>".split()]
    assert "<th" in pre.vocabularies_["text"]


def test_text_ngram_options_round_trip_and_are_checked():
    feature = TextFeature("text", ngrams=2, char_ngrams=[3, 5])
    assert feature_from_config(feature.get_config()) == feature
    assert TextFeature("text").ngrams == 1
    for bad in ([3], [4, 2], [0, 2], "2-4"):
        with pytest.raises(ValueError, match="char_ngrams"):
            TextFeature("text", char_ngrams=bad)
    with pytest.raises(ValueError, match="ngrams"):
        TextFeature("text", ngrams=0)


# -- pretrained vectors, in files the tests write --------------------------

WORDS = {"thank": [1.0, 2.0, 3.0], "ohio": [-1.0, 0.5, 0.0], "zebra": [9, 9, 9]}


GLOVE = "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in WORDS.items())


def _glove(path):
    path.write_text(GLOVE)
    return str(path)


def _word2vec_text(path):
    path.write_text(f"{len(WORDS)} 3\n" + GLOVE)
    return str(path)


def _word2vec_binary(path):
    data = f"{len(WORDS)} 3\n".encode()
    for word, vector in WORDS.items():
        data += word.encode() + b" " + struct.pack("<3f", *vector) + b"\n"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("writer", [_glove, _word2vec_text, _word2vec_binary])
def test_load_vectors_reads_each_format(writer, tmp_path):
    words, vectors = load_vectors(writer(tmp_path / "vectors"))
    assert words == list(WORDS)
    np.testing.assert_allclose(vectors, list(WORDS.values()))


def test_embedding_matrix_aligns_with_the_vocabulary(tmp_path):
    pre = _fitted(embedding_dim=3)
    matrix, coverage = embedding_matrix(pre, "text", _glove(tmp_path / "g.txt"))
    vocab = pre.vocabularies_["text"]
    assert matrix.shape == (pre.input_dim("text"), 3)
    np.testing.assert_allclose(matrix[2 + vocab.index("thank")], WORDS["thank"])
    np.testing.assert_allclose(matrix[0], 0.0)
    assert coverage == pytest.approx(2 / len(vocab))


def test_embedding_matrix_checks_the_dimension(tmp_path):
    pre = _fitted(embedding_dim=64)
    with pytest.raises(VectorFileError, match="dimension 3.*embedding_dim=64"):
        embedding_matrix(pre, "text", _glove(tmp_path / "g.txt"))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"a 1 2 3\nb 1 2\n", "line 2: 2 values"),
        (b"a 1 x 3\n", "non-numeric"),
        (b"3 3\nab \x00\x00\x80", "truncated"),
    ],
)
def test_load_vectors_rejects_corrupt_files(content, match, tmp_path):
    path = tmp_path / "vectors"
    path.write_bytes(content)
    with pytest.raises(VectorFileError, match=match):
        load_vectors(str(path))


def test_load_vectors_missing_file():
    with pytest.raises(VectorFileError, match="not found"):
        load_vectors("no/such/vectors.txt")
