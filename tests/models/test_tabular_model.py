import keras
import numpy as np
import pytest

from recsys.models import TabularModel
from recsys.names import AUXILIARY
from tests.battery import run_serialization_battery

INPUTS = [
    {"name": "user", "type": "embedding", "input_dim": 5, "output_dim": 2},
    {"name": "tags", "type": "embedding", "input_dim": 4, "output_dim": 3},
    {"name": "age", "type": "numeric"},
]
X = {
    "user": np.array([1, 3]),
    "tags": np.array([[1, 2, 0], [3, 0, 0]]),
    "age": np.array([0.5, -1.0], "float32"),
}
INTERACTIONS = ["mlp", "dcn", "dot"]


def _out(model, x=X):
    return keras.ops.convert_to_numpy(model(x))


def _set_head_to_sum(model):
    kernel, bias = model.head.get_weights()
    model.head.set_weights([np.ones_like(kernel), np.zeros_like(bias)])


def test_tabular_model_mlp_by_hand():
    # No hidden layer, head = sum: the output is the sum of the concatenated
    # vectors, genres pooled by their mean with padding ignored.
    model = TabularModel(INPUTS, task="regression", hidden_units=[], wide=False)
    user = np.arange(10, dtype="float32").reshape(5, 2)
    tags = np.arange(12, dtype="float32").reshape(4, 3) / 10
    model.embeddings[0].set_weights([user])
    model.embeddings[1].set_weights([tags])
    _set_head_to_sum(model)
    expected = [
        user[1].sum() + tags[[1, 2]].mean(0).sum() + 0.5,
        user[3].sum() + tags[3].sum() - 1.0,
    ]
    np.testing.assert_allclose(_out(model)[:, 0], expected, rtol=1e-5)


def test_tabular_model_wide_adds_per_value_biases():
    model = TabularModel(INPUTS, task="regression", hidden_units=[])
    before = _out(model)
    model.wide_biases.tables[0].set_weights(
        [np.arange(5, dtype="float32")[:, None]]
    )
    # User 1 gets +1, user 3 gets +3; the genre biases are still zero.
    np.testing.assert_allclose(_out(model) - before, [[1.0], [3.0]], atol=1e-5)


def test_multiclass_class_biases_move_the_class_probabilities():
    # One shared bias adds the same to every class's logit: no probability
    # moves. With `class_biases`, user 1's row of biases favours class 0.
    for class_biases, moves in ((False, False), (True, True)):
        model = TabularModel(
            INPUTS,
            task="multiclass",
            num_classes=3,
            hidden_units=[],
            class_biases=class_biases,
        )
        table = model.wide_biases.tables[0]
        before = _out(model)
        rows = np.zeros(table.get_weights()[0].shape, "float32")
        rows[1, 0] = 2.0  # user 1 (the first example), class 0
        table.set_weights([rows])
        after = _out(model)
        assert rows.shape == ((5, 3) if class_biases else (5, 1))
        assert (after[0, 0] > before[0, 0] + 0.05) == moves
        np.testing.assert_allclose(after[1], before[1], atol=1e-6)


def test_tabular_model_dot_is_the_pairwise_dot_product():
    inputs = [
        {"name": "a", "type": "embedding", "input_dim": 3, "output_dim": 2},
        {"name": "b", "type": "embedding", "input_dim": 3, "output_dim": 2},
    ]
    model = TabularModel(
        inputs,
        interaction={"name": "dot", "dot_dim": 2},
        task="regression",
        hidden_units=[],
        wide=False,
    )
    a = np.array([[0, 0], [1, 2], [3, 4]], "float32")
    b = np.array([[0, 0], [5, 6], [7, 8]], "float32")
    model.embeddings[0].set_weights([a])
    model.embeddings[1].set_weights([b])
    _set_head_to_sum(model)
    out = _out(model, {"a": np.array([1, 2]), "b": np.array([2, 1])})
    np.testing.assert_allclose(out[:, 0], [a[1] @ b[2], a[2] @ b[1]])


