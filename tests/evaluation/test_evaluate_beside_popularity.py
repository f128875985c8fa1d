import numpy as np

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
    assert metrics["baseline_popularity"] == {
        "hr@1": 1 / 3,
        "hr@2": 1 / 3,
        "hr@1_filtered": 1 / 3,
        "hr@2_filtered": 2 / 3,
        "num_interactions": 3,
    }


def test_the_split_name_defaults_to_test():
    popularity = np.ones(4, np.float32)
    metrics = evaluate_beside_popularity(_model_scores, popularity, **ROWS)
    assert set(metrics) == {"test", "baseline_popularity"}
