import logging

import keras
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from recsys.bundles.tabular import TabularBundle
from recsys.models import TabularModel
from recsys.names import HISTORY
from recsys.serving.fast_ranker import NumpyRanker
from recsys.serving.one_blas_thread import ONE_BLAS_THREAD
from recsys.serving.pair_features import IdRows
from recsys.serving.pair_features import PairEncoder
from recsys.serving.reranker import Reranker

INPUTS = [
    {"name": "user", "type": "embedding", "input_dim": 9, "output_dim": 4},
    {"name": "item", "type": "embedding", "input_dim": 12, "output_dim": 6},
    {
        "name": "tags",
        "type": "embedding",
        "input_dim": 7,
        "output_dim": 4,
        "combiner": "sqrtn",
    },
    {
        "name": "words",
        "type": "embedding",
        "input_dim": 5,
        "output_dim": 4,
        "combiner": "sum",
    },
    {"name": "age", "type": "numeric"},
    {"name": "price", "type": "numeric"},
]


def _inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, 7, (batch, 3)).astype(np.int32)
    tags[0] = 0  # a row of padding only: pools to zeros
    return {
        "user": rng.integers(0, 9, batch).astype(np.int32),
        "item": rng.integers(0, 12, batch).astype(np.int32),
        "tags": tags,
        "words": rng.integers(0, 5, (batch, 4)).astype(np.int32),
        "age": rng.normal(size=batch).astype(np.float32),
        "price": rng.normal(size=batch).astype(np.float32),
    }


def _randomized(model, seed=0):
    # Trained-like weights: the wide biases start at zero, the cross
    # layers' biases too.
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.normal(scale=0.5, size=w.shape).astype(np.float32)
            for w in model.get_weights()
        ]
    )
    return model


