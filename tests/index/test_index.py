import os

import numpy as np
import pytest

from recsys.index import BRUTE_FORCE_MAX_ITEMS
from recsys.index import BruteForceIndex
from recsys.index import ScannIndex
from recsys.index import build_index
from recsys.index import load_index
from recsys.index import recall_against_exact


def _clustered(n, dim=64, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


@pytest.fixture(scope="module")
def catalog():
    return _clustered(9_000), _clustered(300, seed=1)


@pytest.fixture(scope="module")
def scann_index(catalog):
    return build_index(catalog[0], kind="scann")


def test_brute_force_matches_hand_computation():
    items = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], "float32")
    ids, scores = BruteForceIndex(items, ids=[10, 20, 30, 40]).search(
        np.array([[2, 1]], "float32"), k=3
    )
    # Scores 2, 1, 3, 2: item 30 first, then the tie 10/40 by position.
    np.testing.assert_array_equal(ids, [[30, 10, 40]])
    np.testing.assert_allclose(scores, [[3, 2, 2]])


def test_brute_force_ties_are_broken_by_position():
    items = np.ones((6, 2), "float32")
    ids, _ = BruteForceIndex(items).search(np.ones((1, 2), "float32"), k=4)
    np.testing.assert_array_equal(ids, [[0, 1, 2, 3]])


@pytest.mark.parametrize("data", ["clustered", "gaussian"])
def test_scann_recall_against_exact(data, catalog, scann_index):
    if data == "clustered":
        index, queries, floor = scann_index, catalog[1], 0.95
    else:
        rng = np.random.default_rng(2)
        items = rng.normal(size=(9_000, 64)).astype("float32")
        index = build_index(items, kind="scann")
        # Structureless 64-d gaussians are the hard case for partitioning
        # (about 0.67 with the defaults); a broken index would be near 0.001.
        queries, floor = rng.normal(size=(300, 64)).astype("float32"), 0.5
    assert recall_against_exact(index, queries, k=10) >= floor


def test_scann_scores_are_exact_dot_products(catalog, scann_index):
    items, queries = catalog
    ids, scores = scann_index.search(queries[:20], k=10)
    np.testing.assert_allclose(
        scores, np.einsum("qd,qkd->qk", queries[:20], items[ids]), atol=1e-4
    )


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_index_save_load_gives_identical_results(
    kind, string_ids, catalog, tmp_path
):
    items, queries = catalog
    ids = np.array([f"item-{i}" for i in range(len(items))]) if string_ids else None
    index = build_index(items, kind=kind, ids=ids)
    index.save(tmp_path)
    again = load_index(tmp_path)
    assert again.kind == kind
    expected, got = index.search(queries, 10), again.search(queries, 10)
    np.testing.assert_array_equal(expected[0], got[0])
    np.testing.assert_allclose(expected[1], got[1], atol=1e-6)
    names = [n for _, _, files in os.walk(tmp_path) for n in files]
    assert not [n for n in names if n.endswith(".pkl")]


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_index_exclude_drops_rows_and_still_returns_k(kind, catalog, scann_index):
    items, queries = catalog
    index = scann_index if kind == "scann" else BruteForceIndex(items)
    first, _ = index.search(queries[:3], 10)
    banned = [first[0][:5], first[1], np.array([], np.int64)]
    ids, scores = index.search(queries[:3], 10, exclude=banned)
    for row, out in zip(banned, ids):
        assert not np.isin(out, row).any() and len(out) == 10
    np.testing.assert_array_equal(ids[2], first[2])
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_index_pads_when_everything_is_excluded():
    index = BruteForceIndex(np.eye(3, dtype="float32"), ids=[7, 8, 9])
    ids, scores = index.search(np.ones((1, 3), "float32"), 3, exclude=[[0, 2]])
    np.testing.assert_array_equal(ids, [[8, -1, -1]])
    assert scores[0, 0] == 1 and np.isneginf(scores[0, 1:]).all()


def test_index_auto_picks_by_catalog_size(catalog):
    small = build_index(catalog[0][:BRUTE_FORCE_MAX_ITEMS])
    assert isinstance(small, BruteForceIndex)
    assert isinstance(build_index(catalog[0][:6_000]), ScannIndex)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda i: i.search(np.ones((1, 64), "float32"), 0), "`k` must be"),
        (lambda i: i.search(np.ones((2, 32), "float32"), 5), r"\(num_queries, 64\)"),
        (lambda i: i.search(np.ones((2, 64), "float32"), 5, exclude=[[1]]), "one array"),
    ],
)
def test_index_rejects_bad_queries(call, match, catalog):
    with pytest.raises(ValueError, match=match):
        call(BruteForceIndex(catalog[0][:100]))


def test_index_rejects_bad_construction(catalog):
    with pytest.raises(ValueError, match="`kind` must be one of"):
        build_index(catalog[0], kind="hnsw")
    with pytest.raises(ValueError, match="one id per embedding row"):
        BruteForceIndex(catalog[0][:10], ids=np.arange(9))
    with pytest.raises(ValueError, match="Unknown ScaNN options"):
        ScannIndex(catalog[0], leaves=3)


def test_load_index_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json"):
        load_index(tmp_path)
