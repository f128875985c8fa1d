"""Every kind trains on every split rule (data.split) of a table the test
writes, and metrics.json says which split it was."""

import numpy as np
import pandas as pd
import pytest

from recsys import load_bundle
from recsys import load_config
from recsys import train
from recsys.data.split import split_rule
from recsys.data.split import split_table
from recsys.kinds import get_kind


def _events(rows=900, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, rows),
            "item_id": rng.integers(0, 30, rows),
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.permutation(rows), "h"),
            "price": rng.normal(size=rows),
        }
    )
    frame["clicked"] = (frame["item_id"] % 3 == 0).astype(int)
    frame["part"] = rng.choice(
        ["train", "validation", "test"], rows, p=[0.7, 0.1, 0.2]
    )
    # A user's export: times as ISO text.
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return frame


def _run(example, path, frame, *overrides, output=None):
    frame.to_csv(path, index=False)
    config = load_config(
        f"configs/examples/{example}.toml",
        [f'data.source="{path}"', *overrides],
    )
    result = train(config, output, write=bool(output), progress=False)
    return config, result.metrics


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ['data.split="time"', 'data.split_cutoff="2024-01-30"'],
            {
                "method": "time",
                "cutoff": "2024-01-30",
                "validation_fraction": 0.2,
            },
        ),
        (
            [
                'data.split="random"',
                "data.test_fraction=0.25",
                "data.split_seed=7",
            ],
            {"method": "random", "test_fraction": 0.25, "seed": 7},
        ),
    ],
)
def test_retrieval_trains_on_a_global_split(tmp_path, overrides, expected):
    frame = _events()
    config, metrics = _run(
        "interactions",
        tmp_path / "events.csv",
        frame,
        *overrides,
        "train.epochs=1",
        'index.kind="brute_force"',
        output=str(tmp_path / "bundle"),
    )
    parsed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"]))
    train_rows, test_rows = split_table(parsed, split_rule(config["data"]))
    split = dict(metrics["split"])
    # The share of test rows repeating a training (user, item) pair.
    data = config["data"]
    columns = [data["user"], data["item"]]
    pairs = set(train_rows[columns].itertuples(index=False, name=None))
    held = list(test_rows[columns].itertuples(index=False, name=None))
    assert split.pop("repeat_share") == pytest.approx(
        sum(pair in pairs for pair in held) / len(held)
    )
    # The catalog: every item of the table, held-out ones too.
    assert split.pop("items") == frame[data["item"]].nunique()
    assert split == {
        **expected,
        "train_rows": len(train_rows),
        "held_out_rows": len(test_rows),
    }
    # Test users unseen in training are scored (by popularity), not dropped.
    assert metrics["test"]["num_interactions"] == len(test_rows)
    # `recsys evaluate --rescore` splits the table again by the same rule.
    bundle = load_bundle(str(tmp_path / "bundle"))
    rescored = get_kind("two_tower").rescore(bundle)
    assert rescored["test"] == pytest.approx(metrics["test"], abs=1e-6)


def test_tabular_early_stopping_carve_follows_the_column_split(tmp_path):
    frame = _events()
    config, metrics = _run(
        "labelled",
        tmp_path / "labelled.csv",
        frame,
        'data.split="column"',
        'data.split_column="part"',
        "train.epochs=2",
    )
    assert metrics["split"] == {
        "method": "column",
        "column": "part",
        "train_rows": int((frame["part"] != "test").sum()),
        "held_out_rows": int((frame["part"] == "test").sum()),
    }
    assert 0 <= metrics["test"]["auc"] <= 1


def test_text_random_split(tmp_path):
    rng = np.random.default_rng(1)
    words = np.array(["good", "bad", "fine", "awful", "great", "poor"])
    labels = rng.integers(0, 2, 300)
    texts = [" ".join(rng.choice(words[label::2], 4)) for label in labels]
    frame = pd.DataFrame({"text": texts, "label": labels})
    _, metrics = _run(
        "texts",
        tmp_path / "texts.csv",
        frame,
        'data.split="random"',
        "data.test_fraction=0.3",
        "train.epochs=2",
    )
    assert metrics["split"] == {
        "method": "random",
        "test_fraction": 0.3,
        "seed": 0,
        "train_rows": 210,
        "held_out_rows": 90,
    }
    assert metrics["test"]["auc"] > 0.9


def test_a_large_table_fits_its_vocabularies_in_chunks(monkeypatch, capsys):
    import recsys.kinds.base as base
    from recsys.features import Preprocessor
    from recsys.features.specs import feature_from_config

    frame = _events(rows=500)
    specs = [
        feature_from_config({"name": "item_id", "kind": "categorical"}),
        feature_from_config({"name": "price", "kind": "numeric"}),
    ]
    whole = Preprocessor(features=specs).fit(frame)
    monkeypatch.setattr(base, "FIT_CHUNK_ROWS", 120)
    chunked = base.fit_preprocessor(specs, frame, progress=True)
    assert "fit vocabularies" in capsys.readouterr().err
    assert chunked.vocabularies_ == whole.vocabularies_
    np.testing.assert_allclose(
        chunked.transform(frame)["price"], whole.transform(frame)["price"]
    )


def test_retrieval_learns_from_the_positive_rows_only(tmp_path):
    frame = _events()
    output = str(tmp_path / "bundle")
    config, metrics = _run(
        "interactions",
        tmp_path / "events.csv",
        frame,
        'data.positive_column="price"',
        "data.positive_min=0",
        "train.epochs=1",
        'index.kind="brute_force"',
        output=output,
    )
    positive = frame[frame["price"] >= 0].reset_index(drop=True)
    parsed = positive.assign(timestamp=pd.to_datetime(positive["timestamp"]))
    train_rows, test_rows = split_table(parsed, split_rule(config["data"]))
    assert metrics["split"]["train_rows"] == len(train_rows)
    assert metrics["test"]["num_interactions"] == len(test_rows)
    # `recsys evaluate` filters the table the same way.
    bundle = load_bundle(output)
    again = get_kind("two_tower").rescore(bundle)
    assert again["test"] == pytest.approx(metrics["test"])


def test_rows_of_one_date_are_not_each_others_history(tmp_path):
    # A table of dates: every row of a user shares the day, so the split's
    # tie-break (item id) decides which rows are held out. Histories of the
    # tied rows before a row would teach the model that order.
    frame = _events()
    frame["timestamp"] = "2024-01-01"
    frame.to_csv(tmp_path / "days.csv", index=False)
    config = load_config(
        "configs/examples/interactions.toml",
        [f'data.source="{tmp_path / "days.csv"}"', "model.history_length=5"],
    )
    prepared = get_kind("two_tower").prepare(config, progress=False)
    assert not prepared.inputs["history"].any()
    # A known user is still served with their latest items.
    assert prepared.users["inputs"]["history"].any()
