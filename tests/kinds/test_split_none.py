"""`data.split = "none"`: every kind trains on every row of a table the
test writes (the bundle to ship), with no test metrics to report."""

import json
import types

import numpy as np
import pandas as pd
import pytest

from recsys import load_bundle
from recsys import load_config
from recsys import train
from recsys.bundles.two_tower import Bundle
from recsys.cli import main
from recsys.data.split import NO_TEST_NOTE
from recsys.data.split import temporal_split
from recsys.kinds import get_kind
from recsys.two_stage import evaluate_two_stage

ITEMS = [f"i{n:02d}" for n in range(15)]


def _purchases():
    """20 users of 5 distinct items each, in time order, and `solo`, whose
    one row any per-user split would hold out whole."""
    rng = np.random.default_rng(0)
    rows = [
        (f"u{user:02d}", item, 10 * user + position)
        for user in range(20)
        for position, item in enumerate(rng.choice(ITEMS, 5, replace=False))
    ]
    rows.append(("solo", "i07", 500))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _two_tower_config(path, *overrides):
    _purchases().to_csv(path, index=False)
    return load_config(
        {
            "data": {"source": str(path), "split": "none"},
            "model": {"kind": "two_tower", "history_length": 3},
            "train": {"epochs": 2, "early_stopping": True},
            "index": {"kind": "brute_force"},
            "evaluate": {"ks": [5]},
        },
        list(overrides),
    )


def _assert_no_test_metrics(metrics, rows):
    assert metrics["note"] == NO_TEST_NOTE
    assert not {"test", "validation", "class_shares"} & set(metrics)
    assert not [key for key in metrics if key.startswith("baseline")]
    assert metrics["split"]["method"] == "none"
    assert metrics["split"]["train_rows"] == rows
    assert metrics["split"]["held_out_rows"] == 0


def test_two_tower_split_none_learns_every_row(tmp_path, capsys):
    frame = _purchases()
    config = _two_tower_config(tmp_path / "purchases.csv")
    output = str(tmp_path / "bundle")
    result = train(config, output, progress=False)
    with open(f"{output}/metrics.json") as f:
        metrics = json.load(f)
    _assert_no_test_metrics(metrics, len(frame))
    assert metrics["split"]["validation"] == {
        "method": "user_time",
        "test_fraction": 0.2,
    }
    # The epochs were chosen on the carve, then every row was trained on.
    assert metrics["train"]["early_stopping"]["scores"]
    assert metrics["train"]["train_rows"] == len(frame)
    assert NO_TEST_NOTE[:40] in get_kind("two_tower").summary(metrics, config)

    bundle = Bundle.load(output)
    users = frame["user_id"].unique()
    assert (bundle.user_rows(users) >= 0).all()  # `solo` among them
    for user, rows in frame.groupby("user_id"):
        seen = bundle.seen(bundle.user_row(user))
        assert set(bundle.item_ids[seen]) == set(rows["item_id"])
    # u03's latest item is seen: never recommended back.
    latest = frame[frame["user_id"] == "u03"].iloc[-1]["item_id"]
    ids, _ = bundle.recommend(["u03"], k=10)
    assert set(ids[0]) == set(ITEMS) - set(
        frame.loc[frame["user_id"] == "u03", "item_id"]
    )
    assert latest not in ids[0]
    # Popularity counts every row.
    counts = frame["item_id"].value_counts()
    np.testing.assert_allclose(
        bundle.item_popularity[bundle.item_rows(counts.index)],
        counts.to_numpy() / len(frame),
        rtol=1e-6,
    )
    # The served history: the user's 3 latest items, most recent first.
    users = result.prepared.users
    row = list(users["users"]).index("u03")
    history = frame[frame["user_id"] == "u03"]["item_id"].iloc[::-1][:3]
    expected = result.prepared.preprocessor.transform_column("item_id", history)
    np.testing.assert_array_equal(users["inputs"]["history"][row], expected)

    # `recsys evaluate` says there is nothing held out, without a traceback.
    capsys.readouterr()
    assert main(["evaluate", output]) == 1
    assert main(["evaluate", output, "--json", "--rescore"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count('trained with data.split = "none"') == 2
    assert "Traceback" not in captured.err


def test_two_tower_split_none_reports_the_carve_of_every_row(tmp_path):
    config = _two_tower_config(
        tmp_path / "purchases.csv",
        'evaluate.split="validation"',
        "train.early_stopping=false",
    )
    metrics = train(config, write=False, progress=False).metrics
    fit, held = temporal_split(
        _purchases(), user="user_id", item="item_id", time="timestamp"
    )
    # What a `recsys tune` trial is scored on.
    assert metrics["validation"]["num_interactions"] == len(held)
    assert metrics["split"]["train_rows"] == len(fit)


def test_a_written_bundle_of_the_carve_says_it_is_not_the_one_to_ship(
    tmp_path, caplog
):
    # Written with "none" in its metrics, it had learnt half the rows.
    config = _two_tower_config(
        tmp_path / "purchases.csv",
        'evaluate.split="validation"',
        "train.early_stopping=false",
    )
    with caplog.at_level("WARNING", logger="recsys.kinds.base"):
        train(config, str(tmp_path / "bundle"), progress=False)
    assert "it is not the bundle to ship" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="recsys.kinds.base"):
        train(config, write=False, progress=False)  # a tune trial
    assert "not the bundle to ship" not in caplog.text


def test_tune_scores_the_carve_of_every_row_then_trains_on_every_row(
    tmp_path,
):
    from recsys.tune import Choice
    from recsys.tune import tune

    config = _two_tower_config(
        tmp_path / "purchases.csv", "train.early_stopping=false"
    )
    result = tune(
        config,
        str(tmp_path / "study"),
        trials=1,
        space={"train.learning_rate": Choice((0.1,))},
        progress=False,
    )
    # The trial was scored on the carve (`evaluate.split = "validation"`).
    assert result.trials["value"].notna().all()
    _assert_no_test_metrics(result.test_metrics, len(_purchases()))
    assert (result.bundle.user_rows(["solo"]) >= 0).all()


def test_two_stage_refuses_the_test_split_of_a_split_none_retriever():
    data = {"user": "u", "item": "i", "time": "t", "split": "none"}
    recommender = types.SimpleNamespace(
        retriever=types.SimpleNamespace(config={"data": data})
    )
    with pytest.raises(ValueError, match='data.split = "none": no row is'):
        evaluate_two_stage(recommender, pd.DataFrame())


def _labelled(rows=400):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 30, rows),
            "item_id": rng.integers(0, 20, rows),
            "timestamp": rng.permutation(rows),
            "price": rng.normal(size=rows),
        }
    )
    frame["clicked"] = (frame["item_id"] % 3 == 0).astype(int)
    return frame


