"""Sparse row updates (`SparseRowUpdates`): the same training as dense Keras.

Adagrad and plain SGD must give the dense update up to float error; Adam and
SGD with momentum are lazy (untouched rows and their slots do not move). A
compiled step holds no table-sized temporary; a sparsely trained model saves,
reloads and resumes like any Keras model.
"""

import warnings

import keras
import numpy as np
import pytest

from recsys.models import TabularModel
from recsys.models import TextClassifier
from recsys.models import Tower
from recsys.models import TwoTower

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="sparse row updates run on the JAX backend",
)

USERS, ITEMS = 500, 300


def _two_tower(sparse, optimizer, multi_hash=False, users=USERS):
    keras.utils.set_random_seed(0)
    user = {
        "name": "u",
        "type": "embedding",
        "input_dim": users,
        "output_dim": 8,
    }
    if multi_hash:
        user.update(num_hashes=2, num_buckets=97)
    history = {
        "name": "h",
        "type": "embedding",
        "input_dim": ITEMS,
        "output_dim": 8,
    }
    query = Tower([user, history], 8, hidden_units=[16], name="query")
    candidate = Tower(
        [
            {
                "name": "i",
                "type": "embedding",
                "input_dim": ITEMS,
                "output_dim": 8,
            }
        ],
        8,
        name="candidate",
    )
    model = TwoTower(query, candidate, candidate_id="i")
    model.sparse_updates = sparse
    model.min_rows_per_lookup = 0  # row updates even for these small tables
    model.compile(optimizer=optimizer, steps_per_execution=2)
    return model


def _inputs(n=512, seed=0, users=USERS):
    rng = np.random.default_rng(seed)
    items = rng.integers(1, ITEMS, n)
    return {
        "u": rng.integers(1, users, n),
        # Repeated ids within a row and across the batch, and padding.
        "h": rng.integers(0, 40, (n, 5)),
        "i": items,
        "candidate_sampling_probability": np.full(n, 1 / ITEMS, "float32"),
    }


def _state(model):
    return [v.numpy() for v in model.weights + model.optimizer.variables]


def _fit(model, inputs, epochs=2):
    model.fit(inputs, batch_size=64, epochs=epochs, shuffle=False, verbose=0)
    return model


def _assert_same_training(build, inputs, atol=1e-5):
    dense = _fit(build(False), inputs)
    sparse = _fit(build(True), inputs)
    assert len(_state(dense)) == len(_state(sparse))
    for a, b in zip(_state(dense), _state(sparse), strict=True):
        # float32 rounding, relative too: Adagrad's accumulators reach ~200,
        # where rounding over the steps left 3e-6 of the value (4.6e-5)
        # with LLVM at level 0 (XLA_FLAGS, tests/conftest.py).
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)
    return sparse


@jax_only
@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.Adagrad(0.1), lambda: keras.optimizers.SGD(0.05)],
    ids=["adagrad", "sgd"],
)
def test_sparse_equals_dense_for_adagrad_and_sgd(optimizer):
    # A multi-hash user table, a pooled history table, an item table and
    # dense layers.
    trained = _assert_same_training(
        lambda sparse: _two_tower(sparse, optimizer(), True), _inputs()
    )
    # It trained: the tables moved away from their initial values.
    start = _two_tower(True, optimizer(), True)
    assert not np.allclose(
        trained.query_tower.embeddings[0].embeddings.numpy(),
        start.query_tower.embeddings[0].embeddings.numpy(),
    )


@jax_only
def test_tabular_and_text_models_train_the_same_sparsely():
    inputs = [
        {"name": "a", "type": "embedding", "input_dim": 400, "output_dim": 6},
        {"name": "b", "type": "embedding", "input_dim": 50, "output_dim": 6},
        {"name": "x", "type": "numeric"},
    ]
    rng = np.random.default_rng(1)
    table = {
        "a": rng.integers(0, 400, 256),
        "b": rng.integers(0, 50, (256, 3)),
        "x": rng.normal(size=256).astype("float32"),
    }
    labels = (table["a"] % 2).astype("float32")

    def tabular(sparse, stacked=False):
        keras.utils.set_random_seed(0)
        model = TabularModel(
            inputs, interaction="dcn", hidden_units=[8], stacked=stacked
        )
        model.sparse_updates = sparse
        model.min_rows_per_lookup = 0
        model.compile(
            keras.optimizers.Adagrad(0.05), loss="binary_crossentropy"
        )
        return model

    def text(sparse):
        keras.utils.set_random_seed(0)
        model = TextClassifier(300, 6, embedding_dim=8, architecture="conv1d")
        model.sparse_updates = sparse
        model.min_rows_per_lookup = 0
        model.compile(keras.optimizers.Adagrad(0.05), loss=model.default_loss())
        return model

    def stacked(sparse):
        # Both columns' rows in one table: one lookup of both.
        return tabular(sparse, stacked=True)

    tokens = rng.integers(0, 300, (256, 6))
    for build, x in ((tabular, table), (stacked, table), (text, tokens)):
        runs = []
        for sparse in (False, True):
            model = build(sparse)
            model.fit(
                x, labels, batch_size=32, epochs=2, shuffle=False, verbose=0
            )
            runs.append(_state(model))
        for a, b in zip(*runs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@jax_only
@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.Adam(0.01),
        pytest.param(
            lambda: keras.optimizers.Adam(0.01, amsgrad=True),
            marks=pytest.mark.slow,
        ),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "amsgrad", "sgd_momentum"],
)
def test_lazy_optimizers_leave_untouched_rows_and_slots(optimizer):
    model = _two_tower(True, optimizer())
    first = _inputs(64)
    first["u"] = np.arange(1, 65)  # users 1..64 in the first batch only
    second = _inputs(64, seed=1)
    second["u"] = np.arange(100, 164)
    model.fit(first, batch_size=64, epochs=1, shuffle=False, verbose=0)
    table = model.query_tower.embeddings[0].embeddings
    slots = [s for s in model.optimizer.variables if s.shape == table.shape]
    assert slots
    before = [table.numpy()] + [s.numpy() for s in slots]
    model.fit(second, batch_size=64, epochs=1, shuffle=False, verbose=0)
    after = [table.numpy()] + [s.numpy() for s in slots]
    for old, new in zip(before, after, strict=True):
        # Users of the first batch only: unchanged (dense Adam would move
        # them with its momentum).
        np.testing.assert_array_equal(old[1:65], new[1:65])
        # Users of the second batch: moved.
        assert not np.allclose(old[100:164], new[100:164])


