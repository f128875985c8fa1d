import keras
import numpy as np
import pytest

from recsys.models import TextClassifier
from tests.battery import run_serialization_battery

IDS = np.array([[3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]])
ARCHITECTURES = ["mean_pool", "flatten", "lstm", "conv1d"]


def _model(**kwargs):
    defaults = {"input_dim": 10, "sequence_length": 6, "embedding_dim": 4}
    return TextClassifier(**{**defaults, "kernel_size": 3, **kwargs})


def test_text_classifier_mean_pool_by_hand():
    model = _model()
    model.set_embeddings(np.arange(40, dtype="float32").reshape(10, 4) / 40)
    model.head.set_weights([np.ones((4, 1), "float32"), np.zeros(1, "float32")])
    out = keras.ops.convert_to_numpy(model(IDS))
    # Row 0: mean of rows 3 and 4 (padding ignored); row 1: row 5.
    table = np.arange(40).reshape(10, 4) / 40
    logits = [table[[3, 4]].mean(0).sum(), table[5].sum()]
    np.testing.assert_allclose(
        out[:, 0], 1 / (1 + np.exp(-np.array(logits))), rtol=1e-5
    )


@pytest.mark.parametrize(
    "architecture, count",
    [("mean_pool", 3), ("flatten", 3), ("lstm", 6), ("conv1d", 5)],
)
def test_text_classifier_weights(architecture, count):
    model = _model(architecture=architecture)
    assert len(model.weights) == count
    assert tuple(model.embedding.embeddings.shape) == (10, 4)


def test_text_classifier_multiclass_gives_probabilities():
    out = keras.ops.convert_to_numpy(_model(num_classes=3)(IDS))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_text_classifier_learns_a_token_rule(architecture):
    # Tokens 1-4 mean "yes", 5-8 mean "no"; the label is the majority.
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, (512, 6))
    labels = ((ids <= 4).sum(axis=1) > 3).astype("float32")
    model = _model(architecture=architecture, embedding_dim=8)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss=model.default_loss()
    )
    model.fit(ids, labels, epochs=15, batch_size=64, verbose=0)
    accuracy = np.mean(
        (keras.ops.convert_to_numpy(model(ids))[:, 0] > 0.5) == labels
    )
    assert accuracy >= 0.85


def test_text_classifier_frozen_embeddings_stay_frozen():
    matrix = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    model = _model(trainable_embeddings=False)
    model.set_embeddings(matrix)
    model.compile(optimizer="adam", loss=model.default_loss())
    model.fit(IDS, np.array([1.0, 0.0]), epochs=3, verbose=0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.embedding.embeddings), matrix
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"architecture": "transformer"}, "architecture"),
        ({"input_dim": 0}, "input_dim"),
        ({"num_classes": 1}, "num_classes"),
        ({"dropout": 1.5}, "dropout"),
        ({"architecture": "conv1d", "kernel_size": 9}, "kernel_size"),
    ],
)
def test_text_classifier_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_text_classifier_rejects_a_wrong_matrix():
    with pytest.raises(ValueError, match=r"\(10, 4\)"):
        _model().set_embeddings(np.zeros((10, 5), "float32"))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_text_classifier_serialization(architecture, tmp_path):
    run_serialization_battery(_model(architecture=architecture), IDS, tmp_path)
