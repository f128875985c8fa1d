import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.parquet_source import ParquetSource

ROLES = {"user": "id", "item": "id", "time": "time"}


def write(path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=2)


def test_parquet_source_lists_row_groups(tmp_path):
    ids = [1, 2, 3]
    write(tmp_path / "a.parquet", user=ids, item=ids, time=ids)
    write(tmp_path / "b.parquet", user=[7], item=[8], time=[9])
    (tmp_path / "_notes.json").write_text("{}")  # skipped, as by pyarrow
    source = ParquetSource(str(tmp_path), ROLES)
    assert [rows for _, _, rows in source.groups] == [2, 1, 1]
    assert source.num_rows == 4
    assert source.read(1, ["user"]).column("user").to_pylist() == [3]
    assert source.time_range("time") == (1.0, 9.0)


def test_parquet_source_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="No Parquet files"):
        ParquetSource(str(tmp_path), ROLES)


def test_parquet_source_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.path not found"):
        ParquetSource(str(tmp_path / "nope"), ROLES)


def test_parquet_source_no_rows(tmp_path):
    empty = pa.array([], pa.int64())
    write(tmp_path / "a.parquet", user=empty, item=empty, time=empty)
    with pytest.raises(ValueError, match="hold no rows"):
        ParquetSource(str(tmp_path), ROLES)


def test_parquet_source_missing_column_names_file_and_column(tmp_path):
    write(tmp_path / "a.parquet", user=[1], item=[2], time=[3])
    write(tmp_path / "b.parquet", user=[1], time=[3])
    with pytest.raises(ValueError, match=r"Column 'item' is missing from .*b"):
        ParquetSource(str(tmp_path), ROLES)


def test_parquet_source_wrong_type_names_file_and_column(tmp_path):
    write(tmp_path / "a.parquet", user=[1], item=[2], time=[True])
    with pytest.raises(
        ValueError, match=r"Column 'time' in .*a\.parquet has type bool"
    ):
        ParquetSource(str(tmp_path), ROLES)


def test_times_as_text_are_parsed_by_the_time_format(tmp_path):
    write(
        tmp_path / "a.parquet",
        user=[1, 1],
        item=[2, 3],
        time=["02/01/1970 00:00", "01/01/1970 00:01"],
    )
    source = ParquetSource(str(tmp_path), ROLES)
    assert source.time_range("time", "%d/%m/%Y %H:%M") == (60.0, 86400.0)
    with pytest.raises(ValueError, match="do not parse with data.time_format"):
        source.time_range("time")


def test_parquet_source_types_must_agree_across_shards(tmp_path):
    write(tmp_path / "a.parquet", user=[1], item=[2], time=[3])
    write(tmp_path / "b.parquet", user=["u1"], item=[2], time=[3])
    with pytest.raises(ValueError, match=r"Column 'user' is string in .*b"):
        ParquetSource(str(tmp_path), ROLES)


def test_parquet_source_unreadable_shard(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(
        ValueError, match=r"Cannot read .*a\.parquet as Parquet: .*Fix"
    ):
        ParquetSource(str(tmp_path), ROLES)


def test_files_that_are_not_parquet_are_skipped_once_named(tmp_path, caplog):
    # A README.txt or notes.csv beside the shards stopped the run with
    # pyarrow's "magic bytes not found".
    write(tmp_path / "b.parquet", user=[1], item=[2], time=[3])
    (tmp_path / "README.txt").write_text("my shards\n")
    (tmp_path / "a_notes.csv").write_text("x,y\n1,2\n")
    with caplog.at_level("WARNING", logger="recsys"):
        source = ParquetSource(str(tmp_path), ROLES)
    assert [os.path.basename(f) for f in source.files] == ["b.parquet"]
    assert [r.getMessage() for r in caplog.records] == [
        f"Reading the .parquet files in {tmp_path} only; skipped "
        "README.txt, a_notes.csv."
    ]
    (tmp_path / "b.parquet").unlink()
    with pytest.raises(ValueError, match=r"No Parquet files .*README\.txt"):
        ParquetSource(str(tmp_path), ROLES)


def test_a_shard_without_rows_is_skipped_whatever_its_types(tmp_path):
    # pa.table({"user": []}) types its columns null: no rows, no conflict.
    pq.write_table(
        pa.table({"user": [], "item": [], "time": []}), tmp_path / "0.parquet"
    )
    write(tmp_path / "a.parquet", user=[1], item=[2], time=[3])
    write(tmp_path / "b.parquet", user=["x"], item=[2], time=[3])
    with pytest.raises(ValueError, match=r"'user' is string in .*b\.parquet "):
        ParquetSource(str(tmp_path), ROLES)  # and int64 in a.parquet
    (tmp_path / "b.parquet").unlink()
    assert ParquetSource(str(tmp_path), ROLES).num_rows == 1


@pytest.mark.parametrize(
    "times",
    [
        [1.0, float("nan"), 3.0, float("nan")],
        ["2020-01-01", "", "2020", " "],
        ["2020-01-01", None, "2020", ""],
    ],
)
def test_rows_without_a_time_are_refused_not_dropped(tmp_path, times):
    # NaN or empty text fell in neither split: rows were lost unsaid.
    ids = [1, 2, 3, 4]
    time = pa.array(times, from_pandas=False)
    write(tmp_path / "a.parquet", user=ids, item=ids, time=time)
    source = ParquetSource(str(tmp_path), ROLES)
    with pytest.raises(
        ValueError,
        match=r"Column 'time' in .*a\.parquet has 2 null, empty, NaN or "
        r"infinite values; .* Fix: drop or fill those rows",
    ):
        source.time_range("time")


def test_a_time_that_does_not_parse_is_named_with_its_file_and_row(tmp_path):
    times = ["2021-06-22T20:48:55", "2020-10-26T12:21:40", "2020-10-27"]
    times += ["N/A", "2020-10-28"]
    ids = list(range(5))
    write(tmp_path / "a.parquet", user=ids, item=ids, time=times)
    source = ParquetSource(str(tmp_path), ROLES)
    with pytest.raises(ValueError) as caught:
        source.time_range("time")
    message = str(caught.value)
    # Row 3 lies in the second row group of two rows.
    assert "a.parquet holds times as text that do not parse" in message
    assert "'N/A' at row 3 (from 0" in message
    assert "Fix: correct or drop those rows." in message


def test_a_shard_with_corrupt_data_pages_is_named_with_its_row_group(tmp_path):
    # The footer is intact, so the shard passes the check up front; the
    # damage shows when a pass reads the page, as pyarrow's bare "Corrupt
    # snappy compressed data" (no file named among hundreds of shards).
    write(tmp_path / "a.parquet", user=[1], item=[2], time=[3])
    shard = tmp_path / "b.parquet"
    ids = list(range(1000))
    pq.write_table(
        pa.table({"user": ids, "item": ids, "time": ids}),
        shard,
        row_group_size=500,
        use_dictionary=False,
    )
    chunk = pq.ParquetFile(shard).metadata.row_group(1).column(2)
    data = bytearray(shard.read_bytes())
    start = chunk.data_page_offset
    for i in range(start, start + chunk.total_compressed_size, 3):
        data[i] ^= 0x5A
    shard.write_bytes(bytes(data))
    source = ParquetSource(str(tmp_path), ROLES)
    assert source.read(1, ["time"]).num_rows == 500  # b's first group
    with pytest.raises(
        ValueError,
        match=r"Cannot read row group 1 of .*b\.parquet: .*Fix: rewrite the "
        r"shard, or move it out of data\.path\.",
    ):
        source.time_range("time")
