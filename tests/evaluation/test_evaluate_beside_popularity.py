import logging

import numpy as np
import pytest

from recsys.evaluation.retrieval import evaluate_beside_popularity
from recsys.evaluation.retrieval import evaluate_retrieval

ROWS = {
    "candidates": np.array([1, 2, 3, 4]),
    "test_users": np.array([10, 11, 11]),
    "test_items": np.array([4, 1, 3]),
    "train_users": np.array([10, 11]),
    "train_items": np.array([1, 2]),
    "ks": (1, 2),
}


def _model_scores(users):
    # Every user ranks the items in reverse id order: 4, 3, 2, 1.
    return np.tile(np.array([1.0, 2.0, 3.0, 4.0], np.float32), (len(users), 1))


def test_model_and_popularity_are_scored_on_the_same_rows():
    popularity = np.array([3.0, 2.0, 1.0, 0.0], np.float32)
    metrics = evaluate_beside_popularity(
        _model_scores, popularity, split="validation", **ROWS
    )
    assert set(metrics) == {"validation", "baseline_popularity"}
    assert metrics["validation"] == evaluate_retrieval(_model_scores, **ROWS)
    # Popularity ranks 1, 2, 3, 4: user 10's item 4 is last; user 11's item
    # 1 first, item 3 third (second once the seen item 2 is filtered).
    assert metrics["baseline_popularity"] == pytest.approx(
        {
            "hr@1": 1 / 3,
            "hr@2": 1 / 3,
            "hr@1_filtered": 1 / 3,
            "hr@2_filtered": 2 / 3,
            # Per user: user 10 finds none of 1 item, user 11 1 of 2 in its
            # top 1 and top 2 (both of 2 in its filtered top 2).
            "recall@1": 0.25,
            "recall@2": 0.25,
            "recall@1_filtered": 0.25,
            "recall@2_filtered": 0.5,
            # Ranks 3, 0, 2 (filtered 2, 0, 1).
            "ndcg@1": 1 / 3,
            "ndcg@2": 1 / 3,
            "ndcg@1_filtered": 1 / 3,
            "ndcg@2_filtered": (1 + 1 / np.log2(3)) / 3,
            "mrr": (1 / 4 + 1 + 1 / 3) / 3,
            "mrr_filtered": (1 / 3 + 1 + 1 / 2) / 3,
            # Everyone's list is 1, 2, 3, 4; filtered, user 10's is 2, 3, 4
            # and user 11's 1, 3, 4.
            "coverage@1": 1 / 4,
            "coverage@2": 2 / 4,
            "coverage@1_filtered": 2 / 4,
            "coverage@2_filtered": 3 / 4,
            "num_interactions": 3,
            "num_users": 2,
        }
    )


def test_the_split_name_defaults_to_test():
    popularity = np.ones(4, np.float32)
    metrics = evaluate_beside_popularity(_model_scores, popularity, **ROWS)
    assert set(metrics) == {"test", "baseline_popularity"}


def test_an_empty_split_is_refused_naming_it():
    rows = {**ROWS, "test_users": np.array([]), "test_items": np.array([])}
    with pytest.raises(ValueError, match="'validation' split has no test"):
        evaluate_beside_popularity(
            _model_scores, np.ones(4, np.float32), split="validation", **rows
        )


def test_a_cutoff_past_the_catalog_warns_once(caplog, monkeypatch):
    from recsys.evaluation import retrieval

    monkeypatch.setattr(retrieval, "_SAID_WHOLE_CATALOG", set())
    rows = {**ROWS, "ks": (2, 4)}
    with caplog.at_level(logging.WARNING):
        # Early stopping evaluates every epoch: one warning, not one each.
        for _ in range(3):
            metrics = evaluate_beside_popularity(
                _model_scores, np.ones(4, np.float32), **rows
            )
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "HR@4 is 1 by construction" in warnings[0]
    assert "4 items" in warnings[0]
    assert metrics["test"]["hr@4"] == 1.0
