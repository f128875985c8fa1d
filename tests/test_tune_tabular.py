"""`recsys tune` on a tabular config: the space holds the settings that
matter, and a tiny search finds a planted cross that one-hot LR cannot."""

import numpy as np
import pandas as pd
import pytest

from recsys import load_config
from recsys.tune import Choice
from recsys.tune import Range
from recsys.tune import consistent
from recsys.tune import objective_metric
from recsys.tune import search_space
from recsys.tune import tune


@pytest.fixture(scope="module")
def xor_table(tmp_path_factory):
    """A table without ids whose label is `a XOR b`: no column alone (and so
    no one-hot logistic regression) says anything of it; their cross does."""
    rng = np.random.default_rng(0)
    rows = 2000
    a, b = rng.integers(0, 2, rows), rng.integers(0, 2, rows)
    flip = rng.random(rows) < 0.1
    frame = pd.DataFrame(
        {
            "a": np.where(a, "yes", "no"),
            "b": np.where(b, "left", "right"),
            "noise": rng.integers(0, 5, rows),
            "outcome": np.where((a ^ b) ^ flip, "good", "bad"),
        }
    )
    path = tmp_path_factory.mktemp("tune_tabular") / "xor.csv"
    frame.to_csv(path, index=False)
    return path


def _config(path):
    # A table without ids; no hidden layers, so that only the interaction
    # block can cross a and b.
    config = path.parent / "xor.toml"
    config.write_text(
        f"""
[data]
source = "{path.name}"
user = ""
item = ""
time = ""
split = "random"
label = "outcome"

[features.a]
kind = "categorical"

[features.b]
kind = "categorical"

[features.noise]
kind = "categorical"

[model]
kind = "tabular"
task = "binary"
hidden_units = []

[train]
epochs = 8
patience = 2
refit = false
batch_size = 128
learning_rate = 0.05

[evaluate]
baselines = ["logistic_regression"]
"""
    )
    return load_config(str(config))


def _two_trials(config, space, output):
    """Two trials of `space` searched on the carve, no final training."""
    return tune(
        config, str(output), trials=2, space=space, final=False, progress=False
    )


def test_search_space_holds_the_settings_that_matter(xor_table):
    config = _config(xor_table)
    space = search_space(config)
    assert set(space) == {
        "model.interaction",
        "model.num_cross_layers",
        "model.hidden_units",
        "model.embedding_dim",
        "model.dropout",
        "model.l2",
        "train.learning_rate",
        "train.batch_size",
        "train.epochs",
    }
    assert set(space["model.interaction"].values) == {"mlp", "dcn", "dot"}
    assert isinstance(space["model.num_cross_layers"], Range)
    assert objective_metric(config) == "auc"
    # The config's own settings lie in the space: they are the first trial.
    assert config["model"]["hidden_units"] in space["model.hidden_units"].values


@pytest.mark.parametrize(
    "optimizer, rate, expected",
    [
        # The default optimizer: the range reaches its default rate, 1e-3.
        ("adam", 3e-5, (6e-6, 5e-3)),
        ("adam", 0.05, (2e-4, 0.25)),
        ("adam", 1e-3, (2e-4, 5e-3)),
        # Another: its own rate's neighbourhood only.
        ("sgd", 3e-5, (6e-6, 1.5e-4)),
    ],
)
def test_a_poor_learning_rate_is_searched_back_to_the_default(
    xor_table, optimizer, rate, expected
):
    config = _config(xor_table)
    config["train"].update(optimizer=optimizer, learning_rate=rate)
    searched = search_space(config)["train.learning_rate"]
    assert (searched.low, searched.high) == pytest.approx(expected)
    assert searched.log


def test_batch_sizes_leave_an_epoch_enough_steps(xor_table):
    config = _config(xor_table)
    own = config["train"]["batch_size"]
    sizes = {
        rows: search_space(config, rows)["train.batch_size"].values
        for rows in (872, 8_000, 1_000_000)
    }
    # A tiny table: the smallest size, and the config's own (trial 0).
    assert sizes[872] == tuple(sorted({32, own}))
    assert max(b for b in sizes[8_000] if b != own) <= 8_000 // 16
    assert min(b for b in sizes[1_000_000] if b != own) >= 1_000_000 // 8192


def test_tune_finds_the_planted_cross_and_beats_one_hot_lr(xor_table, tmp_path):
    space = {"model.interaction": Choice(("mlp", "dcn"))}
    result = tune(
        _config(xor_table), str(tmp_path), trials=2, space=space, progress=False
    )
    assert result.best_params == {"model.interaction": "dcn"}
    trials = result.trials.set_index("model.interaction")["value"]
    assert trials["dcn"] > 0.8 > trials["mlp"]
    # Early stopping chose each trial's epochs, under the config's cap.
    assert "last_epoch" not in result.trials
    epochs = _config(xor_table)["train"]["epochs"]
    assert result.trials["best_epoch"].between(0, epochs).all()
    # Chosen on validation, scored on test once: there it beats one-hot LR,
    # which cannot cross a and b.
    metrics = result.test_metrics
    assert metrics["test"]["auc"] > 0.8
    assert metrics["baseline_logistic_regression"]["auc"] < 0.6
    # Each trial's validation labels and rows' influence on the AUC.
    for number in (0, 1):
        kept = np.load(tmp_path / "influence" / f"trial_{number}.npz")
        assert kept["influence"].shape == kept["labels"].shape
        assert set(np.unique(kept["labels"])) == {0, 1}


