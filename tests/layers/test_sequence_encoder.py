import keras
import numpy as np
import pytest

from recsys.layers import SequenceEncoder
from recsys.models import Tower
from tests.battery import run_serialization_battery

ENCODERS = ["gru", "transformer"]
# Latest item first, then older ones, then padding (recsys.data.history).
HISTORIES = np.array([[3, 5, 7, 0], [2, 0, 0, 0], [0, 0, 0, 0], [7, 5, 3, 0]])


def _layer(encoder):
    keras.utils.set_random_seed(0)
    layer = SequenceEncoder(10, 8, 4, encoder=encoder, sequence_scale=1.0)
    layer.build()
    # Its projection starts at zero (the layer starts as mean pooling):
    # give it weights, as training does, so the sequence path shows.
    kernel = np.random.default_rng(0).normal(size=(8, 8)).astype("float32")
    layer.projection.kernel.assign(kernel)
    return layer


def _out(layer, ids):
    return keras.ops.convert_to_numpy(layer(np.asarray(ids)))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sequence_encoder_output_shape_and_empty_history(encoder):
    out = _out(_layer(encoder), HISTORIES)
    assert out.shape == (4, 8)
    # No history, no vector: as mean pooling gives for all padding.
    np.testing.assert_array_equal(out[2], np.zeros(8))
    assert np.all(np.abs(out[[0, 1, 3]]).sum(axis=1) > 0)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sequence_encoder_padding_never_changes_the_output(encoder):
    layer = _layer(encoder)
    ids = np.array([[3, 5, 0, 0], [4, 0, 6, 0]])  # padding inside too
    before = _out(layer, ids)
    # Scramble what padding would read: row 0 of the table and the
    # positions only padding occupies in the first row.
    table = keras.ops.convert_to_numpy(layer.items.embeddings)
    table[0] = 100.0
    layer.items.embeddings.assign(table)
    positions = keras.ops.convert_to_numpy(layer.positions)
    positions[3] = -100.0
    layer.positions.assign(positions)
    np.testing.assert_allclose(_out(layer, ids), before, atol=1e-5)
    # A row's output does not depend on the other rows of its batch.
    np.testing.assert_allclose(_out(layer, ids[:1]), before[:1], atol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sequence_encoder_starts_as_mean_pooling(encoder):
    layer = SequenceEncoder(10, 8, 4, encoder=encoder)
    layer.build()
    table = keras.ops.convert_to_numpy(layer.items.embeddings)
    expected = [
        table[[3, 5, 7]].mean(axis=0),
        table[2],
        np.zeros(8),
        table[[7, 5, 3]].mean(axis=0),
    ]
    np.testing.assert_allclose(_out(layer, HISTORIES), expected, atol=1e-6)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sequence_encoder_reads_the_order(encoder):
    out = _out(_layer(encoder), HISTORIES)
    # Rows 0 and 3 hold the same items in reverse order.
    assert np.abs(out[0] - out[3]).max() > 1e-4


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sequence_encoder_serialization(encoder, tmp_path):
    run_serialization_battery(_layer(encoder), HISTORIES, tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_dim": 0}, "input_dim"),
        ({"sequence_length": 0}, "sequence_length"),
        ({"encoder": "lstm"}, "encoder"),
        ({"num_heads": 3}, "num_heads"),
        ({"sequence_scale": 0}, "sequence_scale"),
    ],
)
def test_sequence_encoder_rejects_bad_arguments(kwargs, match):
    args = {"input_dim": 10, "output_dim": 8, "sequence_length": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        SequenceEncoder(**args)


def test_sequence_encoder_rejects_a_wrong_history_length():
    with pytest.raises(ValueError, match="sequence_length=4"):
        _layer("gru")(np.zeros((2, 3), "int32"))


def _history_tower(encoder):
    spec = {
        "name": "history",
        "type": "embedding",
        "input_dim": 10,
        "output_dim": 8,
        "combiner": "mean",
        "encoder": encoder,
        "sequence_length": 4,
    }
    user = {"name": "user", "type": "embedding", "input_dim": 5}
    return Tower([{**user, "output_dim": 8}, spec], 8, combine="sum")


@pytest.mark.parametrize("encoder", ENCODERS)
def test_tower_with_a_sequence_history_saves_and_reloads(encoder, tmp_path):
    tower = _history_tower(encoder)
    assert isinstance(tower.embeddings[1], SequenceEncoder)
    inputs = {"user": np.array([1, 2, 3, 4]), "history": HISTORIES}
    run_serialization_battery(tower, inputs, tmp_path)


def test_tower_rejects_a_sequence_over_a_multi_hash_table():
    spec = {
        "name": "history",
        "type": "embedding",
        "input_dim": 10,
        "output_dim": 8,
        "encoder": "gru",
        "sequence_length": 4,
        "num_hashes": 2,
        "num_buckets": 7,
    }
    with pytest.raises(ValueError, match="multi-hash"):
        Tower([spec], 8)


# --- Through a bundle: trained, written, reloaded and served --------------


@pytest.fixture(scope="module", params=ENCODERS)
def sequence_bundle(request, tmp_path_factory):
    """A two-tower bundle with an ordered history: MovieLens users 1-40,
    one epoch."""
    from recsys import train
    from recsys.config import load_config
    from recsys.data.movielens import load_movielens

    frame = load_movielens()
    frame = frame[frame["userId"] <= 40].reset_index(drop=True)
    config = load_config(
        "configs/movielens_two_tower.toml",
        ["train.epochs=1", f'model.history_encoder="{request.param}"'],
    )
    path = tmp_path_factory.mktemp("sequence") / request.param
    _, metrics = train(config, str(path), frame=frame, progress=False)
    return str(path), metrics


@pytest.mark.slow  # a training per encoder, about a minute on two cores
def test_sequence_tower_bundle_serves_histories_as_trained(sequence_bundle):
    from recsys import load_bundle
    from recsys.serving import RetrievalService

    path, metrics = sequence_bundle
    assert metrics["test"]["hr@100"] >= 0
    bundle = load_bundle(path)
    assert isinstance(bundle.query_tower.embeddings[1], SequenceEncoder)
    service = RetrievalService(bundle, precompute_depth=0)
    for user in bundle.user_ids[:3]:
        # The user's training items, latest first: the history the stored
        # user vector was computed from at training time.
        seen = bundle.item_ids[bundle.seen(bundle.user_rows([user])[0])]
        history = [str(i) for i in seen[::-1][:10]]
        expected_ids, expected = bundle.recommend(
            [user], k=10, exclude_seen=False
        )
        features = {"userId": str(user), "history": history}
        ids, scores, _ = service.retrieve(
            features=features, k=10, exclude_seen=False
        )
        np.testing.assert_array_equal(ids, expected_ids[0])
        np.testing.assert_allclose(scores, expected[0], rtol=1e-5, atol=1e-6)
        # The order of the request's history is read.
        reordered = {**features, "history": history[::-1]}
        _, other, _ = service.retrieve(
            features=reordered, k=10, exclude_seen=False
        )
        assert np.abs(np.asarray(other) - np.asarray(scores)).max() > 1e-6


def test_config_needs_a_history_for_an_ordered_encoder():
    from recsys.config import load_config
    from recsys.errors import ConfigError

    overrides = ['model.history_encoder="gru"', "model.history_length=0"]
    with pytest.raises(ConfigError, match="history_length"):
        load_config("configs/movielens_two_tower.toml", overrides)
