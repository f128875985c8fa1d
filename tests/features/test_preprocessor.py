import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.features import BucketizedFeature
from recsys.features import CategoricalFeature
from recsys.features import MultiCategoricalFeature
from recsys.features import NotFittedError
from recsys.features import NumericFeature
from recsys.features import Preprocessor
from recsys.features import TextFeature
from recsys.features import canonical_strings
from recsys.features import stable_hash

FRAME = pd.DataFrame(
    {
        "user": [1, 2, 2, 3, 3, 3],
        "genres": ["A|B", "B", "B|C|A", None, "", "C"],
        "title": ["Toy Story (1995)", "Heat", "heat!", "X", None, "Up"],
        "year": [1995.0, 2000.0, None, 1990.0, 2010.0, 2005.0],
    }
)


def _pre(**kwargs):
    return Preprocessor(
        features=[
            CategoricalFeature("user", **kwargs),
            MultiCategoricalFeature("genres", separator="|", max_length=2),
            MultiCategoricalFeature(
                "title", tokenizer="words", vocabulary="hash", num_buckets=64
            ),
            NumericFeature("year"),
        ]
    ).fit(FRAME)


def test_preprocessor_exact_vocabulary_by_frequency():
    pre = _pre()
    # 3 is most frequent, then 2, then 1; ids start after padding + 1 OOV.
    assert pre.vocabularies_["user"] == ["3", "2", "1"]
    ids = pre.transform_column("user", [3, 2, 1, 99, None])
    np.testing.assert_array_equal(ids, [2, 3, 4, 1, 0])
    assert pre.input_dim("user") == 5


def test_preprocessor_same_id_for_int_float_and_string():
    pre = _pre()
    ids = pre.transform_column("user", pd.Series([2.0, 2.0]))
    np.testing.assert_array_equal(ids, pre.transform_column("user", ["2", 2]))


def test_integer_columns_get_the_ids_of_their_strings():
    # Integer columns skip spelling each value; ids must not change.
    values = ["7", "-3", "0", "x", "042", "9223372036854775807", "12" * 10]
    frame = pd.DataFrame({"id": values * 2 + ["1", "5"]})
    pre = Preprocessor(
        features=[CategoricalFeature("id", num_oov_buckets=3)]
    ).fit(frame)
    ints = np.array([7, -3, 0, 42, 9223372036854775807, 1, 5, 8, -8, 123])
    for dtype in (np.int64, np.int32, np.uint64):
        column = ints[ints >= 0] if dtype == np.uint64 else ints
        column = column[np.abs(column) < np.iinfo(dtype).max].astype(dtype)
        expected = pre.transform_column("id", pd.Series(column, dtype=object))
        got = pre.transform_column("id", pd.Series(column))
        np.testing.assert_array_equal(got, expected)
    big = np.array([2**64 - 1, 7], np.uint64)  # above int64: spelled
    np.testing.assert_array_equal(
        pre.transform_column("id", pd.Series(big)),
        pre.transform_column("id", pd.Series(big, dtype=object)),
    )


def test_missing_values_of_every_dtype_are_id_0():
    # A Parquet file's nullable integers (`Int64`) and object columns hold
    # `pd.NA`: missing, as `None` in a request is, not an unknown value.
    pre = Preprocessor(
        features=[CategoricalFeature("id", num_oov_buckets=3)]
    ).fit(pd.DataFrame({"id": [1, 2, 3, 3]}))
    for column in (
        pd.Series([3, None, 1], dtype="Int64"),
        pd.Series([3, pd.NA, 1], dtype=object),
        pd.Series([3.0, np.nan, 1.0]),
        pd.Series([3, None, 1], dtype=object),
        pd.Series(["3", None, "1"], dtype="string"),
    ):
        ids = pre.transform_column("id", column)
        np.testing.assert_array_equal(
            ids, pre.transform_column("id", [3, None, 1]), err_msg=column.dtype
        )
    assert ids[1] == 0 and ids[0] > 0
    assert (
        canonical_strings(
            pd.Series([pd.NA, pd.NaT, np.float32("nan")], dtype=object)
        ).tolist()
        == [None] * 3
    )


