"""The public API: `recsys.<name>` for every documented name, one `train`
for every model kind, and `import recsys` without Keras."""

import os
import subprocess
import sys

import pytest

import recsys
from recsys.kinds import KINDS
from recsys.kinds import bundle_class
from recsys.kinds import get_kind


def test_every_public_name_resolves():
    for name in recsys.__all__:
        assert getattr(recsys, name) is not None, name
    assert recsys.load_bundle.__module__ == "recsys.bundles"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recsys.nope  # noqa: B018
    # The modules the README calls through `recsys.`, after `import recsys`
    # alone (a fresh process: here other tests have imported them).
    code = (
        "import recsys; print(recsys.batch.recommend_all.__name__, "
        "recsys.tune.tune.__name__, recsys.two_stage.blended.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["recommend_all", "tune", "blended"]


def test_import_recsys_loads_neither_keras_nor_tensorflow():
    code = (
        "import sys, recsys, recsys.config, recsys.kinds;"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_registry_names_each_kind_and_its_bundle_class():
    for name in KINDS:
        assert get_kind(name).name == name
        assert bundle_class(name).__name__.endswith("Bundle")
    with pytest.raises(ValueError, match="Valid kinds: \\('two_tower'"):
        get_kind("nope")


def test_train_in_memory_and_to_disk(tmp_path):
    from recsys.data import load_movielens

    movielens = load_movielens()
    config = recsys.load_config(
        "configs/movielens_two_tower.toml",
        ["train.epochs=1", 'index.kind="brute_force"'],
    )
    frame = movielens[movielens["userId"] <= 60].reset_index(drop=True)
    with pytest.raises(ValueError, match="needs an output directory"):
        recsys.train(config, frame=frame, progress=False)
    memory = recsys.train(config, frame=frame, progress=False, write=False)
    assert memory.bundle is None
    assert set(memory.exported) == {"arrays", "index", "items", "preprocessor"}
    assert memory.model.query_tower is not None
    # A folder of the user's is refused before any data is read (it was
    # refused once trained, the model lost, a job directory left beside).
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    unread = {**config, "data": {**config["data"], "source": "none.csv"}}
    with pytest.raises(ValueError, match="is not a recsys bundle"):
        recsys.train(unread, str(mine))  # not "none.csv: no such file"
    assert os.listdir(tmp_path) == ["mine"]
    bundle, metrics = recsys.train(
        config, str(tmp_path / "b"), frame=frame, progress=False
    )
    # Same seed, same data: the written run measures what the in-memory
    # run measured.
    assert metrics["test"] == memory.metrics["test"]
    assert recsys.load_bundle(bundle.path).metrics["test"] == metrics["test"]
    # A notebook cell's last line shows them: a line, not every array.
    assert repr(memory).startswith("TrainResult(test: ")
    assert "bundle=None" in repr(memory) and len(repr(memory)) < 200
    assert repr(bundle) == (
        f"Bundle(two_tower, {bundle.path!r}, {bundle.version})"
    )


def test_train_reads_what_a_notebook_passes_as_its_config():
    from recsys.kinds.run import validated_config

    path = "configs/movielens_two_tower.toml"
    config = recsys.load_config(path)
    # The typed config, the path and the dict itself: the same dict.
    assert validated_config(recsys.load_config(path, typed=True)) == config
    assert validated_config(path) == config
    assert validated_config(config) == config
    with pytest.raises(TypeError, match="takes a config: .* Received: int"):
        recsys.train(5, write=False)
    with pytest.raises(TypeError, match="frame= is the table as a pandas"):
        recsys.train(config, write=False, frame="ratings.csv")
