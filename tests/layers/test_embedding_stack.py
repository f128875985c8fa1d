import keras
import numpy as np
import pytest

from recsys.layers import EmbeddingStack
from recsys.layers import PooledEmbedding
from tests.battery import run_serialization_battery

# Two widths, single- and multi-valued columns interleaved, every combiner.
INPUTS = [
    {"name": "user", "input_dim": 9, "output_dim": 4},
    {"name": "tags", "input_dim": 7, "output_dim": 4, "combiner": "sqrtn"},
    {"name": "item", "input_dim": 12, "output_dim": 6},
    {"name": "words", "input_dim": 5, "output_dim": 4, "combiner": "sum"},
    {"name": "city", "input_dim": 3, "output_dim": 4},
    {"name": "genres", "input_dim": 6, "output_dim": 6},
]


def _inputs(batch=16, seed=0):
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, 7, (batch, 3))
    tags[0] = 0  # padding only: pools to zeros
    return {
        "user": rng.integers(0, 9, batch),
        "tags": tags,
        "item": rng.integers(0, 12, batch).astype("int64"),
        "words": rng.integers(0, 5, (batch, 4)),
        "city": rng.integers(0, 3, batch),
        "genres": rng.integers(0, 6, (batch, 2)),
    }


def test_stack_equals_one_pooled_table_per_column():
    stack = EmbeddingStack(INPUTS)
    stack.build()
    x = _inputs()
    expected = []
    for spec, rows in zip(INPUTS, stack.column_tables(), strict=True):
        table = PooledEmbedding(
            spec["input_dim"],
            spec["output_dim"],
            combiner=spec.get("combiner", "mean"),
        )
        table.build((None,))
        table.set_weights([keras.ops.convert_to_numpy(rows)])
        expected.append(keras.ops.convert_to_numpy(table(x[spec["name"]])))
    out = keras.ops.convert_to_numpy(stack(x))
    np.testing.assert_allclose(out, np.concatenate(expected, 1), atol=1e-6)
    # Padding-only rows pool to the zero vector, as `PooledEmbedding` does.
    np.testing.assert_array_equal(out[0, 4:8], 0)


def test_stack_holds_one_table_per_width():
    stack = EmbeddingStack(INPUTS)
    stack.build()
    assert [tuple(w.shape) for w in stack.weights] == [
        (9 + 7 + 5 + 3, 4),
        (12 + 6, 6),
    ]
    assert stack.offsets == [0, 9, 0, 16, 21, 12]
    biases = EmbeddingStack(
        INPUTS, output_dim=2, embeddings_initializer="zeros"
    )
    biases.build()
    assert [tuple(w.shape) for w in biases.weights] == [(42, 2)]
    assert not np.any(biases.get_weights()[0])
    assert keras.ops.convert_to_numpy(biases(_inputs())).shape == (16, 12)


def test_stack_tables_start_from_different_draws():
    stack = EmbeddingStack(INPUTS)
    stack.build()
    four, six = (w.ravel()[:8] for w in stack.get_weights())
    assert not np.allclose(four, six)


def test_stack_rejects_no_columns():
    with pytest.raises(ValueError, match="at least one column"):
        EmbeddingStack([])


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"input_dim": 0, "output_dim": 2}, "input_dim"),
        ({"input_dim": 3, "output_dim": -1}, "output_dim"),
        ({"input_dim": 2.5, "output_dim": 2}, "input_dim"),
    ],
)
def test_stack_rejects_a_table_size_that_is_no_positive_integer(spec, key):
    with pytest.raises(ValueError, match=f"'city'.*`{key}` must be"):
        EmbeddingStack([{"name": "city", **spec}])


@pytest.mark.parametrize(
    "spec, missing",
    [
        ({"name": "a", "input_dim": 10}, "output_dim"),
        ({"input_dim": 10, "output_dim": 2}, "name"),
    ],
)
def test_stack_names_the_keys_a_column_lacks(spec, missing):
    # A KeyError of the key alone before.
    with pytest.raises(ValueError, match=f"has no \\['{missing}'\\]"):
        EmbeddingStack([spec])


def test_stack_rejects_an_unknown_combiner():
    with pytest.raises(ValueError, match="'tags'.*combiner"):
        EmbeddingStack(
            [
                {
                    "name": "tags",
                    "input_dim": 3,
                    "output_dim": 2,
                    "combiner": "max",
                }
            ]
        )


def test_stack_serialization(tmp_path):
    stack = EmbeddingStack(
        INPUTS, embeddings_regularizer=keras.regularizers.L2(0.1)
    )
    stack.build()
    run_serialization_battery(stack, _inputs(), tmp_path)