def test_preprocessor_min_frequency_sends_rare_values_to_oov():
    pre = _pre(min_frequency=2)
    assert pre.vocabularies_["user"] == ["3", "2"]
    assert pre.transform_column("user", [1])[0] == 1


def test_preprocessor_multi_valued_padded_and_truncated():
    pre = _pre()
    ids = pre.transform(FRAME)["genres"]
    assert ids.shape == (6, 2)
    vocab = pre.vocabularies_["genres"]
    first = [2 + vocab.index("A"), 2 + vocab.index("B")]
    np.testing.assert_array_equal(ids[0], first)
    np.testing.assert_array_equal(ids[3], [0, 0])  # null
    np.testing.assert_array_equal(ids[4], [0, 0])  # empty string
    assert ids[2, 1] != 0 and (ids[2] > 0).sum() == 2  # truncated to 2


def test_list_cells_are_the_values_of_a_multi_valued_column():
    # JSON arrays and Parquet lists (numpy arrays) hold the values a text
    # cell would join with the separator.
    text = pd.DataFrame({"tags": ["a|b", "c", None, "b|7"]})
    listed = pd.DataFrame(
        {"tags": [["a", "b"], np.array(["c"]), None, ["b", 7]]}
    )
    pre = Preprocessor(
        features=[MultiCategoricalFeature("tags", max_length=3, separator="|")]
    ).fit(text)
    np.testing.assert_array_equal(
        pre.transform(listed)["tags"], pre.transform(text)["tags"]
    )
    words = Preprocessor(
        features=[
            MultiCategoricalFeature("tags", max_length=3, tokenizer="words")
        ]
    ).fit(pd.DataFrame({"tags": ["Red wine", "cheese"]}))
    np.testing.assert_array_equal(
        words.transform(pd.DataFrame({"tags": [["red", "WINE"]]}))["tags"],
        words.transform(pd.DataFrame({"tags": ["red wine"]}))["tags"],
    )


@pytest.mark.parametrize("kind", [pa.string(), pa.int64()])
def test_arrow_list_cells_fit_and_transform_as_their_text_twin(kind):
    # `pd.read_parquet(..., dtype_backend="pyarrow")`'s list column: each
    # list was read as one token, its spelling ("['a' 'b']").
    values = {
        pa.string(): [["a", "b"], ["c"], None, ["b", "d"]],
        pa.int64(): [[1, 2], [3], None, [2, 4]],
    }[kind]
    text = pd.DataFrame(
        {"tags": [None if v is None else "|".join(map(str, v)) for v in values]}
    )
    arrow = pd.DataFrame(
        {"tags": pd.Series(values, dtype=pd.ArrowDtype(pa.list_(kind)))}
    )
    feature = MultiCategoricalFeature("tags", max_length=3, separator="|")
    twin = Preprocessor(features=[feature]).fit(text)
    pre = Preprocessor(features=[feature]).fit(arrow)
    assert pre.vocabularies_ == twin.vocabularies_
    np.testing.assert_array_equal(
        pre.transform(arrow)["tags"], twin.transform(text)["tags"]
    )
    assert pre.tokenize("tags", arrow["tags"]) == twin.tokenize(
        "tags", text["tags"]
    )


def test_preprocessor_words_tokenizer_lowercases_and_strips_punctuation():
    ids = _pre().transform(FRAME)["title"]
    np.testing.assert_array_equal(ids[1], ids[2])  # "Heat" == "heat!"
    assert (ids[0] > 0).sum() == 3  # toy, story, 1995


def test_preprocessor_numeric_standardized_and_nulls_imputed():
    pre = _pre()
    years = pre.transform(FRAME)["year"]
    values = np.array([1995, 2000, 1990, 2010, 2005], float)
    np.testing.assert_allclose(
        years[[0, 1, 3, 4, 5]],
        (values - values.mean()) / values.std(),
        atol=1e-6,
    )
    assert years[2] == 0.0


def test_log_transform_mirrors_values_below_zero():
    # "log" chosen on training rows >= 0; a later row below 0 (a refund) is
    # scored as the mirror image, not refused.
    train = pd.DataFrame({"amount": [0.0, 1.0, 3.0, 100.0]})
    pre = Preprocessor(features=[NumericFeature("amount", "log")]).fit(train)
    scored = pre.transform(pd.DataFrame({"amount": [3.0, -3.0, 0.0]}))["amount"]
    zero = scored[2]
    np.testing.assert_allclose(scored[1] - zero, -(scored[0] - zero), rtol=1e-6)
    assert scored[1] < zero < scored[0]