def test_the_second_trial_is_the_config_without_hidden_layers(
    xor_table, tmp_path
):
    # Where a few columns decide the label, an MLP can learn the others'
    # noise before the per-value biases settle: the linear shape is tried
    # second, whatever the sampler would draw.
    config = _config(xor_table)
    config["model"].update(interaction="dcn", hidden_units=[16], dropout=0.3)
    space = {
        "model.interaction": Choice(("mlp", "dcn")),
        "model.hidden_units": Choice(([], [16])),
        "model.dropout": Range(0.0, 0.5),
    }
    result = _two_trials(config, space, tmp_path)
    first, second = result.trials.to_dict("records")
    assert (first["model.interaction"], first["model.hidden_units"]) == (
        "dcn",
        [16],
    )
    assert (second["model.interaction"], second["model.hidden_units"]) == (
        "mlp",
        [],
    )
    assert (first["model.dropout"], second["model.dropout"]) == (0.3, 0.0)
    # Trained as a linear model is, outside the space (Adam left it far
    # from its optimum on small tables), and said so in the table.
    assert (second["train.optimizer"], second["train.learning_rate"]) == (
        "adagrad",
        0.1,
    )
    assert pd.isna(first["train.optimizer"])


def test_a_trial_that_diverges_is_pruned_and_the_search_goes_on(
    xor_table, tmp_path
):
    # A regression: the squared error of a diverging step grows without
    # bound (a binary loss is clipped).
    config = _config(xor_table)
    config["data"]["label"] = "noise"
    config["model"].update(task="regression", features=["a", "b"])
    config["evaluate"]["baselines"] = []
    config["train"]["optimizer"] = "sgd"
    space = {"train.learning_rate": Choice((0.05, 1e9))}
    result = _two_trials(config, space, tmp_path)
    states = result.trials.set_index("train.learning_rate")["state"]
    assert states.to_dict() == {0.05: "COMPLETE", 1e9: "PRUNED"}
    assert result.best_params == {"train.learning_rate": 0.05}


def test_settings_a_trial_does_not_read_keep_the_configs_values(
    xor_table, tmp_path
):
    # An MLP has no cross layers: a drawn depth would train nothing, so the
    # table leaves it blank and the chosen config keeps its own.
    config = _config(xor_table)
    config["model"].update(interaction="mlp", num_cross_layers=2)
    space = {
        "model.num_cross_layers": Range(3, 4, integer=True),
        "train.learning_rate": Range(0.01, 0.1, log=True),
    }
    result = _two_trials(config, space, tmp_path)
    assert result.trials["model.num_cross_layers"].isna().all()
    assert result.config["model"]["num_cross_layers"] == 2
    assert consistent({"model.num_cross_layers": 4}, config) == {
        "model.num_cross_layers": 2
    }
    dcn = {"model.interaction": "dcn", "model.num_cross_layers": 4}
    assert consistent(dcn, config) == dcn


def test_a_table_of_numbers_alone_is_not_searched_with_dot(xor_table):
    # "dot" multiplies two vectors or more: on a table of numbers (one
    # vector for all of them) its trial stopped the whole study.
    config = _config(xor_table)
    numbers = {"noise": {"kind": "numeric"}}
    config = {**config, "features": numbers}
    config["model"] = {**config["model"], "features": ["noise"]}
    space = search_space(config)
    assert space["model.interaction"].values == ("mlp", "dcn")
    # Nothing looked up: no embedding size or L2 to search (the L2 trials
    # changed nothing to the last digit).
    assert not {"model.embedding_dim", "model.l2"} & set(space)
    full = search_space(_config(xor_table))
    assert "dot" in full["model.interaction"].values
    assert {"model.embedding_dim", "model.l2"} <= set(full)


def test_a_carve_of_one_class_is_refused_before_the_first_trial(
    tmp_path, monkeypatch
):
    # Split by time, the carve (the latest training rows) holds only 0s:
    # every trial trained, scored AUC nan, and the run failed after all.
    from recsys.kinds.tabular import TabularKind

    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TabularKind, "train", fail)
    rng = np.random.default_rng(0)
    t = np.arange(200)
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 5, 200),
            "t": t,
            "y": np.where((t >= 100) & (t < 160), 0, rng.integers(0, 2, 200)),
        }
    )
    frame.to_csv(tmp_path / "late.csv", index=False)
    (tmp_path / "late.toml").write_text(
        """
[data]
source = "late.csv"
user = ""
item = ""
time = "t"
split = "time"
label = "y"

[model]
kind = "tabular"
task = "binary"
"""
    )
    config = load_config(str(tmp_path / "late.toml"))
    output = tmp_path / "study"
    with pytest.raises(
        ValueError,
        match=r"All 32 rows of the validation carve have the same 'y' class "
        r"\(0\).*Fix: data.split = \"random\".*--metric logloss",
    ):
        tune(config, str(output), trials=3, progress=False)
    assert not (output / "study.db").exists()


def test_tune_takes_a_config_as_train_does(xor_table, tmp_path):
    # A TOML path, the typed config and a dict written by hand: a
    # TypeError or KeyError of the first key read before.
    _config(xor_table)
    toml = str(xor_table.parent / "xor.toml")
    space = {"train.learning_rate": Choice([0.05])}
    hand = {
        "data": {"source": str(xor_table), "label": "outcome"},
        "model": {"kind": "tabular", "hidden_units": []},
        "train": {"epochs": 2},
    }
    for name, config in [
        ("path", toml),
        ("typed", load_config(toml, typed=True)),
        ("hand", hand),
    ]:
        found = tune(
            config,
            str(tmp_path / name),
            trials=1,
            space=space,
            final=False,
            progress=False,
        )
        assert found.metric == "auc" and len(found.trials) == 1, name
    with pytest.raises(TypeError, match=r"recsys.tune.tune takes a config"):
        tune(5, str(tmp_path / "five"), trials=1, progress=False)
