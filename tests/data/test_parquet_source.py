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
    with pytest.raises(ValueError, match=r"Cannot read .* from .*a\.parquet"):
        ParquetSource(str(tmp_path), ROLES)