@pytest.mark.parametrize("transform", ["standardize", "log", "none"])
def test_a_missing_indicator_keeps_empty_cells_as_nan(transform):
    frame = FRAME.assign(year=FRAME["year"] - 1980)
    filled, kept = (
        Preprocessor(features=[NumericFeature("year", transform, missing)])
        .fit(frame)
        .transform(frame)["year"]
        for missing in ("mean", "indicator")
    )
    assert filled[2] == 0.0 and np.isnan(kept[2])
    rows = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(kept[rows], filled[rows])


def test_preprocessor_collision_report():
    report = _pre().collision_report_["title"]
    assert report["distinct_values"] == 6  # toy story 1995 heat x up
    assert report["buckets"] == 64
    assert 0.0 <= report["colliding_share"] <= 1.0
    tiny = Preprocessor(
        features=[CategoricalFeature("user", vocabulary="hash", num_buckets=1)]
    ).fit(FRAME)
    assert tiny.collision_report_["user"]["colliding_share"] == 1.0


def test_preprocessor_accepts_arrow_tables():
    pre = _pre()
    from_arrow = pre.transform(pa.Table.from_pandas(FRAME))
    for name, values in pre.transform(FRAME).items():
        np.testing.assert_array_equal(from_arrow[name], values)


def test_preprocessor_save_load_round_trip(tmp_path):
    pre = _pre()
    path = tmp_path / "pre.json"
    pre.save(path)
    json.loads(path.read_text())  # plain JSON
    again = Preprocessor.load(path)
    for name, values in pre.transform(FRAME).items():
        np.testing.assert_array_equal(again.transform(FRAME)[name], values)


def test_stable_hash_is_identical_in_another_process():
    values = ["a", "42", "movie 7", ""]
    here = stable_hash(canonical_strings(values), 1000).tolist()
    code = (
        "from recsys.features import stable_hash, canonical_strings;"
        f"print(stable_hash(canonical_strings({values!r}), 1000).tolist())"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there == str(here)


def test_preprocessor_missing_column_names_it():
    with pytest.raises(KeyError, match="'genres'.*missing"):
        _pre().transform(FRAME.drop(columns=["genres"]))


def test_preprocessor_non_numeric_values_name_the_column():
    bad = FRAME.assign(year=["1995", "x", None, "1990", "2010", "2005"])
    # Training: the column may be declared categorical instead.
    with pytest.raises(
        ValueError, match=r"Column 'year' must be numeric.*'x' \(row 1\)"
    ):
        _pre().fit(bad)
    # A fitted model (`recsys score`): the cell is to mend, named by row.
    match = (
        r"Column 'year' holds 1 value that is no number, e.g. 'x' "
        r"\(row 1\) \(rows from 0\)"
        r": the model reads 'year' as a number.*Fix: write those cells"
    )
    with pytest.raises(ValueError, match=match):
        _pre().transform(bad)


def test_infinite_numbers_name_the_column_in_fit_and_transform():
    bad = FRAME.assign(year=[1995.0, np.inf, None, 1990.0, -np.inf, 2005.0])
    match = r"Column 'year' holds 2 infinite values, e.g. \[-inf, inf\]"
    with pytest.raises(ValueError, match=match):
        Preprocessor(features=[NumericFeature("year")]).fit(bad)
    with pytest.raises(ValueError, match=match):
        _pre().transform(bad)


def test_numbers_beyond_float32_once_scaled_name_the_column():
    # Before: 1e300 became inf in float32, and its row's score NaN.
    fitted = _pre()
    huge = FRAME.assign(year=[1995.0, 1e300, None, 1990.0, 2010.0, 2005.0])
    match = (
        r"Column 'year' holds 1 values too large for the model, e.g. 1e\+300"
    )
    with pytest.raises(ValueError, match=match):
        fitted.transform(huge)
    large = fitted.transform(
        huge.assign(year=huge["year"].replace(1e300, 1e30))
    )
    assert np.isfinite(large["year"]).all()


def test_preprocessor_empty_frame():
    with pytest.raises(ValueError, match="empty"):
        Preprocessor(features=[CategoricalFeature("user")]).fit(FRAME.iloc[:0])
    out = _pre().transform(FRAME.iloc[:0])
    assert out["genres"].shape == (0, 2) and out["user"].shape == (0,)


def test_preprocessor_transform_before_fit():
    with pytest.raises(NotFittedError, match="fit"):
        Preprocessor(features=[CategoricalFeature("user")]).transform(FRAME)


def _chunk_features():
    return [
        CategoricalFeature("user", min_frequency=2),
        CategoricalFeature("item", vocabulary="hash", num_buckets=50),
        MultiCategoricalFeature("tags", separator="|"),
        NumericFeature("age"),
        NumericFeature("count", transform="log"),
        BucketizedFeature("score", num_bins=5),
    ]


def _chunk_frame():
    rng = np.random.default_rng(3)
    n = 2000
    return pd.DataFrame(
        {
            "user": rng.zipf(1.6, n) % 300,
            "item": rng.integers(0, 80, n).astype(str),
            "tags": ["|".join(rng.choice(list("abcde"), 2)) for _ in range(n)],
            "age": np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 9, n)),
            "count": rng.exponential(4.0, n),
            "score": rng.normal(0.0, 1.0, n),
        }
    )


