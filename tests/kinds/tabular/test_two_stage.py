import types

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.retrieval import evaluate_retrieval
from recsys.two_stage import TwoStageRecommender
from recsys.two_stage import blended
from recsys.two_stage import evaluate_two_stage


def test_two_stage_reorders_the_retrieved_candidates(retriever, liked_run):
    ranker, _ = liked_run
    recommender = TwoStageRecommender(retriever, ranker, num_candidates=20)
    users = [1, 7]
    ids, scores = recommender.recommend(users, k=5)
    candidates, _ = retriever.recommend(users, k=20, exact=False)
    assert ids.shape == scores.shape == (2, 5)
    for row, user in enumerate(users):
        # The 5 best candidates by the ranker's own score, best first.
        expected = ranker.score_pairs([user] * 20, candidates[row])
        order = np.argsort(-expected, kind="stable")[:5]
        np.testing.assert_array_equal(ids[row], candidates[row][order])
        np.testing.assert_allclose(scores[row], expected[order], rtol=1e-5)
        assert np.all(np.diff(scores[row]) <= 0)
        seen = retriever.items["movieId"].to_numpy()[
            retriever.seen(retriever.user_rows([user])[0])
        ]
        assert not set(ids[row]) & set(seen)


def test_two_stage_evaluation_matches_retrieval_evaluation(
    retriever, liked_run, small_frame
):
    ranker, _ = liked_run
    recommender = TwoStageRecommender(retriever, ranker, num_candidates=50)
    result = evaluate_two_stage(recommender, small_frame, k=10)
    # Retrieval alone, filtered HR@10 and HR@50, as the protocol's exact
    # evaluation computes them.
    from recsys.data.split import temporal_split

    train, test = temporal_split(
        small_frame, user="userId", item="movieId", time="timestamp"
    )
    reference = evaluate_retrieval(
        retriever.score,
        candidates=retriever.item_ids,
        test_users=test["userId"].to_numpy(),
        test_items=test["movieId"].to_numpy(),
        train_users=train["userId"].to_numpy(),
        train_items=train["movieId"].to_numpy(),
        ks=(10, 50),
    )
    assert result["retrieval"]["hr@10"] == pytest.approx(
        reference["hr@10_filtered"]
    )
    assert result["candidates"]["hr@50"] == pytest.approx(
        reference["hr@50_filtered"]
    )
    assert result["two_stage"]["hr@10"] <= result["candidates"]["hr@50"]
    assert 0 <= result["two_stage"]["ndcg@10"] <= result["two_stage"]["hr@10"]
    assert result["num_interactions"] == len(test)


def test_two_stage_evaluation_of_some_rows_says_to_pass_the_table(
    retriever, liked_run, small_frame, caplog
):
    # The test rows alone split again into smaller parts, silently.
    ranker, _ = liked_run
    recommender = TwoStageRecommender(retriever, ranker, num_candidates=50)
    with caplog.at_level("WARNING", logger="recsys.two_stage"):
        evaluate_two_stage(recommender, small_frame, k=10)
    assert "Pass the whole table" not in caplog.text
    # The test rows alone: every user, a fifth of the pairs.
    from recsys.data.split import temporal_split

    _, test = temporal_split(
        small_frame, user="userId", item="movieId", time="timestamp"
    )
    with caplog.at_level("WARNING", logger="recsys.two_stage"):
        evaluate_two_stage(recommender, test, k=10)
    trained = int(retriever.seen_indptr[-1])
    assert f"the retriever was trained on {trained:,}" in caplog.text