@jax_only
def test_tables_small_next_to_their_lookups_stay_dense():
    # 500 user rows against 64 lookups a step (under 16 per lookup): dense
    # Adam, whose momentum moves rows the second batch does not look up.
    model = _two_tower(True, keras.optimizers.Adam(0.01))
    model.min_rows_per_lookup = 16
    first, second = _inputs(64), _inputs(64, seed=1)
    first["u"], second["u"] = np.arange(1, 65), np.arange(100, 164)
    model.fit(first, batch_size=64, epochs=1, verbose=0)
    table = model.query_tower.embeddings[0].embeddings
    before = table.numpy()
    model.fit(second, batch_size=64, epochs=1, verbose=0)
    assert not np.allclose(before[1:65], table.numpy()[1:65])


@jax_only
def test_lazy_adam_equals_dense_adam_on_the_first_step():
    # From zero moments, rows without a gradient do not move under dense
    # Adam either, so one step of both agrees.
    inputs = _inputs(64)
    runs = [
        _state(_fit(_two_tower(sparse, keras.optimizers.Adam(0.01)), inputs, 1))
        for sparse in (False, True)
    ]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@jax_only
def test_a_step_holds_no_table_sized_temporary():
    import jax

    users = 200_000  # a table of 6.4 MB
    table_bytes = users * 8 * 4
    temp = {}
    for sparse in (False, True):
        model = _two_tower(sparse, keras.optimizers.Adagrad(0.1), users=users)
        inputs = _inputs(64, users=users)
        model.fit(inputs, batch_size=64, epochs=1, verbose=0)
        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )
        batch = ({k: v[:64] for k, v in inputs.items()},)
        compiled = (
            jax.jit(model.train_step, donate_argnums=0)
            .lower(state, batch)
            .compile()
        )
        temp[sparse] = compiled.memory_analysis().temp_size_in_bytes
    # Dense Keras builds the table's gradient; the sparse step only rows.
    assert temp[False] >= table_bytes
    assert temp[True] < table_bytes / 20, temp


@jax_only
def test_sparsely_trained_model_saves_reloads_and_resumes(tmp_path):
    inputs = _inputs()
    straight = _fit(_two_tower(True, keras.optimizers.Adagrad(0.1)), inputs)

    model = _fit(_two_tower(True, keras.optimizers.Adagrad(0.1)), inputs, 1)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    query, candidate = model.predict(inputs, verbose=0)
    query2, candidate2 = reloaded.predict(inputs, verbose=0)
    np.testing.assert_array_equal(query, query2)
    np.testing.assert_array_equal(candidate, candidate2)
    # The optimizer's slots came back too: one more epoch after the reload
    # ends where two epochs in a row do.
    assert reloaded.sparse_updates
    reloaded.fit(inputs, batch_size=64, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(reloaded.weights, straight.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=0)


@jax_only
def test_unsupported_optimizer_or_regularized_table_fall_back_to_dense():
    inputs = _inputs(128)
    model = _two_tower(True, keras.optimizers.RMSprop(0.01))
    with pytest.warns(UserWarning, match="RMSprop has no row-wise rule"):
        _fit(model, inputs, 1)
    dense = _fit(_two_tower(False, keras.optimizers.RMSprop(0.01)), inputs, 1)
    for a, b in zip(_state(model), _state(dense), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)

    model = _two_tower(True, keras.optimizers.Adagrad(0.1, clipnorm=1.0))
    with pytest.warns(UserWarning, match="clipnorm"):
        _fit(model, inputs, 1)


def test_sparse_updates_must_be_a_bool():
    model = _two_tower(True, keras.optimizers.Adagrad(0.1))
    with pytest.raises(ValueError, match="sparse_updates"):
        model.sparse_updates = "yes"


def test_other_backends_train_densely():
    # On TensorFlow the mixin steps aside; on JAX this is the sparse path.
    model = _two_tower(True, keras.optimizers.Adagrad(0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(_inputs(), batch_size=64, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert losses[1] < losses[0]
