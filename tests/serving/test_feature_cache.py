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
