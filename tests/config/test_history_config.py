"""`model.history`: which of the user's items the two-tower history holds."""

import pytest

from recsys import load_config
from recsys.config import ConfigError

CONFIG = "configs/examples/interactions.toml"


def test_the_history_is_the_latest_items_unless_asked():
    assert load_config(CONFIG)["model"]["history"] == "latest"
    config = load_config(CONFIG, ['model.history="profile"'])
    assert config["model"]["history"] == "profile"


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ['model.history="profile"', "model.history_length=0"],
            "history_length",
        ),
        (['model.history="all"'], "latest"),
        (['model.history="profile"', 'model.history_encoder="gru"'], "order"),
    ],
)
def test_a_profile_needs_a_length_a_known_name_and_no_order(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIG, overrides)


@pytest.mark.parametrize("written", [[], ['model.history="profile"']])
def test_no_history_length_without_times_means_no_history(written):
    # `recsys init` writes history = "profile" for a table without times.
    config = load_config(
        CONFIG, ['data.time=""', *written, "model.history_length=0"]
    )
    assert config["model"]["history_length"] == 0
    assert config["model"]["history"] == "latest"
    # Any other length reads the profile, whatever was written.
    config = load_config(CONFIG, ['data.time=""', 'model.history="latest"'])
    assert config["model"]["history"] == "profile"