@pytest.mark.parametrize("arrow", [False, True])
def test_preprocessor_partial_fit_over_chunks_equals_fit(arrow):
    frame = _chunk_frame()
    whole = Preprocessor(features=_chunk_features()).fit(frame)
    chunked = Preprocessor(features=_chunk_features())
    for start, stop in ((0, 800), (800, 800), (800, 1500), (1500, 2000)):
        chunk = frame.iloc[start:stop]  # the second one is empty
        if arrow:
            chunk = pa.Table.from_pandas(chunk, preserve_index=False)
        assert chunked.partial_fit(chunk) is chunked
    assert chunked.vocabularies_ == whole.vocabularies_
    assert chunked.collision_report_ == whole.collision_report_
    assert chunked.stats_["score"] == whole.stats_["score"]
    for name in ("age", "count"):
        for key in ("mean", "std"):
            assert chunked.stats_[name][key] == pytest.approx(
                whole.stats_[name][key], rel=1e-12
            )
    for name, values in whole.transform(frame).items():
        np.testing.assert_allclose(chunked.transform(frame)[name], values)


def test_preprocessor_partial_fit_of_one_chunk_is_fit_to_the_bit():
    frame = _chunk_frame()
    whole = Preprocessor(features=_chunk_features()).fit(frame)
    once = Preprocessor(features=_chunk_features()).partial_fit(frame)
    assert json.dumps(once.get_config()) == json.dumps(whole.get_config())
    finite = frame["age"].dropna().to_numpy()
    assert whole.stats_["age"] == {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
    }


def test_preprocessor_partial_fit_learns_each_chunk_as_it_comes():
    pre = Preprocessor(features=[CategoricalFeature("user")])
    pre.partial_fit(pd.DataFrame({"user": [1, 2, 2]}))
    assert pre.vocabularies_["user"] == ["2", "1"]
    pre.partial_fit(pa.table({"user": [1, 1, 3]}))
    assert pre.vocabularies_["user"] == ["1", "2", "3"]
    np.testing.assert_array_equal(
        pre.transform_column("user", [3, 1, 9]), [4, 2, 1]
    )


def test_preprocessor_partial_fit_keeps_its_counts_on_a_bad_chunk():
    pre = Preprocessor(features=[CategoricalFeature("u"), NumericFeature("y")])
    pre.partial_fit(pd.DataFrame({"u": ["a"], "y": [1.0]}))
    with pytest.raises(ValueError, match="Column 'y' must be numeric"):
        pre.partial_fit(pd.DataFrame({"u": ["b"], "y": ["x"]}))
    assert pre.vocabularies_ == {"u": ["a"]}