def test_tabular_model_dcn_first_cross_by_hand():
    # FeatureCross: x0 * (W x0 + b) + x0; with W = 1 and b = 0 every entry
    # becomes x0_i * sum(x0) + x0_i.
    inputs = [
        {"name": "v", "type": "numeric"},
        {"name": "w", "type": "numeric"},
    ]
    model = TabularModel(
        inputs,
        interaction={"name": "dcn", "num_layers": 1},
        task="regression",
        hidden_units=[],
    )
    (cross,) = model.interaction_block.crosses
    cross.set_weights([np.ones((2, 2), "float32"), np.zeros(2, "float32")])
    _set_head_to_sum(model)
    out = _out(model, {"v": np.array([1.0, 2.0]), "w": np.array([3.0, 0.5])})
    x0 = np.array([[1.0, 3.0], [2.0, 0.5]])
    expected = (x0 * x0.sum(1, keepdims=True) + x0).sum(1)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5)


@pytest.mark.parametrize(
    "interaction, count",
    # mlp: 2 tables + 2 bias tables + 2 hidden (kernel, bias) + head;
    # dcn adds 2 cross layers (kernel, bias); dot adds 2 projections
    # (sizes 2 and 3 differ from dot_dim) and the bottom layer.
    [("mlp", 10), ("dcn", 14), ("dot", 14)],
)
def test_tabular_model_weights(interaction, count):
    options = {"dot_dim": 4} if interaction == "dot" else {}
    model = TabularModel(INPUTS, interaction={"name": interaction, **options})
    assert len(model.weights) == count
    assert tuple(model.embeddings[1].embeddings.shape) == (4, 3)
    assert tuple(model.wide_biases.tables[0].embeddings.shape) == (5, 1)


@pytest.mark.parametrize(
    "task, shape", [("binary", (2, 1)), ("regression", (2, 1))]
)
def test_tabular_model_output_shapes(task, shape):
    assert _out(TabularModel(INPUTS, task=task)).shape == shape


