import pytest

from recsys.config import ConfigError
from recsys.config import load_config

DEFAULT = "configs/movielens_two_tower.toml"


def test_config_overrides_are_parsed_as_toml():
    config = load_config(
        DEFAULT,
        ["train.epochs=5", "model.normalize=true", "data.display=title2"],
    )
    assert config["train"]["epochs"] == 5
    assert config["model"]["normalize"] is True
    assert config["data"]["display"] == "title2"


def test_config_override_adds_feature_keys():
    config = load_config(DEFAULT, ["features.genres.max_length=4"])
    assert config["features"]["genres"]["max_length"] == 4


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.epoch=3", r"Unknown config keys in \[train\]: \['epoch'\]"),
        ("train.epochs=three", "train.epochs' must be an integer"),
        ("nosection.key=1", "no section 'nosection'"),
        ("trainepochs", "key=value"),
        ("model.query_features=['age']", "no \\[features.age\\] table"),
        ("features.genres.kind='tensor'", "kind"),
        ("features.genres.sep='|'", "unknown keys \\['sep'\\]"),
        ("train.optimizer='lion'", "optimizer"),
        ("train.batch_size=0", "batch_size must be >= 1"),
        ("model.kind='gbdt'", "model.kind must be one of"),
        ("model.kind=3", "model.kind must be one of"),
    ],
)
def test_config_rejects_bad_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(DEFAULT, [override])


def test_config_rejects_malformed_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nepochs = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_config_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/nope.toml")
