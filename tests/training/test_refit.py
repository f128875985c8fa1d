"""`fit_then_refit`: the same weights as the two fits written by hand."""

import keras
import numpy as np
import pytest

from recsys.training.divergence import TrainingDiverged
from recsys.training.progress import keras_verbosity
from recsys.training.refit import PATIENCE_STEPS
from recsys.training.refit import fit_then_refit

EPOCHS, BATCH = 6, 16


def _data(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype("float32")
    return x, y


FIT, VALID = _data(96, 0), _data(32, 1)
TRAIN = (np.vstack([FIT[0], VALID[0]]), np.concatenate([FIT[1], VALID[1]]))


def _build(part=None):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _by_hand(patience, refit, seed=3):
    """Early stopping then a refit, as the tabular kind wrote it."""
    keras.utils.set_random_seed(seed)
    model = _build()
    steps = -(-len(FIT[1]) // BATCH)
    stop = keras.callbacks.EarlyStopping(
        patience=max(patience, -(-PATIENCE_STEPS // steps)),
        restore_best_weights=True,
    )
    history = model.fit(
        *FIT,
        validation_data=VALID,
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=True,
        verbose=0,
        callbacks=[stop],
    )
    best = int(np.argmin(history.history["val_loss"])) + 1
    if refit:
        keras.utils.set_random_seed(seed)
        model = _build()
        model.fit(
            *TRAIN, batch_size=BATCH, epochs=best, shuffle=True, verbose=0
        )
    return model, best


def _fit(**kwargs):
    options = {
        "epochs": EPOCHS,
        "patience": 1,
        "seed": 3,
        "batch_size": BATCH,
    }
    return fit_then_refit(_build, FIT, VALID, TRAIN, **{**options, **kwargs})


@pytest.mark.parametrize("refit", [True, False])
def test_fit_then_refit_gives_the_hand_written_weights(refit):
    expected, best = _by_hand(patience=1, refit=refit)
    result = _fit(refit=refit)
    assert result.best_epoch == best and result.refitted == refit
    for got, want in zip(
        result.model.get_weights(), expected.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_patience_spans_a_few_dozen_steps_on_a_small_table():
    # Two steps an epoch and a validation loss that never improves (no
    # learning): `patience=1` would stop after epoch 2, before a real
    # model of so few steps an epoch has left its first plateau.
    def frozen(part=None):
        model = _build()
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        return model

    rows = (FIT[0][:32], FIT[1][:32])
    result = fit_then_refit(
        frozen, rows, VALID, TRAIN, epochs=50, patience=1, batch_size=16
    )
    assert len(result.history["val_loss"]) == 1 + PATIENCE_STEPS // 2
    assert result.best_epoch == 1
    # Enough steps an epoch: the patience given.
    result = fit_then_refit(
        frozen, FIT, VALID, TRAIN, epochs=50, patience=1, batch_size=1
    )
    assert len(result.history["val_loss"]) == 2


def test_build_is_told_which_rows_it_trains_on():
    parts = []

    def build(part):
        parts.append(part)
        return _build()

    fit_then_refit(build, FIT, VALID, TRAIN, epochs=2, batch_size=BATCH)
    assert parts == ["fit", "train"]


def test_without_patience_every_epoch_runs_and_counts():
    result = _fit(patience=None, epochs=3)
    assert result.best_epoch == 3 and len(result.history["val_loss"]) == 3
    assert result.examples == len(FIT[1]) * 3 + len(TRAIN[1]) * 3


def test_without_validation_data_train_fits_for_epochs():
    result = fit_then_refit(
        _build, None, None, TRAIN, epochs=2, refit=False, batch_size=BATCH
    )
    assert result.history is None and result.refitted
    assert result.best_epoch == 2 and result.examples == len(TRAIN[1]) * 2


def test_max_mode_picks_the_highest_score():
    result = _fit(monitor="val_loss", mode="max", patience=EPOCHS)
    losses = result.history["val_loss"]
    assert result.best_epoch == int(np.argmax(losses)) + 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        _fit(mode="auto")
    with pytest.raises(ValueError, match="`fit_data` is required"):
        fit_then_refit(_build, None, VALID, TRAIN, epochs=1)


@pytest.mark.parametrize(
    "progress, tty, expected",
    [(False, True, 0), (True, True, 1), (True, False, 2)],
)
def test_keras_verbosity(progress, tty, expected, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    assert keras_verbosity(progress) == expected


def test_a_diverging_fit_says_so_and_names_the_rate():
    def build(part=None):
        model = _build()
        model.compile(optimizer=keras.optimizers.SGD(1e6), loss="mse")
        return model

    with pytest.raises(TrainingDiverged, match=r"SGD, learning rate 1e\+06"):
        fit_then_refit(
            build,
            FIT,
            VALID,
            TRAIN,
            epochs=EPOCHS,
            patience=2,
            batch_size=BATCH,
        )
