"""`recsys train` on a Parquet directory: streamed end to end."""

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.bundles.two_tower import Bundle
from recsys.cli import main
from recsys.data.synthetic import SyntheticInteractions
from recsys.evaluation.retrieval import REPEATS_NOTED
from recsys.kinds.two_tower import summary
from recsys.kinds.two_tower_streamed import MAX_TEST_PER_USER
from recsys.kinds.two_tower_streamed import evaluate_streamed
from recsys.kinds.two_tower_streamed import evaluation_metrics

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
    # Without --json, the table `recsys train` printed, ground truth too;
    # --rescore checks the numbers are training's.
    assert main(["evaluate", bundle.path, "--rescore"]) == 0
    table = capsys.readouterr().out
    assert "HR@k on the test split" in table
    assert "ground truth" in table


def test_a_streamed_bundle_evaluated_on_its_rows_is_not_said_other(
    streamed, synthetic_dir, tmp_path, capsys
):
    # Its split held out the last share of the time span, --data's the
    # last share of the rows: "not the table the bundle was trained on".
    bundle, _ = streamed
    table = tmp_path / "rows.parquet"
    pd.read_parquet(synthetic_dir).to_parquet(table)
    capsys.readouterr()
    assert main(["evaluate", bundle.path, "--data", str(table), "-q"]) == 0
    assert "not the table" not in capsys.readouterr().err


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


def _write_times(path, times):
    n = len(times)
    pq.write_table(
        pa.table(
            {
                "user_id": list(range(n)),
                "item_id": [2] * n,
                "timestamp": times,
                "category": [0] * n,
            }
        ),
        path / "a.parquet",
    )


def test_split_bounds_name_one_time_and_the_time_span(tmp_path):
    from recsys.config import load_config
    from recsys.kinds.two_tower_streamed import open_source
    from recsys.kinds.two_tower_streamed import split_bounds

    # One time on every row read "Cannot fit a Preprocessor on an empty
    # input (0 rows)".
    _write_times(tmp_path, [1_700_000_000] * 4)
    config = load_config(CONFIG, [f"data.path={tmp_path}"])
    with pytest.raises(
        ValueError,
        match=r"'timestamp' in .* holds one time \(1700000000\) on every "
        r"row: a time split needs at least two\. Fix:",
    ):
        split_bounds(open_source(config), config)
    # A cutoff outside the times says what they are.
    _write_times(tmp_path, ["2024-01-01", "2024-02-01"])
    config = load_config(
        CONFIG, [f"data.path={tmp_path}", 'data.split_cutoff="2025-01-01"']
    )
    with pytest.raises(
        ValueError,
        match=r"outside the times of column 'timestamp' in .* "
        r"\(2024-01-01T00:00:00\+00:00 to 2024-02-01T00:00:00\+00:00\)",
    ):
        split_bounds(open_source(config), config)


def test_streamed_training_refuses_rows_without_a_time(tmp_path, capsys):
    # 5,000 of 50,000 rows were dropped without a word.
    shards = tmp_path / "shards"
    shards.mkdir()
    times = ["2024-01-01", "", "2024-01-03", "2024-01-04"]
    good = {
        "user_id": [1, 2, 1, 2],
        "item_id": [3, 4, 4, 3],
        "category": [0] * 4,
    }
    pq.write_table(pa.table({**good, "timestamp": times}), shards / "a.parquet")
    assert train_on(shards, tmp_path) == 1
    err = capsys.readouterr().err
    assert (
        "Column 'timestamp' in" in err and "a.parquet has 1 null, empty" in err
    )


def test_evaluate_after_index_leaves_new_items_out_of_the_truth(streamed):
    from recsys.kinds.two_tower_streamed import evaluate_streamed

    # New ids past the generator's items read its item_clusters() out of
    # bounds (IndexError).
    bundle, metrics = streamed
    new = {"item_id": [2000, 2007, -3], "category": [1, 2, 3]}  # 2000 items
    added = bundle.add_items(pd.DataFrame(new))
    again = evaluate_streamed(added, progress=False)
    for key in ("model", "baseline_popularity"):
        assert again["ground_truth"][key] == pytest.approx(
            metrics["ground_truth"][key], rel=1e-5
        )