def test_tabular_model_multiclass_gives_probabilities():
    out = _out(TabularModel(INPUTS, task="multiclass", num_classes=4))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def _random_rows(n=1024):
    """`n` random rows of `INPUTS`, Keras and NumPy seeded."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    return {
        "user": rng.integers(1, 5, n),
        "tags": rng.integers(0, 4, (n, 3)),
        "age": rng.normal(size=n).astype("float32"),
    }


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_tabular_model_learns_an_interaction(interaction):
    # The label is an XOR of a categorical and a numeric column: no sum of
    # per-column effects can fit it, only an interaction.
    x = _random_rows()
    labels = ((x["user"] % 2 == 0) ^ (x["age"] > 0)).astype("float32")
    options = {"dot_dim": 4} if interaction == "dot" else {}
    model = TabularModel(
        INPUTS,
        interaction={"name": interaction, **options},
        hidden_units=[32],
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss=model.default_loss()
    )
    model.fit(x, labels, epochs=8, batch_size=64, verbose=0)
    accuracy = np.mean((_out(model, x)[:, 0] > 0.5) == labels)
    assert accuracy >= 0.9


def test_tabular_model_l2_adds_a_loss():
    model = TabularModel(INPUTS, l2=0.1)
    model(X)
    assert len(model.losses) == 1
    assert float(keras.ops.convert_to_numpy(model.losses[0])) > 0


@pytest.mark.parametrize("interaction", ["mlp", "dcn"])
def test_tabular_model_l2_of_numbers_alone_trains(interaction):
    # Nothing looked up: the penalty was the int 0, which add_loss refuses
    # (`recsys train` and `recsys tune`'s l2 trials on all-numeric tables).
    model = TabularModel(
        [{"name": "age", "type": "numeric"}],
        l2=0.01,
        interaction={"name": interaction},
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(
        {"age": X["age"]}, np.array([1.0, 0.0]), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert not model.losses


def test_tabular_model_embeddings_l2_penalizes_every_table_weight():
    model = TabularModel(INPUTS, embeddings_l2=0.5, wide=False)
    model(X)
    # One penalty per table: 0.5 * sum of its squared weights.
    expected = sorted(
        0.5 * float(np.sum(keras.ops.convert_to_numpy(t.embeddings) ** 2))
        for t in model.embeddings
    )
    got = sorted(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tabular_model_auxiliary_head_adds_its_weighted_error():
    model = TabularModel(INPUTS, hidden_units=[4], auxiliary_weight=0.5)
    target = np.array([4.0, 1.0], "float32")
    without = _out(model)
    with_target = _out(model, {**X, AUXILIARY: target})
    # The main output ignores the auxiliary target: it only adds a loss.
    np.testing.assert_allclose(with_target, without, rtol=1e-6)
    assert len(model.losses) == 1
    with pytest.raises(ValueError, match="no auxiliary task"):
        TabularModel(INPUTS).predict_auxiliary(X)
    kernel, bias = model.auxiliary_head.get_weights()
    model.auxiliary_head.set_weights([np.zeros_like(kernel), bias + 3.0])
    model({**X, AUXILIARY: target})
    # The head now says 3 for every row: 0.5 * mean((3 - 4)^2, (3 - 1)^2).
    loss = float(keras.ops.convert_to_numpy(model.losses[0]))
    np.testing.assert_allclose(loss, 0.5 * (1 + 4) / 2, rtol=1e-5)


def test_tabular_model_auxiliary_task_is_learnt():
    # The auxiliary target depends on the user alone; the main label on the
    # age alone. The shared layers learn both.
    x = _random_rows()
    target = (x["user"] * 2.0).astype("float32")
    model = TabularModel(
        INPUTS, hidden_units=[16], auxiliary_weight=1.0, auxiliary_mean=5.0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss=model.default_loss()
    )
    labels = (x["age"] > 0).astype("float32")
    model.fit({**x, AUXILIARY: target}, labels, epochs=10, verbose=0)
    estimate = model.predict_auxiliary(x)
    assert np.sqrt(np.mean((estimate - target) ** 2)) < 0.5
    assert np.mean((_out(model, x)[:, 0] > 0.5) == labels) >= 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"interaction": "transformer"}, "interaction"),
        ({"task": "ranking"}, "task"),
        ({"task": "multiclass", "num_classes": 2}, "num_classes"),
        ({"hidden_units": [0]}, "hidden_units"),
        (
            {"interaction": {"name": "dcn", "num_layers": 0}},
            "num_cross_layers",
        ),
        ({"interaction": {"name": "dcn", "depth": 2}}, "depth"),
        ({"interaction": {"name": "mlp", "dot_dim": 2}}, "no options"),
        ({"interaction": {"num_layers": 2}}, "interaction"),
        ({"dropout": 1.0}, "dropout"),
        ({"l2": -1.0}, "l2"),
        ({"embeddings_l2": -1.0}, "embeddings_l2"),
        ({"auxiliary_weight": -1.0}, "auxiliary_weight"),
        ({"inputs": [{"name": "a", "type": "text"}]}, "type"),
        ({"inputs": [], "interaction": "mlp"}, "at least one"),
        (
            {
                "inputs": [{"name": "a", "type": "numeric"}],
                "interaction": "dot",
            },
            "two vectors",
        ),
    ],
)
def test_tabular_model_rejects_bad_arguments(kwargs, match):
    kwargs = {"inputs": INPUTS, **kwargs}
    with pytest.raises(ValueError, match=match):
        TabularModel(**kwargs)


def test_tabular_model_names_a_missing_input():
    with pytest.raises(KeyError, match="age"):
        TabularModel(INPUTS)({"user": X["user"], "tags": X["tags"]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interaction": "mlp"},
        {"interaction": "dcn"},
        {"interaction": {"name": "dcn", "projection_dim": 2}},
        {"interaction": {"name": "dot", "dot_dim": 4, "bottom_units": [8]}},
        {"task": "multiclass", "num_classes": 3},
        {"task": "multiclass", "num_classes": 3, "class_biases": True},
        {"auxiliary_weight": 0.5, "auxiliary_mean": 3.5},
    ],
)
def test_tabular_model_serialization(kwargs, tmp_path):
    model = TabularModel(INPUTS, l2=0.01, embeddings_l2=1e-4, **kwargs)
    run_serialization_battery(model, X, tmp_path)


def _stack_weights(stack, tables):
    """Writes per-column tables into an `EmbeddingStack`'s stacked ones."""
    stacked = {
        width: np.zeros(t.shape)
        for width, t in zip(stack.groups, stack.weights, strict=True)
    }
    for rows, width, offset in zip(
        tables, stack.widths, stack.offsets, strict=True
    ):
        stacked[width][offset : offset + len(rows)] = rows
    stack.set_weights(list(stacked.values()))


