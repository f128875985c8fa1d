"""`recsys serve --ranker`: retrieve-then-rerank over real HTTP."""

import json
import shutil

import httpx
import numpy as np
import pytest

from recsys.cli import main
from recsys.serving.reranker import padded_size
from recsys.two_stage import TwoStageRecommender
from tests.serving.server import running_server


@pytest.fixture(scope="module")
def reranking(trained_bundle, ranker_bundle, tmp_path_factory, bundle_root):
    """`recsys serve BUNDLE --ranker RANKER` and an HTTP client to it."""
    bundle, _ = trained_bundle
    log = tmp_path_factory.mktemp("logs") / "server.log"
    # Exact retrieval on both sides: ScaNN's batched search (the load-time
    # top-items table) and its single-query search (`_two_stage` below)
    # approximate differently, so the 100th candidate can differ, and with
    # it the reranked order; this file checks the reranking, not the index.
    env = {
        "RECSYS_API_TOKEN": "s3cret",
        "RECSYS_BUNDLE_ROOT": str(bundle_root),
        "RECSYS_EXACT": "1",
    }
    token = {"Authorization": "Bearer s3cret"}
    with (
        running_server(
            bundle.path, "--ranker", ranker_bundle.path, log_path=log, env=env
        ) as url,
        httpx.Client(base_url=url, timeout=60, headers=token) as client,
    ):
        yield client


def _ids_and_scores(body):
    return (
        [item["id"] for item in body["items"]],
        [item["score"] for item in body["items"]],
    )


def _two_stage(bundle, ranker, user, k, candidates=100, blend=1.0):
    ids, scores = TwoStageRecommender(
        bundle, ranker, num_candidates=candidates, blend=blend
    ).recommend([user], k=k, exact=True)
    keep = np.isfinite(scores[0])
    return [str(i) for i in ids[0][keep]], scores[0][keep]


@pytest.mark.parametrize(
    "user, candidates, blend",
    [(7, None, None), ("12", 30, None), (25, 50, 0.3), ("nobody", 20, None)],
)
def test_reranked_order_is_the_two_stage_order(
    reranking, trained_bundle, ranker_bundle, user, candidates, blend
):
    bundle, _ = trained_bundle
    query = {"user_id": user, "k": 5, "rerank": True}
    if candidates is not None:
        query["candidates"] = candidates
    if blend is not None:
        query["blend"] = blend
    answer = reranking.post("/v1/retrieve", json=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ids, scores = _ids_and_scores(body)
    expected_ids, expected_scores = _two_stage(
        bundle, ranker_bundle, user, 5, candidates or 100, blend or 1.0
    )
    assert ids == expected_ids
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    assert body["reranked"] is True and body["bundle"] == bundle.version
    # An unknown user's candidates are the popular items, ranked for a user
    # the ranker has not seen either.
    assert body["fallback"] == ("popular" if user == "nobody" else None)


def test_rerank_changes_the_order_and_plain_requests_do_not_rerank(
    reranking, trained_bundle
):
    bundle, _ = trained_bundle
    plain = reranking.post("/v1/retrieve", json={"user_id": 7, "k": 5}).json()
    expected, _ = bundle.recommend([7], k=5, exact=True)
    assert _ids_and_scores(plain)[0] == [str(i) for i in expected[0]]
    assert plain["reranked"] is False
    reranked = reranking.post(
        "/v1/retrieve", json={"user_id": 7, "k": 5, "rerank": True}
    ).json()
    assert _ids_and_scores(reranked)[0] != _ids_and_scores(plain)[0]


def test_rerank_respects_exclusions(reranking, trained_bundle):
    bundle, _ = trained_bundle
    query = {"user_id": 7, "k": 5, "rerank": True}
    first = _ids_and_scores(reranking.post("/v1/retrieve", json=query).json())
    banned = first[0][:2]
    again = reranking.post(
        "/v1/retrieve", json={**query, "exclude": banned}
    ).json()
    ids = _ids_and_scores(again)[0]
    assert len(ids) == 5 and not set(banned) & set(ids)
    seen = bundle.item_ids[bundle.seen(bundle.user_rows([7])[0])]
    assert not {str(i) for i in seen} & set(ids)


def test_batch_reranks_the_queries_that_ask(
    reranking, trained_bundle, ranker_bundle
):
    bundle, _ = trained_bundle
    queries = [
        {"user_id": 7, "k": 3, "rerank": True},
        {"user_id": 8, "k": 2},
        {"user_id": 9, "k": 4, "rerank": True, "candidates": 20, "blend": 0.5},
        {"user_id": 10, "k": 6, "rerank": True, "candidates": 20},
    ]
    answer = reranking.post("/v1/retrieve/batch", json={"queries": queries})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["reranked"] for r in results] == [True, False, True, True]
    plain, _ = bundle.recommend([8], k=2, exact=True)
    assert _ids_and_scores(results[1])[0] == [str(i) for i in plain[0]]
    for result, query in zip(results, queries, strict=True):
        if query.get("rerank"):
            ids, scores = _two_stage(
                bundle,
                ranker_bundle,
                query["user_id"],
                query["k"],
                query.get("candidates", 100),
                query.get("blend", 1.0),
            )
            assert _ids_and_scores(result)[0] == ids
            np.testing.assert_allclose(
                _ids_and_scores(result)[1], scores, rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"user_id": 7, "rerank": True, "candidates": 5000}, "at most 1000"),
        ({"user_id": 7, "rerank": True, "candidates": 0}, "greater than"),
        ({"user_id": 7, "rerank": True, "blend": 1.5}, "less than or equal"),
        ({"user_id": 7, "rerank": True, "blend": "1"}, "valid number"),
        ({"user_id": 7, "rerank": "yes"}, "valid boolean"),
        ({"user_id": 7, "candidates": 50}, 'only with "rerank": true'),
        ({"features": {"history": [1]}, "rerank": True}, "needs a `user_id`"),
    ],
)
def test_bad_rerank_requests_get_422_with_the_fix(reranking, body, fragment):
    answer = reranking.post("/v1/retrieve", json=body)
    assert answer.status_code == 422
    assert fragment in str(answer.json()["detail"])
    batch = reranking.post("/v1/retrieve/batch", json={"queries": [body]})
    assert batch.status_code == 422