def test_uint64_ids_index_and_evaluate(tmp_path, capsys):
    # Ids above 2**63 are kept as strings in item_ids.npy: items.parquet
    # kept them as uint64 (`recsys index` crashed) and `recsys evaluate`
    # matched no test item.
    data = tmp_path / "data"
    SyntheticInteractions(
        num_users=300, num_items=200, num_interactions=6000, num_clusters=4
    ).write(data, progress=False)
    os.remove(data / "_synthetic.json")  # the ids are no longer its ids
    table = pq.read_table(data / "part-00000.parquet")
    for name, shift in (("user_id", 2**63 + 5), ("item_id", 2**64 - 1000)):
        ids = table.column(name).to_numpy().astype(np.uint64) + np.uint64(shift)
        table = table.set_column(
            table.schema.get_field_index(name), name, pa.array(ids)
        )
    pq.write_table(table, data / "part-00000.parquet")
    output = str(tmp_path / "bundle")
    metrics = _train(str(data), output, "evaluate.ks=[10]")
    capsys.readouterr()
    # Written as item_ids.npy holds them, before any index.
    stored = pq.read_table(os.path.join(output, "items.parquet"))
    assert stored.column("item_id").to_pylist() == (
        np.load(os.path.join(output, "item_ids.npy")).tolist()
    )
    assert main(["evaluate", output, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test"] == pytest.approx(metrics["test"], rel=1e-5)
    items = tmp_path / "u64.parquet"
    new = np.array([2**64 - 1000, 2**64 - 1], np.uint64)
    pd.DataFrame({"item_id": new, "category": [1, 2]}).to_parquet(items)
    indexed = str(tmp_path / "indexed")
    assert main(["index", output, "--items", str(items), "-o", indexed]) == 0
    ids = np.load(os.path.join(indexed, "item_ids.npy"))
    catalog = pq.read_table(os.path.join(indexed, "items.parquet"))
    assert catalog.column("item_id").to_pylist() == ids.tolist()
    assert ids[-1] == str(2**64 - 1)


def test_scann_on_a_tiny_streamed_catalog_is_refused_before_training(
    tmp_path, capsys
):
    path = tmp_path / "tiny"
    SyntheticInteractions(
        num_users=50,
        num_items=8,
        num_interactions=2_000,
        num_clusters=2,
        rows_per_group=1024,
        rows_per_file=1024,
    ).write(path, progress=False)
    args = ["train", CONFIG, "-o", str(tmp_path / "b"), "-q"]
    sets = [f"data.path={path}", 'index.kind="scann"']
    code = main(args + [arg for s in sets for arg in ("--set", s)])
    assert code == 1
    err = capsys.readouterr().err
    assert 'index.kind = "scann" needs at least 16 items' in err
    assert not (tmp_path / "b").exists()


def test_streamed_evaluation_reports_the_repeat_share_of_its_sample(
    streamed,
):
    # The streamed kind said nothing of repeat consumption: its filtered
    # HR looked 0.2 better than the in-memory kind's on the same table.
    bundle, _ = streamed
    users = bundle.user_ids[:2]
    seen = [set(bundle.item_ids[bundle.seen(row)].tolist()) for row in (0, 1)]
    first_seen = sorted(seen[0])[:2]
    unseen = [i for i in bundle.item_ids.tolist() if i not in seen[0] | seen[1]]
    # Two of user 0's training items come back; two rows are new items.
    test_users = np.array([users[0], users[0], users[0], users[1]])
    test_items = np.array([*first_seen, unseen[0], unseen[1]])
    metrics = evaluation_metrics(
        bundle, bundle.config, users, test_users, test_items
    )
    assert metrics["split"] == {
        "repeat_share": 0.5,
        "sample": {"users": 2, "max_rows_per_user": MAX_TEST_PER_USER},
    }


def test_evaluate_command_notes_repeats_and_names_its_bars(streamed, capsys):
    bundle, metrics = streamed
    again = evaluate_streamed(bundle, progress=True)
    err = capsys.readouterr().err
    assert "test users: " in err and "test rows: " in err
    # The split as stored, with the share of the evaluated rows.
    share = again["split"]["repeat_share"]
    assert share >= REPEATS_NOTED  # synth's users come back to their items
    assert again["split"]["items"] == metrics["split"]["items"]
    assert main(["evaluate", bundle.path]) == 0
    table = capsys.readouterr().out
    assert f"note: {share:.0%} of the held-out rows repeat an item" in table


def test_streamed_training_notes_repeats_and_says_its_sample(streamed):
    # `recsys train` printed neither: the filtered HR of 2,000 sampled
    # users (at most 10 rows each) read as the in-memory kind's.
    bundle, metrics = streamed
    split, test = metrics["split"], metrics["test"]
    assert split["repeat_share"] >= REPEATS_NOTED
    assert split["sample"] == {
        "users": test["num_users"],
        "max_rows_per_user": MAX_TEST_PER_USER,
    }
    assert split["items"] == len(bundle.item_ids)  # the split as before
    # Every row of the held-out span (metrics.json lacked it), beside the
    # training rows: the table's rows up to the span's end.
    held = split["held_out_rows"]
    assert test["num_interactions"] <= held < metrics["data"]["rows"]
    assert split["train_rows"] == metrics["data"]["train_rows"]
    shards = pd.read_parquet(bundle.config["data"]["path"])
    end = metrics["data"]["split_time"][1]
    times = shards[bundle.config["data"]["time"]]
    assert split["train_rows"] + held == int((times < end).sum())
    printed = summary(metrics, bundle.config)
    assert (
        f"HR@k on the test split ({test['num_interactions']} interactions "
        f"of {test['num_users']:,} sampled users, at most {MAX_TEST_PER_USER} "
        "each, exact scoring of every item):"
    ) in printed
    share = f"{split['repeat_share']:.0%}"
    assert f"note: {share} of the held-out rows repeat an item" in printed
