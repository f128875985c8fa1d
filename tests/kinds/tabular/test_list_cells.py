"""A multi-valued column of list cells trains as its "a|b" text twin."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys import train

CONFIG = {
    "data": {"user": "user", "item": "item", "time": "ts", "label": "rating"},
    "model": {
        "kind": "tabular",
        "task": "regression",
        "features": ["user", "tags"],
    },
    "features": {
        "user": {"kind": "categorical"},
        "tags": {"kind": "multi_categorical", "separator": "|"},
    },
    "train": {"epochs": 1},
    "evaluate": {"baselines": []},
}


def _frame():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1, 41), 6)
    items = rng.integers(1, 25, len(users))
    return pd.DataFrame(
        {
            "user": users,
            "item": items,
            "ts": np.arange(len(users)),
            "rating": 3.0 + (items % 3 == 0),
            "tags": [[f"t{i % 5}", f"t{i % 4}"] for i in items],
        }
    )


@pytest.mark.parametrize("form", ["lists", "arrow"])
def test_list_cells_of_a_table_with_ids_train_as_their_text_twin(
    form, tmp_path
):
    # The item table (`side_tables`) counted each item's values with
    # pandas, which cannot hash a list: a crash after the whole training.
    frame = _frame()
    text = frame.assign(tags=frame["tags"].map("|".join))
    if form == "arrow":  # read_parquet(..., dtype_backend="pyarrow")
        frame["tags"] = pd.Series(
            frame["tags"].tolist(), dtype=pd.ArrowDtype(pa.list_(pa.string()))
        )
    bundle, result = train(
        CONFIG, str(tmp_path / "lists"), frame=frame, progress=False
    )
    twin, twin_result = train(
        CONFIG, str(tmp_path / "text"), frame=text, progress=False
    )
    assert result["test"] == twin_result["test"]
    assert bundle.items.columns.tolist() == ["item", "tags"]
    np.testing.assert_allclose(
        bundle.score_pairs([1, 2, 3], [1, 2, 3]),
        twin.score_pairs([1, 2, 3], [1, 2, 3]),
    )
