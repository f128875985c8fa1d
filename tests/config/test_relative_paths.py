"""A relative data path in a config is read from the config's directory
(issue #15); the loaded config, and so every bundle, holds it absolute."""

import logging
import os

import pytest

from recsys.config import ConfigError
from recsys.config import load_config

CONFIG = """
[data]
source = "{source}"
user = "user"
item = "item"
time = "time"

[features.item]
kind = "categorical"

[model]
candidate_features = ["item"]
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """`project/config.toml` beside `project/data/ratings.csv`; the working
    directory is `elsewhere/`."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "ratings.csv").write_text("user,item,time\n1,2,3\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return project


def _config(project, source, extra=""):
    path = project / "config.toml"
    path.write_text(CONFIG.format(source=source) + extra)
    return str(path)


def test_source_is_read_from_the_config_directory(project):
    config = load_config(_config(project, "data/ratings.csv"))
    assert config["data"]["source"] == str(project / "data" / "ratings.csv")


def test_config_directory_comes_before_the_working_directory(project):
    os.makedirs("data")
    with open("data/ratings.csv", "w") as f:
        f.write("user,item,time\n")
    config = load_config(_config(project, "data/ratings.csv"))
    assert config["data"]["source"] == str(project / "data" / "ratings.csv")


def test_a_path_only_in_the_working_directory_still_works(project, caplog):
    with open("old.csv", "w") as f:
        f.write("user,item,time\n")
    with caplog.at_level(logging.INFO, logger="recsys.config.paths"):
        config = load_config(_config(project, "old.csv"))
    assert config["data"]["source"] == os.path.abspath("old.csv")
    assert "working directory" in caplog.text


def test_a_missing_path_is_named_where_the_rule_looks(project):
    config = load_config(_config(project, "missing.csv"))
    assert config["data"]["source"] == str(project / "missing.csv")


def test_an_override_is_read_from_the_working_directory(project):
    path = _config(project, "data/ratings.csv")
    config = load_config(path, ["data.source=ratings.csv"])
    assert config["data"]["source"] == os.path.abspath("ratings.csv")


def test_streamed_parquet_path_follows_the_same_rule(project):
    (project / "shards").mkdir()
    path = project / "config.toml"
    path.write_text(
        CONFIG.format(source="movielens").replace(
            "[data]\n", '[data]\npath = "shards"\n'
        )
    )
    config = load_config(str(path))
    assert config["data"]["path"] == str(project / "shards")
    overridden = load_config(str(path), ["data.path=here"])
    assert overridden["data"]["path"] == os.path.abspath("here")


@pytest.mark.parametrize("source", ["movielens", "/abs/ratings.csv"])
def test_builtin_names_and_absolute_paths_stay(project, source):
    config = load_config(_config(project, source))
    assert config["data"]["source"] == source
    assert config["data"]["path"] == ""


def test_home_directory_is_expanded(project):
    config = load_config(_config(project, "~/ratings.csv"))
    assert config["data"]["source"] == os.path.expanduser("~/ratings.csv")


def test_no_config_file_reads_from_the_working_directory(project):
    overrides = [
        "data.source=ratings.csv",
        "data.item=item",
        "features.item.kind='categorical'",
        "model.candidate_features=['item']",
    ]
    config = load_config(None, overrides)
    assert config["data"]["source"] == os.path.abspath("ratings.csv")


def test_a_dict_config_is_the_files_tables(project):
    # A notebook writes the TOML's tables as a dict; its relative source is
    # read from the working directory, as without a file.
    tables = {
        "data": {"source": "ratings.csv", "user": "user", "item": "item"},
        "features": {"item": {"kind": "categorical"}},
        "model": {"candidate_features": ["item"]},
    }
    config = load_config(tables, ["train.epochs=2"])
    assert config["data"]["source"] == os.path.abspath("ratings.csv")
    assert config["train"]["epochs"] == 2
    assert tables["data"]["source"] == "ratings.csv"  # the dict is not changed
    with pytest.raises(ConfigError, match=r"Unknown config sections for"):
        load_config({**tables, "modle": {}})
    with pytest.raises(ConfigError, match="a dict of its tables"):
        load_config(["data.user=user"])


TRAINABLE = """
[data]
source = "interactions.csv"
user = "user"
item = "item"
time = "time"

[features.user]
kind = "categorical"

[features.item]
kind = "categorical"

[model]
query_features = ["user"]
candidate_features = ["item"]

[train]
epochs = 1
batch_size = 32

[index]
kind = "brute_force"
"""


@pytest.mark.slow  # a training, about 20 s on two cores
def test_a_bundle_evaluates_from_another_directory(tmp_path, monkeypatch):
    from recsys.cli import main

    project = tmp_path / "project"
    project.mkdir()
    rows = [(u, (u * 7 + k) % 13, k) for u in range(24) for k in range(6)]
    lines = ["user,item,time"] + [",".join(map(str, row)) for row in rows]
    (project / "interactions.csv").write_text("\n".join(lines) + "\n")
    (project / "config.toml").write_text(TRAINABLE)
    for name in ("train_here", "evaluate_here"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "train_here")
    args = ["train", "../project/config.toml", "-o", "bundle", "--quiet"]
    assert main(args) == 0
    monkeypatch.chdir(tmp_path / "evaluate_here")
    assert main(["evaluate", "../train_here/bundle", "--rescore"]) == 0


def test_an_empty_time_is_a_table_without_times():
    tables = {"data": {"source": "t.csv", "user": "u", "item": "i", "time": ""}}
    config = load_config(tables)
    assert config["data"]["split"] == "random"  # "auto" without times
    assert config["model"]["history"] == "profile"  # no latest items
    assert load_config(config)["data"] == config["data"]  # stays valid
    for data, message in (
        ({"split": "user_time"}, 'data.split = "user_time" orders rows'),
        ({"path": "shards"}, "streamed shards"),
    ):
        tables = {"data": {"user": "u", "item": "i", "time": "", **data}}
        with pytest.raises(ConfigError, match=message):
            load_config(tables)
