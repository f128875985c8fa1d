import numpy as np
import pyarrow as pa
import pytest

from recsys.features.counting import Moments
from recsys.features.counting import ValueCounter


@pytest.mark.parametrize("seed", range(5))
def test_moments_of_one_chunk_are_numpys_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 7.0, int(rng.integers(1, 5000))) * 10.0**seed
    moments = Moments()
    moments.update(x)
    assert moments.count == x.size
    assert moments.mean == float(x.mean())
    assert moments.std == float(x.std())


def test_moments_merge_chunks():
    x = np.random.default_rng(0).exponential(2.0, 1001)
    moments = Moments()
    for chunk in np.array_split(x, 7):
        moments.update(chunk)
    moments.update(np.zeros(0))
    assert moments.count == 1001
    assert moments.mean == pytest.approx(x.mean(), rel=1e-12)
    assert moments.std == pytest.approx(x.std(), rel=1e-12)


def test_moments_before_any_value():
    moments = Moments()
    assert moments.count == 0 and np.isnan(moments.std)


def test_value_counter_merges_ints_and_strings_under_canonical_strings():
    counter = ValueCounter()
    counter.update(pa.array([42, 7, 7], pa.int64()))
    counter.update(pa.array(["42", None]))
    values, counts = counter.result()
    got = dict(zip(values.to_pylist(), counts.tolist(), strict=True))
    assert got == {"42": 2, "7": 2}


def test_value_counter_empty():
    values, counts = ValueCounter().result()
    assert len(values) == 0 and counts.dtype == np.int64