@pytest.mark.parametrize("stacked", [False, True])
def test_numpy_ranker_adds_a_bias_per_class(stacked):
    model = _randomized(
        TabularModel(
            INPUTS,
            task="multiclass",
            num_classes=4,
            class_biases=True,
            stacked=stacked,
        )
    )
    fast = NumpyRanker.from_keras(model)
    x = _inputs(16)
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(fast(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "interaction, task, wide, inputs",
    [
        ("mlp", "binary", True, INPUTS),
        ("mlp", "regression", False, INPUTS[:1]),  # one input: no concat
        ({"name": "dcn", "num_layers": 2}, "binary", True, INPUTS),
        (
            {"name": "dcn", "num_layers": 1, "projection_dim": 3},
            "regression",
            False,
            INPUTS,
        ),
        ({"name": "dot", "dot_dim": 4}, "binary", True, INPUTS),
        (
            {"name": "dot", "dot_dim": 5, "bottom_units": [3]},
            "regression",
            True,
            INPUTS,
        ),
        ({"name": "dot", "dot_dim": 4}, "binary", False, INPUTS[:4]),
        ("dcn", "multiclass", True, INPUTS),
    ],
)
@pytest.mark.parametrize("stacked", [False, True])
def test_numpy_ranker_equals_the_keras_model(
    interaction, task, wide, inputs, stacked
):
    model = _randomized(
        TabularModel(
            inputs,
            interaction=interaction,
            task=task,
            num_classes=3,
            hidden_units=[8, 4],
            wide=wide,
            stacked=stacked,
            auxiliary_weight=0.5,  # training only: not in the scores
            output_scale=3.0 if task == "regression" else 1.0,
        )
    )
    fast = NumpyRanker.from_keras(model)
    assert fast is not None
    x = {k: v for k, v in _inputs(32).items() if k in model.feature_names}
    assert fast.supports(x)
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(fast(x), expected, rtol=1e-5, atol=1e-6)


def test_numpy_ranker_refuses_what_it_does_not_implement(caplog):
    caplog.set_level(logging.INFO, logger="recsys.serving.fast_ranker")

    class Custom(TabularModel):
        pass

    assert NumpyRanker.from_keras(Custom(INPUTS)) is None
    model = TabularModel(INPUTS, interaction="dcn")
    model.hidden[0].activation = keras.activations.get("tanh")
    assert NumpyRanker.from_keras(model) is None
    assert "Ranker served by Keras" in caplog.text


def test_numpy_ranker_does_not_support_ids_outside_its_tables():
    fast = NumpyRanker.from_keras(TabularModel(INPUTS))
    x = _inputs(4)
    assert fast.supports(x)
    assert not fast.supports({**x, "item": np.array([0, 1, 2, 12])})
    assert not fast.supports({**x, "user": np.array([0.0, 1, 2, 3])})
    assert not fast.supports({k: v for k, v in x.items() if k != "age"})


def test_id_rows_find_every_spelling_of_an_id():
    ints = IdRows(pd.Series([10, 20, 30]))
    mixed = np.array(["20", 30, "x", 10, None], dtype=object)
    np.testing.assert_array_equal(ints(mixed), [1, 2, -1, 0, -1])
    np.testing.assert_array_equal(ints(np.array([30, 31])), [2, -1])
    np.testing.assert_array_equal(
        ints(np.array(["30", "10", "30"], dtype=object)), [2, 0, 2]
    )
    words = IdRows(pd.Series(["a", "7"]))
    np.testing.assert_array_equal(
        words(np.array([7, "a", 8], dtype=object)), [1, 0, -1]
    )
    np.testing.assert_array_equal(words(np.array([7, 8])), [1, -1])


def _pairs(ranker):
    users = ranker.users[ranker.user_column].tolist()
    items = ranker.items[ranker.item_column].tolist()
    # Known users and items in several spellings, and unknown ones.
    user_ids = [users[0], str(users[1]), "nobody", users[2], users[0]]
    item_ids = [items[0], items[5], items[7], 10**9, items[3]]
    return np.asarray(user_ids, dtype=object), np.asarray(item_ids)


def _assert_scores_as(scorer, expected, ranker, tolerance=1e-5):
    """`scorer` scores `_pairs(ranker)` as `expected` does."""
    users, items = _pairs(ranker)
    np.testing.assert_allclose(
        scorer.score_pairs(users, items),
        expected.score_pairs(users, items),
        rtol=tolerance,
        atol=tolerance,
    )


def test_pair_encoder_equals_the_bundles_pair_frame(ranker_bundle):
    ranker = ranker_bundle
    users, items = _pairs(ranker)
    encoder = PairEncoder(ranker)
    expected = ranker.preprocessor.transform(ranker.pair_frame(users, items))
    # The second time, the unknown ids' inputs come from the cache.
    for _ in range(2):
        inputs = encoder.encode(users, items)
        assert sorted(inputs) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(inputs[name], value, err_msg=name)
    assert "nobody" in encoder._unknown[ranker.user_column]


def test_pair_encoder_gives_the_history_input(ranker_bundle):
    ranker = ranker_bundle
    history = np.arange(len(ranker.users) * 3, dtype=np.int32).reshape(-1, 3)
    with_history = TabularBundle(
        ranker.path,
        ranker.manifest,
        ranker.preprocessor,
        ranker.model,
        ranker.items,
        ranker.users,
        user_history=history,
    )
    users, items = _pairs(ranker)
    inputs = PairEncoder(with_history).encode(users, items)
    expected = with_history._histories(ranker.pair_frame(users, items))
    np.testing.assert_array_equal(inputs[HISTORY], expected)
    assert not inputs[HISTORY][2].any()  # "nobody": zeros


@pytest.mark.parametrize("fast, kind", [(True, "numpy"), (False, "keras")])
def test_served_scores_equal_the_bundles(ranker_bundle, fast, kind):
    reranker = Reranker(ranker_bundle, fast=fast)
    assert reranker.kind == kind
    _assert_scores_as(reranker._scorer, ranker_bundle, ranker_bundle)


def _blas_threads():
    return {
        lib["num_threads"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    }


def test_one_blas_thread_holds_while_any_caller_is_inside(ranker_bundle):
    before = _blas_threads()
    reranker = Reranker(ranker_bundle)
    with reranker.serving():  # a server holds it for its lifetime
        assert _blas_threads() == {1}
        with ONE_BLAS_THREAD:  # each numpy call enters too
            assert _blas_threads() == {1}
        assert _blas_threads() == {1}
    assert _blas_threads() == before
    with Reranker(ranker_bundle, fast=False).serving():
        assert _blas_threads() == before


def test_numpy_ranker_of_a_stacked_model_of_numbers_only():
    model = _randomized(TabularModel(INPUTS[4:], stacked=True))
    fast = NumpyRanker.from_keras(model)
    assert fast is not None
    x = {k: v for k, v in _inputs(8).items() if k in model.feature_names}
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(fast(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "interaction",
    ["mlp", "dcn", {"name": "dot", "dot_dim": 4, "bottom_units": [3]}],
)
def test_numpy_ranker_reads_missing_values_as_the_keras_model(interaction):
    # "age" keeps its empty cells as NaN: 0 beside a 0/1 input saying so.
    inputs = [*INPUTS[:4], {**INPUTS[4], "missing": True}, INPUTS[5]]
    model = _randomized(
        TabularModel(inputs, interaction=interaction, hidden_units=[8])
    )
    fast = NumpyRanker.from_keras(model)
    assert fast is not None
    assert fast.indicators == ["age"]
    x = _inputs(32)
    x["age"][::3] = np.nan
    expected = keras.ops.convert_to_numpy(model(x))
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(fast(x), expected, rtol=1e-5, atol=1e-6)
    assert NumpyRanker(**fast.state())(x).tolist() == fast(x).tolist()
