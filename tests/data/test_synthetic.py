import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recsys.cli import main
from recsys.data.synthetic import METADATA_FILE
from recsys.data.synthetic import SyntheticInteractions


def small(**overrides):
    args = {
        "num_users": 500,
        "num_items": 300,
        "num_interactions": 20_000,
        "num_clusters": 6,
        "rows_per_group": 2048,
        "rows_per_file": 8192,
    }
    args.update(overrides)
    return SyntheticInteractions(**args)


def test_synthetic_same_seed_writes_same_rows(tmp_path):
    small().write(tmp_path / "a", progress=False)
    small().write(tmp_path / "b", progress=False)
    small(seed=1).write(tmp_path / "c", progress=False)
    a = pd.read_parquet(tmp_path / "a")
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "b"))
    assert not a.equals(pd.read_parquet(tmp_path / "c"))


def test_synthetic_writes_shards_in_row_groups(tmp_path):
    data = small()
    files = data.write(tmp_path / "d", progress=False)
    # 20,000 rows: 3 files of 8,192 rows at most, row groups of 2,048.
    assert [os.path.basename(f) for f in files] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    assert groups == [4, 4, 2]
    frame = pd.read_parquet(tmp_path / "d")
    assert len(frame) == 20_000
    columns = ["user_id", "item_id", "timestamp", "category"]
    assert list(frame.columns) == columns
    assert frame["user_id"].between(0, 499).all()
    assert frame["item_id"].between(0, 299).all()
    assert SyntheticInteractions.from_directory(tmp_path / "d") == data
    assert os.path.isfile(tmp_path / "d" / METADATA_FILE)


def test_synthetic_rows_follow_clusters_and_zipf():
    data = small(num_interactions=50_000, rows_per_file=51_200)
    rows = pd.concat(t.to_pandas() for t in data.chunks())
    same = (
        data.user_clusters()[rows["user_id"]]
        == data.item_clusters()[rows["item_id"]]
    )
    # affinity 0.8 plus the out-of-cluster draws that land inside by chance.
    expected = 0.8 + 0.2 / 6
    assert abs(same.mean() - expected) < 0.02
    counts = np.sort(rows["item_id"].value_counts().to_numpy())[::-1]
    assert counts[:30].sum() > 0.4 * counts.sum()  # heavy head


def test_synthetic_true_top_items_are_the_likeliest():
    data = small()
    top = data.true_top_items([0, 7], k=20)
    for row, user in zip(top, [0, 7], strict=True):
        p = data.item_probabilities(data.user_clusters()[user])
        assert set(row) == set(np.argsort(-p, kind="stable")[:20])
        assert np.all(np.diff(p[row]) <= 0)


def test_synthetic_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        small().write(tmp_path / "x", progress=False)
    assert os.listdir(tmp_path / "x") == ["keep.txt"]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"num_clusters": 400}, r"\(--clusters\) .* Fix: lower .*--clusters"),
        ({"num_users": 0}, r"`num_users` \(--users\) must be a positive"),
        ({"seed": -1}, r"`seed` \(--seed\) must be a non-negative integer"),
        ({"affinity": 1.5}, "affinity"),
        ({"rows_per_file": 3000}, "multiple of"),
    ],
)
def test_synthetic_bad_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        small(**overrides)


def test_cli_synth(tmp_path, capsys):
    out = str(tmp_path / "s")
    args = ["synth", out, "--users", "100", "--items", "80"]
    args += ["--interactions", "5000", "--clusters", "4", "-q"]
    assert main(args) == 0
    assert len(pd.read_parquet(out)) == 5000
    assert main(args) == 1
    assert "not an empty directory" in capsys.readouterr().err


def test_cli_synth_messages_name_the_flags(tmp_path, capsys):
    # "expected non-negative integer" named no flag; the default of 50
    # clusters refused 10 users without saying --clusters.
    out = str(tmp_path / "s")
    for flags, expected in (
        (["--seed", "-1"], "`seed` (--seed) must be a non-negative integer"),
        ([], "Fix: lower `num_clusters` (--clusters) to at most 10"),
    ):
        args = ["synth", out, "--users", "10", "--items", "20", "-q"]
        assert main(args + ["--interactions", "50", *flags]) == 1
        assert expected in capsys.readouterr().err
    assert not os.path.exists(out)
