"""`recsys train` on a Parquet directory: streamed end to end."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.bundles.two_tower import Bundle
from recsys.cli import main
from recsys.data.synthetic import SyntheticInteractions

CONFIG = "configs/synthetic_two_tower.toml"


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "data"
    SyntheticInteractions(
        num_users=3000,
        num_items=2000,
        num_interactions=80_000,
        num_clusters=10,
        rows_per_group=8192,
        rows_per_file=32768,
    ).write(path, progress=False)
    return str(path)


@pytest.fixture(scope="module")
def streamed(synthetic_dir, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("stream") / "bundle")
    metrics = _train(synthetic_dir, output, "train.epochs=2")
    return Bundle.load(output), metrics


def _train(synthetic_dir, output, *settings):
    """`recsys train` of the streamed config; its metrics."""
    sets = [f"data.path={synthetic_dir}", *settings]
    args = ["train", CONFIG, "-o", output, "-q"]
    code = main(args + [arg for s in sets for arg in ("--set", s)])
    assert code == 0
    with open(os.path.join(output, "metrics.json")) as f:
        return json.load(f)


def test_streamed_training_beats_popularity(streamed):
    bundle, metrics = streamed
    assert metrics["data"]["rows"] == 80_000
    assert metrics["data"]["row_groups"] == 10
    assert metrics["test"]["hr@100"] > metrics["baseline_popularity"]["hr@100"]
    truth = metrics["ground_truth"]
    model, popular = truth["model"], truth["baseline_popularity"]
    # The model finds the latent clusters; popularity ignores them.
    assert model["cluster_precision@100"] > 0.3
    assert model["cluster_precision@100"] > 3 * popular["cluster_precision@100"]
    assert model["recall@100_vs_truth"] > popular["recall@100_vs_truth"]
    assert set(metrics["stages"]) >= {"vocab", "train", "embed", "index"}


def test_streamed_training_with_a_table_1000_times_the_batch(
    synthetic_dir, tmp_path
):
    # 262,144 hashed user rows against batches of 256: each step touches
    # at most 256 of them (sparse row updates), and the run still learns.
    output = str(tmp_path / "bundle")
    metrics = _train(
        synthetic_dir,
        output,
        'features.user_id.vocabulary="hash"',
        "features.user_id.num_buckets=262143",
        "train.batch_size=256",
    )
    assert metrics["train"]["sparse_updates"] is True
    table = Bundle.load(output).query_tower.embeddings[0].embeddings
    assert table.shape[0] >= 1000 * 256
    assert metrics["test"]["hr@100"] > metrics["baseline_popularity"]["hr@100"]


def test_streamed_bundle_recommends_unseen_items(streamed, synthetic_dir):
    bundle, metrics = streamed
    assert len(bundle.item_ids) == metrics["data"]["items"]
    user = int(bundle.user_ids[0])
    ids, _ = bundle.recommend([user], k=20)
    seen = set(bundle.item_ids[bundle.seen(0)].tolist())
    assert len(seen) > 0 and not seen & set(ids[0].tolist())
    # The seen CSR holds every training row of the user.
    table = pq.read_table(synthetic_dir, columns=["user_id", "item_id"])
    end = metrics["data"]["split_time"][0]
    times = pq.read_table(synthetic_dir, columns=["timestamp"])
    train = np.asarray(times.column("timestamp")) < end
    mine = np.asarray(table.column("user_id")) == user
    expected = np.asarray(table.column("item_id"))[train & mine]
    np.testing.assert_array_equal(
        np.sort(bundle.item_ids[bundle.seen(0)]), np.sort(expected)
    )


def test_evaluate_command_rescores_a_streamed_bundle(streamed, capsys):
    bundle, metrics = streamed
    capsys.readouterr()
    assert main(["evaluate", bundle.path, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    for key in ("test", "baseline_popularity"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5)
    for key in ("model", "baseline_popularity"):
        assert again["ground_truth"][key] == pytest.approx(
            metrics["ground_truth"][key], rel=1e-5
        )
    # Without --json, the table `recsys train` printed, ground truth too.
    assert main(["evaluate", bundle.path]) == 0
    table = capsys.readouterr().out
    assert "HR@k on the test split" in table
    assert "ground truth" in table


def train_on(path, tmp_path, *overrides):
    args = ["train", CONFIG, "-o", str(tmp_path / "out"), "-q"]
    args += ["--set", f"data.path={path}"]
    for override in overrides:
        args += ["--set", override]
    return main(args)


def test_streamed_training_bad_inputs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_on(empty, tmp_path) == 1
    assert "No Parquet files" in capsys.readouterr().err

    shards = tmp_path / "shards"
    shards.mkdir()
    good = {"user_id": [1, 2], "item_id": [3, 4], "timestamp": [5, 6]}
    pq.write_table(pa.table({**good, "category": [0, 1]}), shards / "a.parquet")
    pq.write_table(pa.table(good), shards / "b.parquet")
    assert train_on(shards, tmp_path) == 1
    err = capsys.readouterr().err
    assert "Column 'category' is missing from" in err and "b.parquet" in err

    nulls = tmp_path / "nulls"
    nulls.mkdir()
    pq.write_table(
        pa.table({**good, "user_id": [1, None], "category": [0, 1]}),
        nulls / "a.parquet",
    )
    assert train_on(nulls, tmp_path) == 1
    err = capsys.readouterr().err
    assert "Column 'user_id' in" in err and "a.parquet has 1 null" in err


def test_streamed_training_refuses_histories(synthetic_dir, tmp_path, capsys):
    assert train_on(synthetic_dir, tmp_path, "model.history_length=10") == 1
    assert "model.history_length must be 0" in capsys.readouterr().err


def test_split_bounds_hold_out_the_end_of_the_time_span(tmp_path):
    from recsys.config import load_config
    from recsys.kinds.two_tower_streamed import open_source
    from recsys.kinds.two_tower_streamed import split_bounds

    times = list(range(0, 1001, 10))
    n = len(times)
    pq.write_table(
        pa.table(
            {
                "user_id": [1] * n,
                "item_id": [2] * n,
                "timestamp": times,
                "category": [0] * n,
            }
        ),
        tmp_path / "a.parquet",
    )
    config = load_config(CONFIG, [f"data.path={tmp_path}"])
    source = open_source(config)
    train_end, test_end = split_bounds(source, config)
    assert train_end == pytest.approx(900.0) and test_end > 1000
    config["evaluate"]["split"] = "validation"
    train_end, test_end = split_bounds(source, config)
    assert (train_end, test_end) == pytest.approx((810.0, 900.0))