@pytest.mark.parametrize("rerank", [True, False])
def test_a_bad_query_in_a_reranked_batch_is_told_at_its_place(
    reranking, rerank
):
    queries = [
        {"user_id": 7, "k": 3, "rerank": True},
        {"user_id": 8, "features": {"bogus": 1}, "rerank": rerank},
    ]
    answer = reranking.post("/v1/retrieve/batch", json={"queries": queries})
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "queries", 1, "features", "bogus"]
    assert "Unknown query features ['bogus']" in detail["msg"]


def test_a_bad_feature_of_a_reranked_query_is_named_at_its_place(reranking):
    query = {"user_id": 7, "features": {"history": "1"}, "rerank": True}
    answer = reranking.post("/v1/retrieve", json=query)
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "features", "history"]


def test_a_blend_that_is_no_number_is_told_so(reranking):
    # NaN compares false with both bounds: it was told "less than or
    # equal to 1".
    answer = reranking.post(
        "/v1/retrieve",
        content=b'{"user_id": 7, "rerank": true, "blend": NaN}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "blend"]
    assert detail["msg"] == "Input should be a finite number"


def test_fewer_candidates_than_k_are_raised_to_k(reranking):
    query = {"user_id": 7, "k": 10, "rerank": True}
    fewer = reranking.post("/v1/retrieve", json={**query, "candidates": 5})
    assert fewer.status_code == 200, fewer.text
    exact = reranking.post("/v1/retrieve", json={**query, "candidates": 10})
    assert fewer.json() == exact.json() and len(fewer.json()["items"]) == 10


def test_reload_swaps_the_retriever_and_keeps_the_ranker(
    reranking, trained_bundle, second_bundle, ranker_bundle
):
    bundle, _ = trained_bundle
    ready = reranking.get("/readyz").json()
    assert ready["ranker"] == ranker_bundle.version
    assert ready["ranker_kind"] == "numpy"  # the DCN the numpy ranker runs
    query = {"user_id": 7, "k": 5, "rerank": True}
    try:
        reloaded = reranking.post(
            "/admin/reload", json={"path": second_bundle.path}
        )
        assert reloaded.status_code == 200
        body = reranking.post("/v1/retrieve", json=query).json()
        assert body["bundle"] == second_bundle.version
        ids, _ = _two_stage(second_bundle, ranker_bundle, 7, 5)
        assert _ids_and_scores(body)[0] == ids
        assert reranking.get("/readyz").json()["ranker"] == (
            ranker_bundle.version
        )
    finally:
        reranking.post("/admin/reload", json={"path": bundle.path})


def _multiclass_copy(ranker_bundle, tmp_path):
    path = tmp_path / "multiclass"
    shutil.copytree(ranker_bundle.path, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["task"] = "multiclass"
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    "ranker, message",
    [
        ("retriever", "a 'two_tower' bundle"),
        # A binary model under a manifest that says multiclass: refused at
        # load (check_ranker's own refusal: tests/kinds/tabular).
        ("multiclass", "is not this bundle's multiclass model"),
        ("missing", "not a recsys bundle"),
    ],
)
def test_serve_refuses_a_ranker_that_cannot_rank(
    trained_bundle, ranker_bundle, tmp_path, capsys, ranker, message
):
    bundle, _ = trained_bundle
    path = {
        "retriever": bundle.path,
        "multiclass": _multiclass_copy(ranker_bundle, tmp_path),
        "missing": tmp_path / "none",
    }[ranker]
    # `serve` would block in uvicorn had it got past the checks: it returns
    # 1 before the port is bound.
    code = main(["serve", bundle.path, "--ranker", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("recsys serve: error: --ranker: ")
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "n, size", [(1, 128), (100, 128), (129, 256), (8192, 8192), (8193, 16384)]
)
def test_scored_pairs_are_padded_to_few_batch_sizes(n, size):
    assert padded_size(n) == size
