"""The table `recsys train` prints for a two-tower run."""

import pandas as pd

from recsys.evaluation.retrieval import metric_names
from recsys.evaluation.retrieval import ranking_metric_names
from recsys.evaluation.retrieval import repeat_share
from recsys.kinds.two_tower import summary

CONFIG = {"evaluate": {"split": "test", "ks": [10, 50]}}


def _metrics(names):
    side = {name: 0.5 for name in names}
    return {
        "test": {**side, "num_interactions": 7, "num_users": 2},
        "baseline_popularity": {name: 0.25 for name in names},
        "train": {
            "seconds": 1.0,
            "examples_per_second": 10.0,
            "backend": "jax",
        },
        "index": {"kind": "brute_force", "recall@10_vs_exact": 1.0},
    }


def test_summary_adds_the_filtered_ranking_metrics_after_hr():
    ks = (10, 50)
    lines = summary(
        _metrics(metric_names(ks) + ranking_metric_names(ks)), CONFIG
    ).splitlines()
    assert lines[2] == "hr@10                 0.5000      0.2500"
    assert lines[5] == "hr@50_filtered        0.5000      0.2500"
    table = lines[lines.index("") + 4 :]
    labels = [line.split()[0] for line in table[: table.index("")]]
    assert labels == [
        "recall@10",
        "recall@50",
        "ndcg@10",
        "ndcg@50",
        "mrr",
        "coverage@10",
        "coverage@50",
    ]


def test_summary_of_older_metrics_prints_hr_alone():
    text = summary(_metrics(metric_names((10, 50))), CONFIG)
    assert "hr@50_filtered" in text
    assert "ndcg" not in text and "coverage" not in text


def test_a_table_of_repeats_says_which_metrics_to_read():
    train = pd.DataFrame({"u": [1, 1, 2, 2], "i": [10, 11, 10, 12]})
    test = pd.DataFrame({"u": [1, 1, 2, 2], "i": [10, 12, 12, 13]})
    # (1, 10) and (2, 12) were training pairs; (1, 12) was only user 2's.
    share = repeat_share(train, test, user="u", item="i")
    assert share == 0.5
    metrics = _metrics(metric_names((10, 50)))
    metrics["split"] = {"repeat_share": share}
    text = summary(metrics, CONFIG)
    assert "50% of the held-out rows repeat" in text
    assert 'add "repeat" to evaluate.baselines.' in text
    metrics["split"] = {"repeat_share": 0.1}
    assert "repeat" not in summary(metrics, CONFIG)


def test_the_baseline_lines_say_what_each_chose():
    metrics = _metrics(metric_names((10, 50)))
    recent = {"l2": 50.0, "scale": 20.0, "seconds": 0.1}
    metrics["baselines"] = {
        "ease_recent": {**recent, "boost": 3.0},
        "ease_recent_flat": {**recent, "boost": 0.0},
        "item_knn": {"skipped": "no items", "seconds": 0.0},
    }
    lines = summary(metrics, CONFIG).splitlines()
    assert (
        "ease_recent: l2 = 50, recency weights 1 + 3 exp(-rank / 20), 0.1 s"
        in lines
    )
    # Boost 0 is EASE itself, not "1 + 0 exp(...)".
    assert (
        "ease_recent_flat: l2 = 50, no recency weight (= ease), 0.1 s" in lines
    )
    assert "item_knn: skipped, no items" in lines


def test_a_baseline_ahead_on_the_choosing_metric_is_noted():
    metrics = _metrics(metric_names((10, 50)))
    # 200 items: HR@10 chooses settings (a tenth of the catalog at most).
    metrics["split"] = {"repeat_share": 0.0, "items": 200}
    metrics["baseline_popularity"]["hr@10_filtered"] = 0.75

    def note():
        return " ".join(summary(metrics, CONFIG).split())

    assert (
        "note: popularity (0.7500) scores better than the model (0.5000) on "
        "hr@10_filtered, the metric `recsys tune CONFIG` chooses this "
        "model's settings by, on the validation carve." in note()
    )
    assert "recsys tune CONFIG" in note()
    # Ahead on HR@50 only: not the metric this catalog is judged by.
    metrics["baseline_popularity"]["hr@10_filtered"] = 0.25
    metrics["baseline_popularity"]["hr@50_filtered"] = 0.75
    assert "recsys tune" not in note()
    # On 1,000 items HR@50 is.
    metrics["split"]["items"] = 1000
    assert "(0.5000) on hr@50_filtered" in note()
