import numpy as np
import pytest

from recsys.serving import Settings
from recsys.serving import create_app
from recsys.serving.reranker import Reranker
from recsys.serving.service import QueryError
from recsys.serving.service import RetrievalService
from tests.serving.server import post_concurrently


@pytest.fixture(scope="module")
def service(trained_bundle):
    return RetrievalService(trained_bundle[0], precompute_depth=20)


@pytest.fixture(scope="module")
def reranker(ranker_bundle):
    return Reranker(ranker_bundle)


def _queries(bundle):
    users = [str(u) for u in bundle.user_ids[:4]]
    return [
        {"user_id": users[0], "k": 5, "rerank": True},
        {"user_id": users[1], "k": 3, "candidates": 30, "exclude": ["1"]},
        {"user_id": int(users[2]), "k": 4, "candidates": 10, "blend": 0.5},
        {"user_id": users[3], "k": 6, "features": {"history": ["1", "260"]}},
        {"user_id": "nobody", "k": 5, "candidates": 20},  # popular items
        {"user_id": users[0], "k": 5, "features": {"no_such": 1}},  # refused
        {"user_id": users[2], "k": 2, "candidates": 50, "blend": 0.0},
    ]


def _assert_same(answer, alone):
    ids, scores, fallback = answer
    np.testing.assert_array_equal(ids, alone[0])
    np.testing.assert_allclose(scores, alone[1], rtol=1e-5, atol=1e-6)
    assert fallback == alone[2]


def test_reranked_together_equals_reranked_alone(
    service, reranker, trained_bundle
):
    queries = _queries(trained_bundle[0])
    together = reranker.retrieve_many(service, queries)
    for query, answer in zip(queries, together, strict=True):
        try:
            [alone] = reranker.retrieve(service, [query])
        except QueryError as error:
            assert isinstance(answer, QueryError)
            assert str(answer) == str(error)
            continue
        _assert_same(answer, alone)
        assert len(answer[0]) == query["k"]
    assert [type(a) for a in together].count(QueryError) == 1
    with pytest.raises(QueryError, match="no_such"):
        reranker.retrieve(service, queries)


def test_a_query_that_breaks_the_ranker_fails_alone(
    service, ranker_bundle, trained_bundle, monkeypatch
):
    reranker = Reranker(ranker_bundle)
    queries = _queries(trained_bundle[0])[:3]
    expected = reranker.retrieve_many(service, queries)
    scorer = reranker._scorer
    score_pairs = scorer.score_pairs

    def broken_for_one_user(user_ids, item_ids):
        if any(str(u) == queries[1]["user_id"] for u in user_ids):
            raise RuntimeError("the ranker failed")
        return score_pairs(user_ids, item_ids)

    monkeypatch.setattr(scorer, "score_pairs", broken_for_one_user)
    # Two services (a reload while the batch filled): each its own call.
    other = RetrievalService(trained_bundle[0], precompute_depth=0)
    batch = [(service, q) for q in queries] + [(other, queries[0])]
    found = reranker.rerank_many(batch)
    assert isinstance(found[1], RuntimeError)
    for answer, alone in zip(found, expected + [expected[0]], strict=True):
        if answer is not found[1]:
            _assert_same(answer, alone)


def test_concurrent_reranked_requests_share_one_call(
    service, reranker, trained_bundle
):
    bundle = trained_bundle[0]
    queries = [{**q, "rerank": True} for q in _queries(bundle)]
    # The window is long and the batch closes when full: one batch,
    # whatever the timing.
    settings = Settings(batch_window_ms=1000, batch_max_size=len(queries))
    app = create_app(
        bundle.path, settings=settings, service=service, ranker=reranker
    )
    answers = post_concurrently(app, queries)
    assert app.state.rerank_batcher.batches == 1
    for query, answer in zip(queries, answers, strict=True):
        try:
            [(ids, scores, fallback)] = reranker.retrieve(service, [query])
        except QueryError as error:
            assert answer.status_code == 422
            assert str(error) in answer.text
            continue
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["reranked"] is True and body["fallback"] == fallback
        assert [i["id"] for i in body["items"]] == [str(i) for i in ids]
        np.testing.assert_allclose(
            [i["score"] for i in body["items"]], scores, rtol=1e-5, atol=1e-6
        )


def test_a_lone_request_is_answered_when_its_window_ends(
    service, reranker, trained_bundle
):
    # A batch of 64 never fills: the window's timer runs the request.
    settings = Settings(batch_window_ms=5, batch_max_size=64)
    app = create_app(
        trained_bundle[0].path,
        settings=settings,
        service=service,
        ranker=reranker,
    )
    assert app.state.rerank_batcher.window == 0.005
    query = _queries(trained_bundle[0])[0]
    [answer] = post_concurrently(app, [query])
    assert answer.status_code == 200 and answer.json()["reranked"]
    assert app.state.rerank_batcher.batches == 1
