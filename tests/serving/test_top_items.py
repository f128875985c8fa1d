import numpy as np
import pytest

from recsys.index import BruteForceIndex
from recsys.serving.service import RetrievalService
from recsys.serving.top_items import TopItemsTable


@pytest.fixture(scope="module")
def bundle(trained_bundle):
    return trained_bundle[0]


def test_top_items_table_repeats_exact_search(bundle):
    exact = BruteForceIndex(bundle.item_embeddings)
    table = TopItemsTable(bundle, exact, depth=50)
    assert len(table) == len(bundle.user_ids)
    users = bundle.user_ids
    ids, scores = bundle.recommend(users, k=20, exact=True)
    exact_scores = bundle.score(users)
    for i, row in enumerate(bundle.user_rows(users)):
        rows, found = table.lookup(row, 20)
        np.testing.assert_allclose(found, scores[i], rtol=1e-6)
        if bundle.item_ids[rows].tolist() != ids[i].tolist():
            # The table multiplies 512 users at once, `recommend` another
            # batch shape, and BLAS may round their products apart: only
            # items tied to float precision may trade places (one pair of
            # 20 on a CPU without AVX-512). Each listed item's own exact
            # score is still the score of its rank.
            np.testing.assert_allclose(
                exact_scores[i, rows], scores[i], rtol=1e-6
            )


def test_top_items_table_agrees_with_the_index_path(bundle):
    # The answer of a known user is one list, whatever path gives it (the
    # table, the index alone or in a batch) and whatever k: heavy users'
    # top 10 differed between the table and `recommend` (the index was
    # asked for 10 plus their seen items there, 100 plus them here), and
    # `recommend`'s top 10 was not the head of its top 100.
    with_table = RetrievalService(bundle)
    without = RetrievalService(bundle, precompute_depth=0)
    assert with_table.top_items is not None and without.top_items is None
    users = bundle.user_ids
    exact, _ = bundle.recommend(users, k=10, exact=True)
    batch_10, _ = bundle.recommend(users, k=10)
    batch_100, _ = bundle.recommend(users, k=100)
    np.testing.assert_array_equal(batch_10, batch_100[:, :10])
    heavy = set(np.argsort(-np.diff(bundle.seen_indptr))[:20].tolist())
    recall, differ = [], []
    for i, user in enumerate(users):
        fast, _, fallback = with_table.retrieve(user_id=user, k=10)
        slow, _, _ = without.retrieve(user_id=user, k=10)
        assert fallback is None and len(fast) == 10
        lists = [list(fast), list(slow), batch_10[i].tolist()]
        if i in heavy:
            lists.append(bundle.recommend([user], k=10)[0][0].tolist())
        if any(other != lists[0] for other in lists[1:]):
            differ.append(user)
        recall.append(len(set(fast) & set(exact[i])) / 10)
    # ScaNN's kernel for a batch of queries (the table's build, a list of
    # users) can re-score other candidates near its cut than its one-query
    # search (README): a few users' lists differ, 3 of 671 in an audit's
    # bundle, none in most (the index is built anew each run).
    assert len(differ) <= len(users) // 100, differ
    # The index is tuned to its recall target on the users' queries.
    target = bundle.index.tuning.get("recall_target", 0.95)
    assert np.mean(recall) >= target - 0.02


def test_top_items_table_answers_only_what_it_can(bundle):
    exact = BruteForceIndex(bundle.item_embeddings)
    table = TopItemsTable(bundle, exact, depth=20, max_users=10)
    active = np.argsort(-np.diff(bundle.seen_indptr), kind="stable")
    assert table.lookup(active[0], 10) is not None
    assert table.lookup(active[-1], 10) is None  # no row: not active enough
    assert table.lookup(active[0], 21) is None  # deeper than the table
    rows, _ = table.lookup(active[0], 20)
    banned = rows[:5]
    kept, _ = table.lookup(active[0], 15, banned)
    assert not set(kept) & set(banned) and kept.tolist() == rows[5:].tolist()
    assert table.lookup(active[0], 16, banned) is None  # too few left
    assert not set(rows) & set(bundle.seen(active[0]))


def test_service_bypasses_the_table_when_seen_items_are_wanted(bundle):
    service = RetrievalService(bundle)
    user = bundle.user_ids[0]
    seen = set(bundle.item_ids[bundle.seen(bundle.user_rows([user])[0])])
    ids, _, _ = service.retrieve(user_id=user, k=200, exclude_seen=False)
    assert seen & set(ids)
    ids, _, _ = service.retrieve(user_id=user, k=200)
    assert not seen & set(ids)


def test_the_table_is_built_while_the_service_answers(bundle):
    service = RetrievalService(
        bundle, precompute_in_background=True, load_tower=False
    )
    user = bundle.user_ids[3]
    # Answered at once: through the index while the table is not done.
    ids, _, fallback = service.retrieve(user_id=user, k=10)
    assert fallback is None and len(ids) == 10
    assert service.top_items_done.wait(120) and service.top_items is not None
    rows, _ = service.top_items.lookup(bundle.user_rows([user])[0], 10)
    again, _, _ = service.retrieve(user_id=user, k=10)
    assert list(again) == list(bundle.item_ids[rows])
