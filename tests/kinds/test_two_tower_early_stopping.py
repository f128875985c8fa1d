"""`train.early_stopping` for two-tower retrieval: epochs chosen on a carve
of the training split, then one training on all of it."""

import numpy as np
import pandas as pd
import pytest

import recsys.second_stage
from recsys import load_config
from recsys import train
from recsys.config import ConfigError
from recsys.kinds import two_tower
from recsys.tune import search_space


def _clustered(rows=8000, users=300, items=500, seed=0):
    """Users drawn to one of 20 item clusters, each pair once: learnable,
    so more than one epoch helps, and a small table (a dozen steps an
    epoch)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, rows)
    item = (user % 20) * 25 + rng.integers(0, 25, rows)
    noise = rng.random(rows) < 0.2
    item[noise] = rng.integers(0, items, noise.sum())
    frame = pd.DataFrame(
        {"user_id": user, "item_id": item, "timestamp": rng.permutation(rows)}
    )
    return frame.drop_duplicates(["user_id", "item_id"])


def _config(tmp_path, *overrides):
    path = tmp_path / "events.csv"
    _clustered().to_csv(path, index=False)
    return load_config(
        "configs/examples/interactions.toml",
        [
            f'data.source="{path}"',
            "evaluate.ks=[5, 10, 20]",
            "evaluate.baselines=[]",
            'index.kind="brute_force"',
            *overrides,
        ],
    )


@pytest.fixture
def carves(monkeypatch):
    """The `PreparedData` a run makes, in order (`prepared_parts`): its own
    preparation, then any carve's."""
    made = []
    prepare = two_tower.prepared_parts

    def spying(*args, **kwargs):
        made.append(prepare(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(two_tower, "prepared_parts", spying)
    return made


def test_epochs_are_chosen_on_a_carve_of_the_training_rows(tmp_path, carves):
    config = _config(tmp_path, "train.early_stopping=true", "train.epochs=30")
    result = train(config, write=False, progress=False)
    early = result.metrics["train"]["early_stopping"]
    scores = early["scores"]
    assert early["metric"] == "hr@20_filtered"
    assert early["best_epoch"] == int(np.argmax(scores)) + 1 > 1
    # Stopped `patience` (2) epochs after the best, well before 30.
    assert len(scores) == early["best_epoch"] + 2
    # The final model trained for the best number of epochs.
    assert len(result.metrics["train"]["epoch_seconds"]) == early["best_epoch"]
    # Every row it fitted or scored on is a training row: never a test one.
    _, carved = carves  # the run's own preparation, then the carve's
    rows = ["user_id", "item_id", "timestamp"]
    training = result.prepared.train[rows]
    for part in (carved.train, carved.test):
        assert len(part.merge(training, on=rows)) == len(part)
    assert len(carved.train) + len(carved.test) == len(training)


def test_a_validation_run_chooses_on_the_rows_it_is_scored_on(tmp_path, carves):
    # `recsys tune`'s trials (evaluate.split = "validation"): a carve of the
    # validation carve chose 4 epochs by its noise where the carve itself
    # picks 2 (mn_police: 0.588 against 0.663), and the config lost.
    config = _config(
        tmp_path,
        "train.early_stopping=true",
        "train.epochs=30",
        'evaluate.split="validation"',
    )
    result = train(config, write=False, progress=False)
    assert len(carves) == 1  # the run's own preparation: no second carve
    early = result.metrics["train"]["early_stopping"]
    # The model kept is the search's at its best epoch, trained once (it
    # was trained again on the same rows), and scored as that epoch was.
    train_epochs = result.metrics["train"]["epoch_seconds"]
    assert len(train_epochs) == len(early["scores"]) > early["best_epoch"]
    best = max(early["scores"])
    assert result.metrics["validation"]["hr@20_filtered"] == pytest.approx(
        best, abs=1e-6
    )
    # Said as one training, not a search beside a training.
    assert "its weights kept: one training" in two_tower.summary(
        result.metrics, config
    )
    # A rerun resumed from a checkpoint: said, and one of every epoch is
    # not "0.0 s, 0 examples/s".
    resumed = {**result.metrics["train"], "resumed_from": {"epoch": 2}}
    text = two_tower.summary({**result.metrics, "train": resumed}, config)
    assert "examples/s, resumed at epoch 3 (" in text
    resumed["examples_per_second"] = 0.0
    text = two_tower.summary({**result.metrics, "train": resumed}, config)
    assert "training: none left after its checkpoint of every epoch" in text
    # Scored the same carve `recsys train` chooses its epochs on.
    whole = train(
        _config(tmp_path, "train.early_stopping=true", "train.epochs=30"),
        write=False,
        progress=False,
    )
    assert whole.metrics["train"]["early_stopping"]["scores"] == pytest.approx(
        early["scores"], abs=1e-6
    )


def test_it_beats_too_few_and_too_many_epochs(tmp_path):
    def test_hr(*overrides):
        result = train(_config(tmp_path, *overrides), write=False)
        return result.metrics["test"]["hr@20_filtered"]

    early = test_hr("train.early_stopping=true", "train.epochs=30")
    assert early > test_hr("train.epochs=1") + 0.05
    assert early > test_hr("train.epochs=30") + 0.05


def test_streams_and_tune_leave_the_epochs_to_it(tmp_path):
    with pytest.raises(ConfigError, match="train.early_stopping trains"):
        load_config(
            "configs/examples/interactions.toml",
            ['data.path="shards"', "train.early_stopping=true"],
        )
    config = _config(tmp_path, "train.early_stopping=true")
    assert "train.epochs" not in search_space(config)
    assert "train.epochs" in search_space(_config(tmp_path))


def test_a_run_cut_by_its_cap_says_so(tmp_path):
    config = _config(tmp_path, "train.early_stopping=true", "train.epochs=2")
    result = train(config, write=False, progress=False)
    assert result.metrics["train"]["best_epoch"] == 2  # still improving
    text = two_tower.summary(result.metrics, config)
    assert "best epoch 2 of 2 on validation (hr@20_filtered" in text
    assert "the last epoch allowed (2)" in text
    assert "--set train.epochs=4" in text


@pytest.fixture
def trainings(monkeypatch):
    """The epochs of every two-tower training a run makes, in order."""
    made = []
    fit = two_tower.fit_two_tower

    def spying(model, inputs, config, **kwargs):
        timing = fit(model, inputs, config, **kwargs)
        made.append(len(timing["epoch_seconds"]))
        return timing

    monkeypatch.setattr(two_tower, "fit_two_tower", spying)
    return made


@pytest.mark.parametrize("split", ["test", "validation"])
def test_a_second_stage_reuses_the_searchs_model(
    tmp_path, carves, trainings, split, monkeypatch
):
    # A classifier of 10 trees: what it learns is not looked at here.
    monkeypatch.setitem(recsys.second_stage.RANKER, "max_iter", 10)
    config = _config(
        tmp_path,
        "train.early_stopping=true",
        "train.epochs=4",
        "model.second_stage=true",
        f'evaluate.split="{split}"',
    )
    seen = []
    kind = two_tower.TwoTowerKind()
    kind.epoch_end = lambda epoch, scores: seen.append(scores)
    result = kind.train(config, write=False, progress=False)
    early = result.metrics["train"]["early_stopping"]
    searched, best = len(early["scores"]), early["best_epoch"]
    assert "carve_model" not in early  # no model in metrics.json
    assert "carve_hits" in result.metrics["second_stage"]  # it was fitted
    # Two trainings, not three. "test": the search on the carve, whose
    # model at its best epoch is the second stage's, then the run on every
    # training row. "validation" (`recsys tune`'s trials): the search on
    # the evaluated rows is the run, then the second stage's carve of its
    # training rows trains for the best epochs.
    assert trainings == [searched, best]
    assert len(carves) == 2  # the run's own preparation, one carve
    # The run is scored on reranked lists: no epoch reports a score. After
    # the epochs, the stage's parts call the clock too (`recsys tune`'s
    # budget), scoring nothing.
    assert len(seen) >= sum(trainings) + 3 and not any(seen)
