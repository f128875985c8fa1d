"""`recsys tune` on a text config: the tokenizer's n-grams are searched as
`features.<text>.*` keys, and a planted better setting is found."""

import numpy as np
import optuna
import pandas as pd
import pytest

from recsys import load_config
from recsys.config import typed_config
from recsys.kinds.text import TextKind
from recsys.tune import Choice
from recsys.tune import _starting_point
from recsys.tune import _with_config_values
from recsys.tune import search_space
from recsys.tune import tune
from recsys.tune import with_params


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    # The label is the words' order: "x y" vs "y x" have the same bag of
    # words, so only word bigrams (`ngrams = 2`) separate the classes.
    rng = np.random.default_rng(0)
    rows = 200
    label = rng.integers(0, 2, rows)
    filler = rng.choice(["a", "b", "c", "d"], (rows, 2))
    text = [
        f"{f[0]} {'x y' if y else 'y x'} {f[1]}"
        for f, y in zip(filler, label, strict=True)
    ]
    frame = pd.DataFrame({"text": text, "label": label})
    path = tmp_path_factory.mktemp("tune_text") / "texts.csv"
    frame.to_csv(path, index=False)
    return path


def _config(table):
    return load_config(
        "configs/examples/texts.toml",
        [
            f'data.source="{table}"',
            "features.text.sequence_length=8",
            "model.architecture='mean_pool'",
            "model.embedding_dim=8",
            "train.epochs=4",
            "train.refit=false",
            "train.learning_rate=0.05",
            "evaluate.baselines=[]",
        ],
    )


def test_text_space_searches_the_tokens_from_the_config_own_point(table):
    config = _config(table)
    space = search_space(config)
    assert space["features.text.ngrams"] == Choice((1, 2, 3))
    assert space["features.text.sequence_length"] == Choice((8, 16, 24))
    start, outside = _starting_point(config, space)
    # The config's embedding size is not a choice: added, so that the first
    # trial is the config's own.
    assert outside == {"model.embedding_dim": 8}
    widened = _with_config_values(config, space)
    assert widened["model.embedding_dim"] == Choice((32, 64, 128, 8))
    start, outside = _starting_point(config, widened)
    assert outside == {} and start["model.embedding_dim"] == 8
    # Keys the table leaves out start at the spec's defaults.
    assert start["features.text.ngrams"] == 1
    assert start["features.text.max_tokens"] == 20_000
    assert start["model.architecture"] == "mean_pool"
    updated = with_params(config, {"features.text.ngrams": 2})
    assert updated["features"]["text"]["ngrams"] == 2
    assert "ngrams" not in config["features"]["text"]
    typed_config(updated)  # still a valid config


def test_a_text_trial_is_timed_each_epoch_and_can_be_stopped(table):
    seen = []
    kind = TextKind()
    kind.epoch_end = lambda epoch, scores: seen.append((epoch, scores))
    config = with_params(
        _config(table),
        {
            "model.architecture": "mean_pool+mean_pool",
            "train.epochs": 3,
            "train.patience": 5,  # every epoch runs
            "evaluate.split": "validation",
        },
    )
    kind.train(config, progress=False, write=False)
    # Both members' epochs: timed, nothing reported to prune on.
    assert seen == [(1, {}), (2, {}), (3, {})] * 2

    def stop(epoch, scores):
        if epoch == 2:
            raise optuna.TrialPruned("planted")

    kind.epoch_end = stop
    with pytest.raises(optuna.TrialPruned, match="planted"):
        kind.train(config, progress=False, write=False)


@pytest.mark.slow  # two trainings: ~20 s on 2 busy cores
def test_tune_finds_the_planted_ngrams(table, tmp_path):
    space = {"features.text.ngrams": Choice((1, 2))}
    result = tune(
        _config(table),
        str(tmp_path / "study"),
        trials=2,
        space=space,
        final=False,
        progress=False,
    )
    assert result.best_params == {"features.text.ngrams": 2}
    assert result.best_value > 0.9
    best = load_config(str(tmp_path / "study" / "best.toml"))
    assert best["features"]["text"]["ngrams"] == 2
    # Each trial's rows, to compare trials row by row.
    kept = np.load(tmp_path / "study" / "influence" / "trial_1.npz")
    assert len(kept["influence"]) == len(kept["labels"]) > 0


def test_a_text_trial_says_the_epochs_its_early_stopping_chose(table, tmp_path):
    # trials.csv said the cap (30) for trials that stopped at 6.
    config = _config(table)
    config["train"].update(epochs=30, patience=2)
    tune(
        config,
        str(tmp_path / "study"),
        trials=1,
        space={"features.text.ngrams": Choice((2,))},
        final=False,
        progress=False,
    )
    trials = pd.read_csv(tmp_path / "study" / "trials.csv")
    best = trials["best_epoch"].iloc[0]
    assert 1 <= best < 30
    assert trials["last_epoch"].iloc[0] == best


def test_a_carve_of_one_class_is_refused_before_the_first_trial(
    table, tmp_path, monkeypatch
):
    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TextKind, "train", fail)
    # The carve: rows whose number ends in a validation suffix (1 or 6).
    frame = pd.read_csv(table)
    frame.loc[frame.index % 5 == 1, "label"] = 0
    with pytest.raises(
        ValueError,
        match=r"All 40 rows of the validation carve have the same 'label' "
        r'class \(0\).*data.split = "suffix"',
    ):
        tune(_config(table), str(tmp_path), frame=frame, progress=False)
    assert not (tmp_path / "study.db").exists()
