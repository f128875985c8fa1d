import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.features import BucketizedFeature
from recsys.features import CategoricalFeature
from recsys.features import MultiCategoricalFeature
from recsys.features import NumericFeature
from recsys.features import Preprocessor
from recsys.features.streaming import ValueCounter
from recsys.features.streaming import fit_streaming


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame(
        {
            "user": rng.zipf(1.5, n) % 500,
            "item": rng.integers(0, 40, n).astype(str),
            "zip": rng.integers(0, 1000, n),
            "tags": [
                "|".join(rng.choice(list("abcdefg"), rng.integers(1, 4)))
                for _ in range(n)
            ],
            "age": rng.normal(40, 12, n),
        }
    )


FEATURES = [
    CategoricalFeature("user", min_frequency=2),
    CategoricalFeature("item", max_tokens=25),
    CategoricalFeature("zip", vocabulary="hash", num_buckets=300),
    MultiCategoricalFeature("tags", separator="|"),
    NumericFeature("age"),
    NumericFeature("age2", transform="log"),
]


def test_fit_streaming_learns_what_fit_learns(frame):
    frame = frame.assign(age2=np.log1p(frame["age"].abs()))
    batches = [frame.iloc[i : i + 700] for i in range(0, len(frame), 700)]
    tables = (pa.Table.from_pandas(b, preserve_index=False) for b in batches)
    streamed = fit_streaming(FEATURES, tables)
    whole = Preprocessor(features=FEATURES).fit(frame)
    assert streamed.vocabularies_ == whole.vocabularies_
    assert streamed.collision_report_ == whole.collision_report_
    for name in ("age", "age2"):
        for key in ("mean", "std"):
            assert streamed.stats_[name][key] == pytest.approx(
                whole.stats_[name][key], rel=1e-9
            )
    np.testing.assert_array_equal(
        streamed.transform(frame)["user"], whole.transform(frame)["user"]
    )


def test_fit_streaming_merges_spellings_of_one_id():
    batches = [
        pa.table({"id": pa.array([42, 7, 7], pa.int64())}),
        pa.table({"id": pa.array(["42", "42", None])}),
    ]
    pre = fit_streaming([CategoricalFeature("id")], batches)
    assert pre.vocabularies_ == {"id": ["42", "7"]}


def test_fit_streaming_errors():
    with pytest.raises(ValueError, match="empty input"):
        fit_streaming([CategoricalFeature("id")], [])
    with pytest.raises(KeyError, match="Column 'id' is missing"):
        fit_streaming([CategoricalFeature("id")], [pa.table({"x": [1]})])
    with pytest.raises(ValueError, match="fixed `boundaries`"):
        fit_streaming([BucketizedFeature("age")], [pa.table({"age": [1.0]})])


def test_value_counter_merges_partial_counts():
    counter = ValueCounter(merge_every=3)
    for chunk in ([1, 2, 2], [2, 3, None], [4, 1], [5, 6, 7, 1]):
        counter.update(pa.array(chunk, pa.int64()))
    values, counts = counter.result()
    got = dict(zip(values.to_pylist(), counts.tolist(), strict=True))
    assert got == {1: 3, 2: 3, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}
