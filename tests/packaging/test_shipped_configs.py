"""`recsys train NAME` finds the example configs shipped in the package."""

from pathlib import Path

import pytest

from recsys.cli import _config_path
from recsys.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Runs each test outside the repository, as a wheel install would."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "given",
    [
        None,
        "movielens_two_tower.toml",
        "movielens_two_tower",
        "configs/movielens_two_tower.toml",
    ],
)
def test_names_resolve_to_the_shipped_config(given):
    path = Path(_config_path(given))
    assert path.name == "movielens_two_tower.toml"
    assert path.read_bytes() == (REPO / "configs" / path.name).read_bytes()
    assert load_config(str(path))  # a valid config


def test_every_repository_config_is_shipped():
    for config in (REPO / "configs").glob("*.toml"):
        assert Path(_config_path(config.name)).read_bytes() == (
            config.read_bytes()
        )


def test_a_file_in_the_working_directory_wins(elsewhere):
    (elsewhere / "movielens_two_tower.toml").write_text("[model]\n")
    assert _config_path("movielens_two_tower.toml") == (
        "movielens_two_tower.toml"
    )


def test_an_unknown_name_lists_the_shipped_configs():
    with pytest.raises(FileNotFoundError, match="movielens_liked.toml"):
        _config_path("no_such_config.toml")
    with pytest.raises(FileNotFoundError, match="Config file not found"):
        _config_path("elsewhere/movielens_two_tower.toml")


def test_load_config_finds_the_shipped_configs_by_name_too():
    # In a notebook outside the repository, as `recsys train NAME` does.
    for given in ("movielens_liked.toml", "configs/movielens_liked.toml"):
        config = load_config(given)
        assert config["model"]["kind"] == "tabular"
    with pytest.raises(ValueError, match="shipped with recsys: .*tweets_text"):
        load_config("nope.toml")
