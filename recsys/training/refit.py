"""Early stopping on validation rows, then a refit on every training row.

How the tabular and text kinds choose their number of epochs (PROTOCOL.md):
a model is fitted on the training rows minus a validation carve, stopped
when the validation score stops improving, and a fresh model is then
fitted on all training rows for the best number of epochs.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from recsys.training.divergence import StopWhenDiverged
from recsys.training.stop_on_interrupt import interruptible_fit

SUPPORTED_MODES = ("min", "max")

# Patience counts epochs, but an epoch of a small table is a handful of
# steps, and a fresh model's validation loss often stays flat or rises for
# its first few dozen steps: with 3 steps an epoch, a patience of 2 stopped
# pscl's bioChemists at epoch 3 having learnt nothing (test RMSE 0.70
# against ridge's 0.62; 0.63 with this window), geepack's dietox at epoch
# 16 (accuracy 0.37; 0.50 at epoch 84). So the window of patience spans at
# least this many steps (benchmarks/RESULTS.md, session 19).
PATIENCE_STEPS = 30


@dataclasses.dataclass
class RefitResult:
    """What `fit_then_refit` trained.

    Attributes:
        model: the trained model: the refitted one when `refitted`, else the
            early-stopped one with its best epoch's weights restored.
        history: dict. Keras' per-epoch values of the early-stopping fit
            (`History.history`), or `None` without validation data.
        best_epoch: int. The epochs chosen on validation (every epoch run,
            without early stopping); `epochs` without validation data.
        refitted: bool. Whether `model` was trained on the training rows.
        examples: int. Rows trained on, summed over the epochs of both
            fits.
    """

    model: keras.Model
    history: dict | None
    best_epoch: int
    refitted: bool
    examples: int


def fit_then_refit(
    build: Callable[[str], keras.Model],
    fit_data: tuple[Any, Any] | None,
    validation_data: tuple[Any, Any] | None,
    train_data: tuple[Any, Any],
    *,
    epochs: int,
    patience: int | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    refit: bool = True,
    seed: int = 0,
    batch_size: int = 32,
    verbose: int = 0,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> RefitResult:
    """Chooses the epochs on `validation_data`, then refits on `train_data`.

    Each fit starts from `keras.utils.set_random_seed(seed)` and a model
    fresh from `build`, so the refit repeats the early-stopping run's
    initialization and shuffling, only on more rows: a run is reproducible
    from its seed alone. Batches are shuffled every epoch.

    Args:
        build: callable. `build(part)` returns a compiled Keras model that
            will be trained on `part`: `"fit"` (the early-stopping run) or
            `"train"` (the refit), e.g. to start its output bias at that
            part's label mean.
        fit_data: `(x, y)`: the training rows minus the validation carve;
            `None` only without `validation_data`.
        validation_data: `(x, y)`: the validation carve, or `None` to skip
            early stopping and fit `train_data` for `epochs` epochs.
        train_data: `(x, y)`: every training row.
        epochs: int. Most epochs of the early-stopping run, and the epochs
            of the fit without validation data.
        patience: int or `None`. Epochs without improvement before
            stopping (`keras.callbacks.EarlyStopping`, best weights
            restored), raised to span `PATIENCE_STEPS` steps at least;
            `None` runs every epoch and keeps them all. Defaults to `None`.
        monitor: str. The validation value to watch, as Keras logs it.
            Defaults to `"val_loss"`.
        mode: str. `"min"` or `"max"`: which way `monitor` improves.
            Defaults to `"min"`.
        refit: bool. Fit a fresh model on `train_data` for the best number
            of epochs; otherwise keep the early-stopped model. Defaults to
            `True`.
        seed: int. Seed set before each fit. Defaults to `0`.
        batch_size: int. Defaults to `32`.
        verbose: int. Keras' `verbose` (`recsys.training.progress`).
            Defaults to `0`.
        callbacks: list of Keras callbacks for both fits (e.g.
            `EpochEnd`, which `recsys tune` stops a trial with). Defaults
            to `None`.

    Returns:
        A `RefitResult`.

    Raises:
        ValueError: for a `mode` other than `"min"` or `"max"`, or
            `validation_data` without `fit_data`.
        TrainingDiverged: when an epoch ends with a non-finite loss
            (`recsys.training.divergence`).

    Example:

    ```python
    result = fit_then_refit(
        lambda part: build_model(),
        (x_fit, y_fit),
        (x_val, y_val),
        (x_train, y_train),
        epochs=20,
        patience=2,
    )
    result.model, result.best_epoch
    ```
    """
    if mode not in SUPPORTED_MODES:
        raise ValueError(
            f"`mode` must be one of {SUPPORTED_MODES}. Received: mode={mode!r}"
        )
    if validation_data is not None and fit_data is None:
        raise ValueError(
            "`fit_data` is required with `validation_data`: the rows the "
            "early-stopping run trains on. Received: fit_data=None"
        )
    history, best, examples = None, epochs, 0
    if validation_data is not None and fit_data is not None:
        keras.utils.set_random_seed(seed)
        model = build("fit")
        fit_callbacks = [*(callbacks or []), StopWhenDiverged()]
        if patience is not None:
            steps = -(-len(fit_data[1]) // batch_size)
            patience = max(patience, -(-PATIENCE_STEPS // steps))
            fit_callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor,
                    mode=mode,
                    patience=patience,
                    restore_best_weights=True,
                )
            )
        x, y = fit_data
        history = interruptible_fit(
            model,
            x,
            y,
            validation_data=validation_data,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=True,
            verbose=verbose,
            callbacks=fit_callbacks,
        ).history
        scores = np.asarray(history[monitor])
        best = len(scores)
        if patience is not None:
            choose = np.argmax if mode == "max" else np.argmin
            best = int(choose(scores)) + 1
        examples += len(y) * len(scores)
    refitted = validation_data is None or refit
    if refitted:
        keras.utils.set_random_seed(seed)
        model = build("train")
        x, y = train_data
        interruptible_fit(
            model,
            x,
            y,
            batch_size=batch_size,
            epochs=best,
            shuffle=True,
            verbose=verbose,
            callbacks=[*(callbacks or []), StopWhenDiverged()],
        )
        examples += len(y) * best
    return RefitResult(model, history, best, refitted, examples)


class EpochEnd(keras.callbacks.Callback):
    """Calls a kind's `epoch_end(epoch, {})` after each epoch.

    For the kinds whose per-epoch values are not the run's metric (a
    tabular model's validation loss is not its AUC; a text model's early
    AUC favours the fast learners over the slow ones that end best), so
    `metrics` is empty: `recsys tune` times a trial with it, without
    pruning, and stops it past the time budget by raising.

    Args:
        epoch_end: callable `(epoch, metrics)`, `epoch` counted from 1.

    Example:

    ```python
    model.fit(x, y, callbacks=[EpochEnd(lambda epoch, _: print(epoch))])
    ```
    """

    def __init__(self, epoch_end: Callable[[int, dict], Any]) -> None:
        super().__init__()
        self._epoch_end = epoch_end

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_end(epoch + 1, {})


def epoch_cap_note(best_epochs: list[int], cap: int | None) -> list[str]:
    """A line for `recsys train`'s printout when early stopping chose the
    last epoch allowed (of any ensemble member): training was cut while
    validation still improved.

    Args:
        best_epochs: list of int. The epochs chosen, one per model.
        cap: int or None. `train.epochs` (None: unknown, no note).

    Returns:
        list of str: the note, or nothing.
    """
    if cap is None or cap <= 1 or cap not in best_epochs:
        return []
    return [
        f"note: validation still improved at the last epoch allowed ({cap}): "
        f"more may help (--set train.epochs={2 * cap}; early stopping keeps "
        "the best)."
    ]
