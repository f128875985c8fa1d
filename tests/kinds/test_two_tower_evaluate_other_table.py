"""`recsys evaluate --data` on a table the bundle does not know: held-out
items outside its catalog are refused in one line (they stopped at a bare
"Every test item must be among the candidates", or at LAPACK's stderr and
"EASE's Gram matrix is not positive definite"), and held-out users all
unknown to it are said beside the table."""

import re

import numpy as np
import pandas as pd
import pytest

from recsys import train
from recsys.baselines.retrieval import EASE
from recsys.kinds import get_kind


def _events(rows=1200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 60, rows),
            "item_id": rng.integers(0, 40, rows),
            "timestamp": np.arange(rows) * 60,
        }
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    config = {
        "data": {"user": "user_id", "item": "item_id", "time": "timestamp"},
        "features": {
            "user_id": {"kind": "categorical"},
            "item_id": {"kind": "categorical"},
        },
        "model": {
            "kind": "two_tower",
            "query_features": ["user_id"],
            "candidate_features": ["item_id"],
        },
        "train": {"epochs": 1, "early_stopping": False},
        "evaluate": {"baselines": ["popularity", "ease"]},
    }
    path = tmp_path_factory.mktemp("bundles") / "events"
    return train(config, str(path), frame=_events(), progress=False).bundle


def _refusal(bundle, frame):
    with pytest.raises(ValueError) as info:
        get_kind("two_tower").rescore(bundle, frame)
    return str(info.value)


def test_items_of_another_type_are_refused_naming_both(bundle, capfd):
    frame = _events()
    frame["item_id"] = "i" + frame["item_id"].astype(str)
    message = _refusal(bundle, frame)
    assert message.startswith("The table passed (--data): ")
    assert "held-out items (e.g. 'i" in message
    assert "not in the bundle's catalog of 40 integer ids" in message
    assert "Fix: evaluate on the table the bundle was trained on" in message
    assert "DPOTRI" not in capfd.readouterr().err


def test_new_items_are_counted(bundle):
    frame = _events()
    frame.loc[frame.index % 2 == 0, "item_id"] += 1000
    message = _refusal(bundle, frame)
    counts = re.search(
        r": (\d+) of its (\d+) held-out items \(e.g. 10", message
    )
    assert counts and 0 < int(counts[1]) < int(counts[2])


def test_a_new_item_in_a_training_row_is_refused_as_such(bundle):
    # One training row's item: "Every test item must be among the
    # candidates" (of the baselines' carve), which named no item.
    frame = _events()
    frame.loc[0, "item_id"] = 999_999  # the first row: a training row
    message = _refusal(bundle, frame)
    assert re.search(r": 1 of its \d+ training items \(e.g. 999999\)", message)
    assert "not in the bundle's catalog of 40 integer ids" in message


def test_users_all_unknown_are_said_beside_the_table(bundle):
    frame = _events()
    frame["user_id"] += 5000
    kind = get_kind("two_tower")
    metrics = kind.rescore(bundle, frame)
    assert metrics["test"]["hr@10"] == metrics["baseline_popularity"]["hr@10"]
    report = kind.evaluate_report(bundle, frame=frame)
    assert re.search(r"none of the \d+ held-out users is known to the", report)
    # Its own table: no such note.
    assert "known to the bundle" not in kind.evaluate_report(
        bundle, frame=_events()
    )


def test_ease_of_no_training_item_among_the_candidates_scores_nothing():
    ease = EASE().fit(np.array([1, 2]), np.array([10, 11]), np.array([1, 2]))
    assert ease.score(np.array([1, 3])).shape == (2, 2)