def test_a_whole_table_of_repeats_is_the_whole_table(caplog):
    from recsys.two_stage import _check_whole_table

    # 10 rows, 6 distinct pairs: bundles keep one seen item a pair, and
    # the check counted rows ("pass the whole table" for the whole table).
    rows = pd.DataFrame({"u": [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]})
    rows["i"] = [7, 7, 7, 8, 7, 7, 9, 1, 1, 2]
    pairs = rows.drop_duplicates()
    this = types.SimpleNamespace(  # one entry a pair, as bundles now hold
        seen_indptr=np.array([0, 2, 4, 6]),
        seen_items=np.array([7, 8, 7, 9, 1, 2]),
    )
    before = types.SimpleNamespace(  # one a training row, repeats too
        seen_indptr=np.array([0, 4, 7, 10]), seen_items=rows["i"].to_numpy()
    )
    for retriever in (this, before):
        with caplog.at_level("WARNING", logger="recsys.two_stage"):
            _check_whole_table(retriever, rows)
        assert "Pass the whole table" not in caplog.text
    # Part of the table is told so, even where it holds every pair.
    with caplog.at_level("WARNING", logger="recsys.two_stage"):
        _check_whole_table(before, pairs)
    assert "holds 6 rows; the retriever was trained on 10" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="recsys.two_stage"):
        _check_whole_table(this, rows.iloc[:3])
    assert "holds 1 distinct (user, item) pairs" in caplog.text


def test_two_stage_rejects_bad_arguments(retriever, liked_run):
    ranker, _ = liked_run
    with pytest.raises(ValueError, match="num_candidates"):
        TwoStageRecommender(retriever, ranker, num_candidates=0)
    with pytest.raises(ValueError, match="binary or regression"):
        TwoStageRecommender(retriever, retriever)
    multiclass = types.SimpleNamespace(
        task="multiclass", score_pairs=None, manifest={"kind": "tabular"}
    )
    with pytest.raises(ValueError, match="'tabular' bundle of task 'multic"):
        TwoStageRecommender(retriever, multiclass)
    with pytest.raises(ValueError, match="`k`"):
        TwoStageRecommender(retriever, ranker).recommend([1], k=0)


def test_two_stage_blend_zero_keeps_the_retrieval_order(retriever, liked_run):
    ranker, _ = liked_run
    ids, _ = TwoStageRecommender(retriever, ranker, 20, blend=0.0).recommend(
        [1, 7], k=5
    )
    expected, _ = retriever.recommend([1, 7], k=5)
    np.testing.assert_array_equal(ids, expected)
    with pytest.raises(ValueError, match="blend"):
        TwoStageRecommender(retriever, ranker, blend=1.5)
    with pytest.raises(ValueError, match="blend"):  # not a TypeError
        TwoStageRecommender(retriever, ranker, blend="0.5")


def test_two_stage_evaluation_scores_blends_and_the_validation_split(
    retriever, liked_run, small_frame
):
    ranker, _ = liked_run
    recommender = TwoStageRecommender(retriever, ranker, num_candidates=20)
    result = evaluate_two_stage(
        recommender, small_frame, split="validation", blends=[0.0, 1.0]
    )
    assert result["two_stage@1.0"] == result["two_stage"]
    assert result["two_stage@0.0"] == result["retrieval"]
    with pytest.raises(ValueError, match="split"):
        evaluate_two_stage(recommender, small_frame, split="train")


def test_blend_standardizes_the_valid_scores_of_each_row():
    retrieval = np.array([[3.0, 1.0, 2.0, -np.inf], [-np.inf] * 4])
    ranker = np.array([[0.2, 0.6, 0.4, -np.inf], [-np.inf] * 4])
    valid = np.isfinite(retrieval)
    # Row 0 standardizes to +-1.2247 and 0 in both stages, in opposite
    # orders; row 1 has no candidates (and must not warn).
    z = np.sqrt(1.5)
    scores = blended(retrieval, ranker, valid, 0.25)
    np.testing.assert_allclose(scores[0, :3], [0.5 * z, -0.5 * z, 0], atol=1e-6)
    assert np.isneginf(scores[0, 3]) and np.isneginf(scores[1]).all()
    np.testing.assert_array_equal(
        blended(retrieval, ranker, valid, 1.0)[0], np.float32(ranker[0])
    )