def _labelled_config(path, *overrides):
    """`_labelled()` written to `path`, read by labelled.toml with "none"."""
    _labelled().to_csv(path, index=False)
    return load_config(
        "configs/examples/labelled.toml",
        [f'data.source="{path}"', 'data.split="none"', *overrides],
    )


def test_tabular_split_none_trains_on_every_row(tmp_path):
    frame = _labelled()
    config = _labelled_config(tmp_path / "labelled.csv", "train.epochs=2")
    output = str(tmp_path / "bundle")
    result = train(config, output, progress=False)
    _assert_no_test_metrics(result.metrics, len(frame))
    parts = {name: part[0] for name, part in result.prepared.parts.items()}
    assert len(parts["train"]) == len(frame) and len(parts["test"]) == 0
    # Early stopping's carve: each user's latest fifth of every row.
    held = temporal_split(
        frame, user="user_id", item="item_id", time="timestamp"
    )[1]
    assert len(parts["validation"]) == len(held)
    assert len(parts["fit"]) == len(frame) - len(held)
    kind = get_kind("tabular")
    assert NO_TEST_NOTE[:40] in kind.summary(result.metrics, config)
    # The served bundle knows every user, and says it cannot be measured.
    bundle = load_bundle(output)
    assert set(bundle.users["user_id"]) == set(frame["user_id"])
    with pytest.raises(ValueError, match="none was held out"):
        kind.evaluate_document(bundle)


def test_split_none_without_a_refit_says_it_is_not_every_row(tmp_path, caplog):
    # It learnt 240 of 300 rows, and metrics.json said every row.
    config = _labelled_config(
        tmp_path / "labelled.csv", "train.epochs=1", "train.refit=false"
    )
    with caplog.at_level("WARNING", logger="recsys.kinds.base"):
        train(config, str(tmp_path / "bundle"), progress=False)
    assert "with train.refit = false: the model learns" in caplog.text


def test_text_split_none_trains_on_every_row(tmp_path, capsys):
    rng = np.random.default_rng(2)
    words = np.array(["good", "bad", "fine", "awful", "great", "poor"])
    labels = rng.integers(0, 2, 200)
    texts = [" ".join(rng.choice(words[label::2], 4)) for label in labels]
    pd.DataFrame({"text": texts, "label": labels}).to_csv(
        tmp_path / "texts.csv", index=False
    )
    config = load_config(
        "configs/examples/texts.toml",
        [
            f'data.source="{tmp_path / "texts.csv"}"',
            'data.split="none"',
            "train.epochs=2",
        ],
    )
    output = str(tmp_path / "bundle")
    result = train(config, output, progress=False)
    _assert_no_test_metrics(result.metrics, 200)
    prepared = result.prepared
    assert len(prepared.train) == 200 and len(prepared.test) == 0
    # Early stopping read the rows ending in the validation suffixes.
    assert prepared.valid.index.tolist() == [
        n for n in range(200) if n % 10 in (1, 6)
    ]
    assert result.metrics["train"]["train_rows"] == 200
    assert NO_TEST_NOTE[:40] in get_kind("text").summary(result.metrics, config)
    assert load_bundle(output).predict_proba(["good fine"]).shape == (1, 2)
    capsys.readouterr()
    assert main(["evaluate", output]) == 1
    assert 'data.split = "none"' in capsys.readouterr().err


def test_users_of_one_row_say_the_carve_holds_out_every_row(tmp_path, caplog):
    # The warning said the carve "is empty" when it had taken every row.
    frame = pd.DataFrame(
        {
            "user_id": [f"u{n}" for n in range(30)],
            "item_id": [ITEMS[n % 15] for n in range(30)],
            "timestamp": range(30),
        }
    )
    frame.to_csv(tmp_path / "once.csv", index=False)
    config = load_config(
        {
            "data": {"source": str(tmp_path / "once.csv"), "split": "none"},
            "model": {"kind": "two_tower"},
            "train": {"epochs": 1, "early_stopping": True},
            "index": {"kind": "brute_force"},
            "evaluate": {"ks": [5]},
        }
    )
    caplog.set_level("WARNING", logger="recsys.kinds.two_tower")
    train(config, write=False, progress=False)
    assert "holds out every row (each user has too few" in caplog.text


def test_scann_on_a_tiny_catalog_is_refused_before_training(tmp_path):
    config = _two_tower_config(tmp_path / "purchases.csv", 'index.kind="scann"')
    with pytest.raises(ValueError, match=r"needs at least 16 items; .* 15"):
        train(config, write=False, progress=False)
