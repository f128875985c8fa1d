"""The time column: numbers, datetimes, or times as text (issue #15)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.data.retrieval_inputs import check_interactions
from recsys.data.retrieval_inputs import guess_time_format
from recsys.data.retrieval_inputs import parse_times
from recsys.data.retrieval_inputs import positive_rows
from recsys.data.retrieval_inputs import user_states
from recsys.features import Preprocessor
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import NumericFeature

COLUMNS = {"user": "u", "item": "i", "time": "t"}


def _frame(times):
    n = len(times)
    return pd.DataFrame({"u": [1] * n, "i": list(range(n)), "t": times})


def test_iso_dates_and_datetimes_are_parsed():
    frame = _frame(["2024-03-02", "2024-03-01T12:00:00", "2024-03-01"])
    checked = check_interactions(frame, **COLUMNS)
    assert pd.api.types.is_datetime64_any_dtype(checked["t"])
    assert checked["t"].tolist() == [
        pd.Timestamp("2024-03-02"),
        pd.Timestamp("2024-03-01 12:00"),
        pd.Timestamp("2024-03-01"),
    ]
    # The caller's frame is left as it was.
    assert frame["t"].tolist()[0] == "2024-03-02"


def test_numbers_and_datetimes_are_used_as_they_are():
    numbers = _frame([3, 1, 2])
    assert check_interactions(numbers, **COLUMNS) is numbers
    dates = _frame(pd.to_datetime(["2024-01-01", "2024-01-02"]))
    assert parse_times(dates, "t") is dates


@pytest.mark.parametrize("column", ["u", "i"])
def test_ids_of_text_and_numbers_in_one_column_name_it(column):
    # Sorting the catalog failed with pandas' "'<' not supported between
    # instances of 'str' and 'int'", naming no column.
    frame = _frame([1, 2, 3]).astype({column: object})
    frame.loc[1, column] = "p7"
    with pytest.raises(
        ValueError, match=rf"Column '{column}' mixes text .*'p7'"
    ):
        check_interactions(frame, **COLUMNS)
    # Numbers of two types, or all text, are one kind of id.
    frame.loc[1, column] = 2.0
    check_interactions(frame, **COLUMNS)
    check_interactions(frame.astype({column: str}), **COLUMNS)


def test_time_format_parses_other_layouts():
    # Day first: read as ISO (or month first) these would order wrongly.
    frame = _frame(["02/03/2024 10:00", "13/02/2024 09:30"])
    checked = check_interactions(frame, **COLUMNS, time_format="%d/%m/%Y %H:%M")
    assert checked["t"].tolist() == [
        pd.Timestamp("2024-03-02 10:00"),
        pd.Timestamp("2024-02-13 09:30"),
    ]


def test_different_utc_offsets_are_one_scale():
    frame = _frame(["2024-01-01T12:00:00+01:00", "2024-07-01T12:00:00+02:00"])
    checked = check_interactions(frame, **COLUMNS)
    assert checked["t"].tolist() == [
        pd.Timestamp("2024-01-01 11:00", tz="UTC"),
        pd.Timestamp("2024-07-01 10:00", tz="UTC"),
    ]


def test_unparsed_times_name_the_column_a_value_and_the_fix():
    frame = _frame(["2024-03-01", "yesterday", "2024-03-03"])
    with pytest.raises(ValueError) as caught:
        check_interactions(frame, **COLUMNS)
    message = str(caught.value)
    assert "Column 't'" in message
    assert "'yesterday' (row 1)" in message
    assert "data.time_format" in message


def test_a_wrong_time_format_is_named():
    frame = _frame(["2024-03-01", "2024-03-02"])
    with pytest.raises(ValueError, match="in the format '%d/%m/%Y'"):
        check_interactions(frame, **COLUMNS, time_format="%d/%m/%Y")


def test_other_dtypes_are_refused():
    frame = _frame(pd.to_timedelta([1, 2], unit="s"))
    with pytest.raises(ValueError, match="Received dtype timedelta64"):
        check_interactions(frame, **COLUMNS)


RATED = pd.DataFrame(
    {
        "user": [1, 1, 2, 2, 3],
        "item": [10, 11, 10, 12, 13],
        "rating": [5.0, 2.0, 4.0, None, 3.5],
        "event": ["buy", "view", "cart", "buy", None],
    }
)


def test_positive_rows_keep_what_counts():
    assert positive_rows(RATED, {"positive_column": ""}) is RATED
    high = positive_rows(
        RATED, {"positive_column": "rating", "positive_min": 4}
    )
    assert high["item"].tolist() == [10, 10]  # an empty rating never counts
    bought = positive_rows(
        RATED,
        {"positive_column": "event", "positive_values": ["buy", "cart"]},
    )
    assert bought["item"].tolist() == [10, 10, 12]
    assert bought.index.tolist() == [0, 1, 2]
    # A whole number (or its text) counts for a rating of 5.0.
    five = positive_rows(
        RATED, {"positive_column": "rating", "positive_values": [5, "4"]}
    )
    assert five["item"].tolist() == [10, 10]


def test_positive_rows_name_what_is_wrong():
    with pytest.raises(KeyError, match="stars"):
        positive_rows(RATED, {"positive_column": "stars", "positive_min": 4})
    with pytest.raises(ValueError, match="'event' holds text.*positive_values"):
        positive_rows(RATED, {"positive_column": "event", "positive_min": 4})
    with pytest.raises(ValueError, match=r"No row is positive \(rating >= 9"):
        positive_rows(RATED, {"positive_column": "rating", "positive_min": 9})
    # The values held, for a value spelled otherwise ("yes" among Yes / No).
    with pytest.raises(
        ValueError,
        match=r"column 'event' holds \['buy', 'view', 'cart'\]\. Fix",
    ):
        positive_rows(
            RATED, {"positive_column": "event", "positive_values": ["Buy"]}
        )


def test_a_table_without_its_time_column_is_told_of_an_empty_time():
    frame = pd.DataFrame({"u": [1, 2], "i": [3, 4]})
    with pytest.raises(KeyError, match=r'or data.time = "" for a table'):
        check_interactions(frame, **COLUMNS)


def test_a_wrong_time_format_suggests_the_one_that_reads_the_times():
    # Before: always 'e.g. data.time_format = "%d/%m/%Y %H:%M"', which reads
    # no "24/12/2010", and again once that was set.
    frame = pd.DataFrame({"t": ["24/12/2010", "01/02/2011", "13/05/2012"]})
    for written in ("ISO8601", "%d/%m/%Y %H:%M"):
        with pytest.raises(ValueError, match='time_format = "%d/%m/%Y", which'):
            parse_times(frame, "t", written)


def test_ids_without_text_load_as_before():
    # Booleans or bytes beside numbers hold no text: the check's message
    # failed with an IndexError on them.
    frame = _frame([1, 2]).astype({"i": object})
    frame.loc[1, "i"] = True
    check_interactions(frame, **COLUMNS)


def test_one_impossible_date_is_named_with_its_row_and_the_fix():
    # 31/02 among 199 good days: the layout is right, the row is not.
    days = pd.date_range("2024-01-01", periods=199).strftime("%d/%m/%Y")
    frame = pd.DataFrame({"t": [*days[:150], "31/02/2024", *days[150:]]})
    assert guess_time_format(frame["t"]) == "%d/%m/%Y"
    with pytest.raises(ValueError) as caught:
        parse_times(frame, "t", "%d/%m/%Y")
    message = str(caught.value)
    assert "but for 1 value: '31/02/2024' (row 150)" in message
    assert "Fix: correct or drop those rows" in message
    # 5% impossible: still the column's layout, each named (the fix was a
    # format the times already had).
    some = frame["t"].where(frame.index % 20 != 3, "30/02/2024")
    assert guess_time_format(some) == "%d/%m/%Y"
    with pytest.raises(
        ValueError, match=r"but for 11 values: '30/02/2024' \(row 3\)"
    ):
        parse_times(some.to_frame(), "t", "%d/%m/%Y")
    # Many that do not parse: the format is wrong, as before.
    assert (
        guess_time_format(frame["t"].where(frame.index % 2 == 0, "x")) is None
    )


def test_float_ids_of_whole_numbers_are_integers():
    # An id column with an empty cell reads as float64; its rows dropped,
    # the ids came back from `recommend` as text ("5").
    frame = pd.DataFrame(
        {"u": [1.0, 2.0, 3.0], "i": [5.0, 13.0, 5.0], "t": [1, 2, 3]}
    )
    checked = check_interactions(frame, **COLUMNS)
    assert checked["u"].dtype == "int64" and checked["i"].tolist() == [5, 13, 5]
    # Fractions are not ids of whole numbers: left as they are.
    frame["i"] = [5.5, 13.0, 5.0]
    assert check_interactions(frame, **COLUMNS)["i"].dtype == "float64"


def test_seen_lists_hold_each_item_once():
    from recsys.data.retrieval_inputs import distinct_per_user

    # One entry per training row made the index exclude (and ask for) a
    # repeated item as often as the user had it.
    indptr = np.array([0, 3, 3, 7, 8])
    items = np.array([5, 1, 5, 2, 2, 9, 0, 4], dtype=np.int32)
    for chunk in (1, 3, 1 << 24):  # users sorted a few at a time alike
        starts, seen = distinct_per_user(indptr, items, chunk)
        assert starts.tolist() == [0, 2, 2, 5, 6]
        # In the order of each item's last row: a history stays one.
        assert seen.tolist() == [1, 5, 2, 9, 0, 4]
        assert seen.dtype == np.int32


@pytest.mark.parametrize(
    "dtype, missing",
    [("Int64", pd.NA), ("Float64", pd.NA), ("category", None)],
)
def test_positive_rows_of_a_nullable_or_category_column_are_its_numbers(
    dtype, missing
):
    # `convert_dtypes()` gives `Int64` with pd.NA: the comparison crashed
    # (non-boolean mask), and a category of ints was said to hold text.
    ratings = [5, missing, 3, 4, 1]
    frame = pd.DataFrame(
        {
            "item": [10, 11, 12, 13, 14],
            "rating": pd.Series(ratings, dtype=dtype),
        }
    )
    twin = frame.astype({"rating": "float64"})  # pd.NA is NaN there
    for rule in ({"positive_min": 4}, {"positive_values": [5, 4]}):
        data = {"positive_column": "rating", **rule}
        kept = positive_rows(frame, data)["item"].tolist()
        assert kept == positive_rows(twin, data)["item"].tolist() == [10, 13]


def test_positive_rows_of_a_nullable_boolean_skip_its_missing_cells():
    liked = pd.Series([True, pd.NA, False, True], dtype="boolean")
    frame = pd.DataFrame({"item": [10, 11, 12, 13], "liked": liked})
    twin = frame.astype({"liked": "float64"})
    for rule in ({"positive_min": 1}, {"positive_values": [True]}):
        data = {"positive_column": "liked", **rule}
        kept = positive_rows(frame, data)["item"].tolist()
        assert kept == positive_rows(twin, data)["item"].tolist() == [10, 13]


def _tags(cells):
    return pd.DataFrame({"item": [1, 1, 2, 2, 3], "tags": cells})


@pytest.mark.parametrize("form", ["lists", "arrays", "arrow"])
def test_values_per_item_counts_list_cells_as_their_text_twin(form):
    from recsys.data.retrieval_inputs import values_per_item

    # Item 1 has one tag list twice, item 2 two lists, item 3 one empty cell.
    lists = [["a", "b"], ["a", "b"], ["a"], ["b", "c"], None]
    cells = {
        "lists": pd.Series(lists, dtype=object),
        "arrays": pd.Series(
            [None if v is None else np.array(v) for v in lists], dtype=object
        ),
        "arrow": pd.Series(lists, dtype=pd.ArrowDtype(pa.list_(pa.string()))),
    }[form]
    text = pd.Series([None if v is None else "|".join(v) for v in lists])
    counts = values_per_item(_tags(cells), "item", ["tags"])
    twin = values_per_item(_tags(text), "item", ["tags"])
    assert counts["tags"].tolist() == twin["tags"].tolist() == [1, 2, 0]
    # As the tabular item table counts them: an empty cell is a value.
    counts = values_per_item(_tags(cells), "item", ["tags"], dropna=False)
    assert counts["tags"].tolist() == [1, 2, 1]


def test_float_ids_that_are_not_all_whole_numbers_are_named(caplog):
    # Before: one 3.5 (or 1e20) among whole numbers made every id text
    # without a word, and `inf` was an item id.
    frame = pd.DataFrame(
        {"u": [1, 2, 3, 4], "i": [5.0, 13.0, 3.5, 1e20], "t": [1, 2, 3, 4]},
        index=[10, 11, 12, 13],
    )
    with caplog.at_level("WARNING", logger="recsys.data.retrieval_inputs"):
        check_interactions(frame, **COLUMNS)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1
    assert (
        "'i' holds whole numbers but for 2 of its 4 values, e.g. 3.5 "
        in (said[0])
    )
    assert "(row 12): its ids are read as text ('5' and '3.5'" in said[0]
    frame.loc[11, "i"] = -np.inf
    with pytest.raises(ValueError, match=r"'i' holds -inf \(row 11\), which"):
        check_interactions(frame, **COLUMNS)


def test_a_known_users_features_are_their_latest_filled_values():
    # User 7's country is blank on their latest row only, user 8's changed
    # from FR to DE: served as FR (not as no country) and as DE.
    train = pd.DataFrame(
        {
            "u": [7, 7, 7, 8, 8, 9],
            "i": [1, 2, 3, 1, 2, 3],
            "country": ["FR", "FR", None, "FR", "DE", None],
            "age": [30.0, np.nan, np.nan, 40.0, 41.0, np.nan],
        }
    )
    preprocessor = Preprocessor(
        features=[
            CategoricalFeature("u"),
            CategoricalFeature("i"),
            CategoricalFeature("country"),
            NumericFeature("age", missing="indicator"),
        ]
    ).fit(train)
    states = user_states(
        preprocessor,
        train,
        train.drop_duplicates("i"),
        user="u",
        item="i",
        query_features=["country", "age"],
        history_length=0,
    )
    assert states["users"].tolist() == [7, 8, 9]
    for name, latest in {
        "country": ["FR", "DE", None],
        "age": [30.0, 41.0, np.nan],
    }.items():
        np.testing.assert_array_equal(
            states["inputs"][name],
            preprocessor.transform_column(name, pd.Series(latest)),
        )
