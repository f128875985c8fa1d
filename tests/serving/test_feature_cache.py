import numpy as np

from recsys.serving.feature_cache import FeatureCache


def test_feature_cache_repeats_the_preprocessor(trained_bundle):
    bundle, _ = trained_bundle
    pre = bundle.preprocessor
    ids = [1, "260", 1196, "no-such-item", "042", -5, 10**30, "1"]
    cache = FeatureCache(bundle, "movieId", max_entries=5)
    for prepared in (False, True):
        if prepared:
            cache.prepare(chunk=1000)
        for _ in range(2):  # computed, then (partly) cached
            rows, codes = cache.items(ids)
            np.testing.assert_array_equal(rows, bundle.item_rows(ids))
            np.testing.assert_array_equal(
                codes, pre.transform_column("movieId", [str(i) for i in ids])
            )
    np.testing.assert_array_equal(
        cache.value("userId", 42), pre.transform_column("userId", [42])
    )
    assert cache.value("userId", 42) is cache.value("userId", 42)


def test_long_values_outside_the_catalog_are_not_kept(trained_bundle):
    # Requests with ever new long ids grew the cache by their size (1 MB
    # ids: 1 MB a request); only catalog ids and short values are kept.
    bundle, _ = trained_bundle
    pre = bundle.preprocessor
    cache = FeatureCache(bundle, "movieId")
    long_ids = [f"{i}-" + "x" * 10_000 for i in range(3)]
    rows, codes = cache.items([*long_ids, "1", "no-such-item"])
    assert (rows[:3] == -1).all() and rows[3] >= 0
    np.testing.assert_array_equal(
        codes, pre.transform_column("movieId", [*long_ids, "1", "no-such-item"])
    )
    assert set(cache._items) == {"1", "no-such-item"}
    long_user = "u" * 10_000
    np.testing.assert_array_equal(
        cache.value("userId", long_user),
        pre.transform_column("userId", [long_user]),
    )
    cache.value("userId", "42")
    assert [key[2] for key in cache._values] == ["42"]


def test_an_id_spelled_with_a_zero_fraction_is_the_catalogs(trained_bundle):
    # "260.0" (a float column's spelling) is item 260, as `Bundle.item_rows`
    # reads it: a history and every exclusion list read it alike (the
    # preprocessor alone reads "260.0" as an unknown item).
    bundle, _ = trained_bundle
    pre = bundle.preprocessor
    asked = ["260.0", "1196.00", "-3.0", "x"]
    meant = ["260", "1196", "-3.0", "x"]
    for prepared in (False, True):
        cache = FeatureCache(bundle, "movieId")
        if prepared:
            cache.prepare(chunk=1000)
        rows, codes = cache.items(asked)
        np.testing.assert_array_equal(rows, bundle.item_rows(meant))
        assert (rows[:2] >= 0).all()
        np.testing.assert_array_equal(
            codes, pre.transform_column("movieId", meant)
        )
