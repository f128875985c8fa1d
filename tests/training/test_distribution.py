import json
import os
import subprocess
import sys

import pytest

from recsys.config import ConfigError
from recsys.config import load_config
from recsys.data.sources import load_interactions
from recsys.training.distribution import distribution_from_config

CONFIG = "configs/movielens_two_tower.toml"
SCRIPT = os.path.join(os.path.dirname(__file__), "multi_device_run.py")


@pytest.fixture(scope="module")
def multi_device_results(tmp_path_factory):
    """`multi_device_run.py` on MovieLens users 1-60, 4 CPU devices."""
    tmp = tmp_path_factory.mktemp("multi_device")
    frame = load_interactions("movielens")
    csv = tmp / "ratings.csv"
    frame[frame["userId"] <= 60].to_csv(csv, index=False)
    run = subprocess.run(
        [sys.executable, SCRIPT, str(csv), str(tmp)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_multi_device_run_sees_four_devices(multi_device_results):
    assert multi_device_results["devices"] == 4


def test_model_parallel_splits_embedding_tables(multi_device_results):
    layouts = {
        mode: multi_device_results[mode]["layout"]
        for mode in ("none", "data", "model")
    }
    rows = layouts["none"]["shard_shapes"][0][0]
    assert layouts["none"]["shard_shapes"] == [[rows, 32]]
    assert layouts["data"]["shard_shapes"] == [[rows, 32]]  # replicated
    # Columns split over the 2-device model axis: every device holds half.
    assert layouts["model"]["spec"] == ["None", "model"]
    assert layouts["model"]["shard_shapes"] == [[rows, 16]]


@pytest.mark.parametrize("mode", ["data", "model"])
def test_sharded_training_matches_one_device(multi_device_results, mode):
    one, sharded = multi_device_results["none"], multi_device_results[mode]
    assert sharded["losses"][-1] < sharded["losses"][0]  # it trains
    # The rows are trimmed to a multiple of the batch devices (< 4 fewer).
    assert one["rows"] - 4 < sharded["rows"] <= one["rows"]
    assert sharded["rows"] % (4 if mode == "data" else 2) == 0
    for key in ("hr@10_filtered", "hr@50_filtered", "hr@100_filtered"):
        assert sharded["test"][key] == pytest.approx(one["test"][key], abs=0.01)


def test_distribution_errors_name_the_fix():
    config = load_config(
        CONFIG, ['train.distribution="model"', "train.model_shards=3"]
    )
    devices = len(__import__("keras").distribution.list_devices())
    if devices % 3:
        with pytest.raises(ValueError, match="must divide the"):
            distribution_from_config(config)
    with pytest.raises(ConfigError, match="train.distribution must be one"):
        load_config(CONFIG, ['train.distribution="pipeline"'])
    with pytest.raises(ConfigError, match="train.mixed_precision"):
        load_config(CONFIG, ['train.mixed_precision="int8"'])


def test_a_table_width_the_model_shards_do_not_divide_is_named():
    # JAX's sharding error ("array axis 1 is partitioned 2 times, but the
    # dimension size is 15") named neither setting.
    from recsys.kinds.two_tower import prepare_data
    from recsys.training.two_tower import build_two_tower

    config = load_config(
        CONFIG,
        [
            'train.distribution="model"',
            "train.model_shards=2",
            "model.embedding_dim=15",
        ],
    )
    frame = load_interactions("movielens")
    prepared = prepare_data(config, frame[frame["userId"] <= 20])
    with pytest.raises(
        ValueError,
        match=r"model.embedding_dim = 15 is not a multiple of 2\. Fix:",
    ):
        build_two_tower(prepared.preprocessor, config)
    # A concat of hashes splits the width: its setting and true multiple.
    from recsys.training.two_tower import _check_model_shards

    spec = {"name": "item_id", "type": "embedding", "output_dim": 12}
    spec.update(num_hashes=2, hash_combiner="concat")
    with pytest.raises(ValueError, match=r"embedding_dim .*= 12, split into"):
        _check_model_shards([spec], 4, config["model"])
    _check_model_shards([{**spec, "output_dim": 16}], 4, config["model"])