MIXED = [
    {"name": "user", "type": "embedding", "input_dim": 5, "output_dim": 2},
    {"name": "tags", "type": "embedding", "input_dim": 4, "output_dim": 3},
    {"name": "age", "type": "numeric"},
    {"name": "city", "type": "embedding", "input_dim": 6, "output_dim": 2},
    {"name": "price", "type": "numeric"},
]
MIXED_X = {**X, "city": np.array([5, 0]), "price": np.array([2.0, 1.0])}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interaction": "mlp"},
        {"interaction": {"name": "dcn", "projection_dim": 2}},
        {"interaction": {"name": "dot", "dot_dim": 4, "bottom_units": [8]}},
        {"task": "multiclass", "num_classes": 3, "class_biases": True},
        {"task": "regression", "wide": False},
    ],
)
def test_stacked_tables_score_as_a_table_per_column(kwargs):
    rng = np.random.default_rng(0)
    per_column = TabularModel(MIXED, l2=0.1, **kwargs)
    per_column.set_weights(
        [rng.normal(size=w.shape) for w in per_column.get_weights()]
    )
    stacked = TabularModel(MIXED, l2=0.1, stacked=True, **kwargs)
    assert len(stacked.trainable_weights) < len(per_column.trainable_weights)
    _stack_weights(
        stacked.embeddings, [t.get_weights()[0] for t in per_column.embeddings]
    )
    if per_column.wide_biases is not None:
        _stack_weights(
            stacked.wide_biases,
            [t.get_weights()[0] for t in per_column.wide_biases.tables],
        )
    for name in ("interaction_block", "head"):
        layer = getattr(per_column, name)
        if layer is not None:
            getattr(stacked, name).set_weights(layer.get_weights())
    for a, b in zip(per_column.hidden, stacked.hidden, strict=True):
        b.set_weights(a.get_weights())
    np.testing.assert_allclose(
        _out(stacked, MIXED_X), _out(per_column, MIXED_X), rtol=1e-5, atol=1e-6
    )
    # The penalty on the looked-up rows is the same too.
    np.testing.assert_allclose(
        float(sum(stacked.losses)), float(sum(per_column.losses)), rtol=1e-5
    )


def test_stacked_tabular_model_serialization(tmp_path):
    model = TabularModel(
        MIXED, interaction="dcn", stacked=True, l2=0.01, embeddings_l2=1e-4
    )
    run_serialization_battery(model, MIXED_X, tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interaction": "dcn", "auxiliary_weight": 0.5},
        {"interaction": "dot", "stacked": True},
    ],
)
def test_a_mixed_precision_model_reloads_as_it_trained(kwargs, tmp_path):
    # Its sublayers took the global policy of the moment: saved under
    # mixed_bfloat16 and loaded under float32, they computed in float32.
    path = tmp_path / "model.keras"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = TabularModel(MIXED, **kwargs)
        expected = _out(model, MIXED_X)
        model.save(path)
    finally:
        keras.config.set_dtype_policy(previous)
    reloaded = keras.models.load_model(path)
    assert {
        layer.dtype_policy.name for layer in reloaded._flatten_layers()
    } == {"mixed_bfloat16"}
    np.testing.assert_array_equal(_out(reloaded, MIXED_X), expected)


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_a_missing_value_is_learnt_from_its_indicator(interaction):
    # The label is whether "age" is missing. Filled with 0 (the mean), a
    # missing age looks like the many ages of 0; its indicator tells.
    rng = np.random.default_rng(0)
    n = 2048
    age = rng.choice([-1.0, 0.0, 1.0], n).astype("float32")
    missing = rng.random(n) < 0.3
    age[missing] = np.nan
    x = {"user": rng.integers(0, 5, n), "age": age}
    labels = missing.astype("float32")
    options = (
        {"dot_dim": 4, "bottom_units": [4]} if interaction == "dot" else {}
    )
    accuracies = {}
    for flag in (False, True):
        spec = {"name": "age", "type": "numeric", "missing": flag}
        model = TabularModel(
            [INPUTS[0], spec],
            interaction={"name": interaction, **options},
            hidden_units=[16],
        )
        inputs = x if flag else {**x, "age": np.nan_to_num(age)}
        model.compile(
            optimizer=keras.optimizers.Adam(0.02), loss=model.default_loss()
        )
        model.fit(inputs, labels, epochs=5, batch_size=128, verbose=0)
        predicted = _out(model, inputs)[:, 0] > 0.5
        accuracies[flag] = float(np.mean(predicted == missing))
    assert accuracies[True] >= 0.99
    assert accuracies[False] <= 0.85


def test_a_model_reading_missing_values_reloads_with_the_same_scores(
    tmp_path,
):
    inputs = [*INPUTS[:2], {"name": "age", "type": "numeric", "missing": True}]
    x = {**X, "age": np.array([np.nan, -1.0], "float32")}
    model = TabularModel(inputs, interaction="dcn")
    assert np.isfinite(_out(model, x)).all()
    run_serialization_battery(model, x, tmp_path)