def test_preprocessor_partial_fit_refuses_a_fit_or_loaded_preprocessor():
    fitted = Preprocessor(features=[CategoricalFeature("user")]).fit(FRAME)
    loaded = Preprocessor.from_config(fitted.get_config())
    for pre in (fitted, loaded):
        with pytest.raises(ValueError, match="keep no counts"):
            pre.partial_fit(FRAME)
    assert fitted.vocabularies_ == {"user": ["3", "2", "1"]}


def test_preprocessor_partial_fit_of_empty_chunks_only():
    pre = Preprocessor(features=[CategoricalFeature("user")])
    pre.partial_fit(FRAME.iloc[:0])
    with pytest.raises(ValueError, match="empty input"):
        _ = pre.vocabularies_


def test_preprocessor_learned_attributes_before_fit():
    pre = Preprocessor(features=[CategoricalFeature("user")])
    assert not pre.is_fitted
    assert not hasattr(pre, "vocabularies_")
    with pytest.raises(NotFittedError, match="not fitted"):
        _ = pre.stats_


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: CategoricalFeature("u", vocabulary="bloom"), "vocabulary"),
        (lambda: CategoricalFeature("u", vocabulary="hash"), "num_buckets"),
        (lambda: CategoricalFeature("u", min_frequency=0), "min_frequency"),
        (lambda: MultiCategoricalFeature("g"), "exactly one"),
        (lambda: MultiCategoricalFeature("g", tokenizer="bpe"), "tokenizer"),
        (lambda: NumericFeature("y", transform="sqrt"), "transform"),
        (lambda: NumericFeature("y", missing="median"), "missing"),
        (
            lambda: Preprocessor(
                features=[CategoricalFeature("u"), NumericFeature("u")]
            ),
            "unique",
        ),
    ],
)
def test_feature_specs_reject_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "value", [42, "42", 42.0, np.int64(42), True, "a b", None]
)
def test_canonical_string_matches_the_vectorized_form(value):
    from recsys.features import canonical_string

    assert canonical_string(value) == canonical_strings(pd.Series([value]))[0]


def test_canonical_strings_of_mixed_values_match_the_scalar_form():
    from recsys.features import canonical_string

    values = [1, "x", 2.0, None, 3.5, np.int64(4), True]
    expected = [canonical_string(v) for v in values]
    assert list(canonical_strings(pd.Series(values, dtype=object))) == expected
    assert expected[:3] == ["1", "x", "2"]


def test_tokenize_gives_the_tokens_transform_looks_up():
    pre = Preprocessor(features=[TextFeature("text", min_frequency=1)])
    texts = ["Great rally in Iowa! https://t.co/x 2016", None]
    pre.fit({"text": texts})
    tokens = pre.tokenize("text", texts)
    assert tokens == [
        ["great", "rally", "in", "iowa", "!", "xxurl", "xxnum"],
        [],
    ]
    ids = pre.transform_column("text", texts)
    vocabulary = pre.vocabularies_["text"]
    offset = 1 + pre.feature("text").num_oov_buckets
    assert [vocabulary[i - offset] for i in ids[0] if i] == tokens[0]
    with pytest.raises(ValueError, match="no tokens"):
        Preprocessor(features=[NumericFeature("x")]).fit({"x": [1.0]}).tokenize(
            "x", [1.0]
        )


@pytest.mark.parametrize(
    "feature, edit",
    [
        ("y", {"mean": "0.5"}),
        ("y", {"mean": float("nan")}),
        ("y", {"std": -0.3}),  # flipped the column's sign, scored on
        ("y", {"std": 0}),  # blamed the data ("values too large")
        ("y", {"std": True}),
        ("b", {"boundaries": [3.0, 1.0]}),
        ("b", {"boundaries": ["1"]}),
        ("b", {"boundaries": None}),
    ],
)
def test_a_saved_preprocessor_refuses_stats_fit_never_writes(feature, edit):
    frame = pd.DataFrame({"y": [1.0, 2.0, 4.0], "b": [1.0, 5.0, 9.0]})
    fitted = Preprocessor(
        features=[NumericFeature("y"), BucketizedFeature("b", num_bins=2)]
    ).fit(frame)
    config = json.loads(json.dumps(fitted.get_config()))
    Preprocessor.from_config(config)  # as saved: loads
    config["stats"][feature].update(edit)
    with pytest.raises(ValueError, match=f"of '{feature}' must be"):
        Preprocessor.from_config(config)
