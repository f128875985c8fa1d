"""A table that names a column twice (a Parquet schema, a JSON record) is
refused in one line naming the file, the column and the fix, by every
reader: `load_interactions` (init, train), `ParquetSource` and scoring."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.parquet_source import ParquetSource
from recsys.data.sources import load_interactions

REPEATED = r"names the column 'user' more than once \(columns 1, 3\)\. Fix"


def _write_repeated(path):
    # pyarrow (and Spark) write such files; pandas cannot.
    columns = [pa.array([1, 2]), pa.array([3, 4]), pa.array(["a", "b"])]
    pq.write_table(pa.table(columns, names=["user", "item", "user"]), path)


@pytest.mark.parametrize("max_rows", [None, 1])  # train's read, init's
def test_a_parquet_file_naming_a_column_twice_is_refused(tmp_path, max_rows):
    # Before: "Multiple matches for FieldRef.Name(user) in ..." (8 lines),
    # or "Can't unify schema with duplicate field names" (init).
    path = tmp_path / "t.parquet"
    _write_repeated(path)
    with pytest.raises(ValueError, match=f"t.parquet {REPEATED}"):
        load_interactions(path, max_rows=max_rows)
    with pytest.raises(ValueError, match=f"t.parquet {REPEATED}"):
        ParquetSource(str(path), {"item": "id"})


def test_a_shard_naming_a_column_twice_is_named(tmp_path):
    # Before: read without a word where the first shard lacked the repeat.
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.table({"user": [5], "item": [6]}), shards / "a.parquet")
    _write_repeated(shards / "b.parquet")
    with pytest.raises(ValueError, match=f"b.parquet {REPEATED}"):
        load_interactions(shards)


@pytest.mark.parametrize(
    "name, text",
    [
        ("t.json", '[{"user": 1, "item": {"a": 1}, "user": 2}]'),
        ("t.jsonl", '{"user": 1, "item": 3, "user": 2}\n'),
    ],
)
def test_a_json_record_naming_a_key_twice_is_refused(tmp_path, name, text):
    # Before: read with the last value, the first dropped without a word.
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"{name} names the column 'user'"):
        load_interactions(tmp_path / name)
