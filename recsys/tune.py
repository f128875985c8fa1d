"""`recsys tune`: the settings that matter, searched on the validation carve.

Every trial trains the config with `evaluate.split = "validation"`: the
kinds then train on the training split's own training part and score its
validation carve (`recsys.data.split`), so no trial sees a test row. The
best trial's settings are trained once more on the whole training split and
scored on the test split, once; the config's own settings stay unless a
trial beats them by a clear margin (a small carve's noise does not
choose): two standard errors of the difference where both trials' rows
were kept (tabular, text; paired row by row, `recsys.evaluation.paired`),
else one of the metric (`standard_error`, retrieval). The first trial
is the config's own settings (then, for a two-tower, the same without its
history, with the user's profile as its history, `model.history =
"profile"`, and with the learned second stage where it can run,
`_second_stage_left_out`; for a tabular model, the same without hidden layers or
crosses, trained as a linear model: `LINEAR_TRAINING`); a trial whose
training diverges is pruned. A value of the config's outside the search
space joins it (`_with_config_values`): the first trial trains the
config's own values, never a draw in their place. The search is Optuna's
TPE sampler (a grid when the space is a small set of choices: searched
as given, without the config's own trial), chosen over KerasTuner
because a trial here is a whole `recsys.train` run (preprocessing, split,
baselines), not a Keras model to rebuild, and Optuna stores trials in a
SQLite file: a killed study resumes where it stopped. Each kind calls its
`epoch_end` after every epoch (where a trial past the time budget stops);
two-tower trials report their validation HR@k there, and a trial is judged
by how far it has come (`maturing_pruner`): in the first half of its
epochs it stops only when below the lower quartile of completed trials at
the same epoch (clearly bad), from then on when below their median: a slow
starter (a profile history, a low learning rate with many epochs) is
judged once it has had time to overtake.

Output directory (`--output`, default `artifacts/<config name>_tune`):
    study.db     the Optuna study: every trial, resumable
    trials.csv   one row per trial: its settings, value and state
    best.toml    the config with the best settings, ready for `recsys train`
    influence/   each trial's validation labels and each row's influence on
                 the metric (tabular, text), `trial_<number>.npz`
    bundle/      the best config trained and scored on the test split
    .recsys-owner  marks the directory as a study's: `tune` refuses to
                 write into a non-empty directory without it
                 (`_check_output`)
One run at a time: a run holds the output's lock
(`recsys.storage.output_lock`, `.<name>.lock` beside it) to its end, and
a second run on the same output fails at once.

Example:

```python
from recsys.tune import tune
result = tune(load_config("configs/movielens_two_tower.toml"), "out", trials=20)
result.best_params, result.test_metrics
```
"""

import contextlib
import copy
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import os
import sqlite3
import tempfile
import time
import urllib.parse
import zipfile
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import KIND_DEFAULTS
from recsys.config.common import NO_TIME
from recsys.evaluation.tasks import CHOOSING_METRIC
from recsys.evaluation.tasks import LOWER_IS_BETTER
from recsys.logs import progress_bar
from recsys.logs import warnings_once
from recsys.storage.atomic_write import check_output_path
from recsys.storage.atomic_write import write_bytes_atomically
from recsys.storage.atomic_write import write_text_atomically
from recsys.storage.output_lock import output_lock
from recsys.storage.owned_dirs import read_marker
from recsys.storage.owned_dirs import write_marker
from recsys.training.interrupt import ctrl_c_at_batch_end

logger = logging.getLogger(__name__)

STUDY = "recsys-tune"
# The kind in the marker (`recsys.storage.owned_dirs`) of an output
# directory `tune` writes: what it may write into again (`_check_output`).
OUTPUT_KIND = "tune"
# How many standard errors of a paired difference a trial must beat the
# config's own settings by (`_margin`).
PAIRED_STANDARD_ERRORS = 2.0
# How `recsys tune`'s linear trial trains (`_linear_probe`): more epochs
# without improvement than a deep model's, as its loss falls slowly.
LINEAR_TRAINING = {"optimizer": "adagrad", "learning_rate": 0.1, "patience": 5}
# `maturing_pruner`: the percentile of completed trials (at the same epoch)
# a trial must reach in the first half of its epochs; the median after.
EARLY_PERCENTILE = 25.0


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `values` (numbers, strings or lists, compared as JSON)."""

    values: tuple


@dataclasses.dataclass(frozen=True)
class Range:
    """A number in `[low, high]`; `log` samples its logarithm uniformly;
    `integer` keeps whole numbers."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


def _batch_sizes(rows: int | None, own: int | str) -> tuple[int, ...]:
    """Tabular batch sizes worth a trial on a table of `rows` rows.

    At least 16 steps an epoch and at most about 8,000: on AER's SwissLabor
    (872 rows) a trial at batch 2048 took one step an epoch, scored 0.763
    validation AUC by chance on its 140-row carve, won, and tested at 0.610
    (one-hot LR: 0.733). The config's own size stays (the first trial).
    """
    sizes = (32, 64, 128, 256, 512, 1024, 2048)
    if rows is None:
        return (128, 256, 512, 1024, 2048)
    kept = [b for b in sizes if rows // 8192 <= b <= rows // 16] or [32]
    # "auto" (a config not yet filled in) is one of the sizes kept.
    return tuple(sorted(set(kept) | ({own} if isinstance(own, int) else set())))


def search_space(
    config: dict, rows: int | None = None
) -> dict[str, Choice | Range]:
    """The settings that matter for the config's kind, by `section.key`.

    Learning rates are searched from a fifth of the config's own to five
    times it, so another optimizer keeps a sensible range; with the kind's
    default optimizer, the range reaches the kind's default rate too (a
    fifth of the lower of the two to five times the higher), so a config
    that starts from a poor rate is searched back to a good one.

    Args:
        config: dict. A validated config.
        rows: int or None. The table's rows, where known: tabular batch
            sizes follow it (`_batch_sizes`).

    Returns:
        dict. `"section.key"` -> `Choice` or `Range`.
    """
    model, train = config["model"], config["train"]
    kind = model["kind"]
    rates = [train["learning_rate"]]
    defaults = KIND_DEFAULTS[kind]["train"]
    if train["optimizer"] == defaults["optimizer"]:
        # A tabular config at 3e-5 tuned only from 6e-6 to 1.5e-4: test
        # AUC 0.8375 where the default 1e-3 gives 0.8881 (stevedata
        # anes_vote84, RESULTS.md).
        rates.append(defaults["learning_rate"])
    learning_rate = Range(min(rates) / 5, max(rates) * 5, log=True)
    if kind == "two_tower":
        # Epochs up to 12 and dims up to 256: a small dense table can use
        # more of both than MovieLens (clearly bad long trials are pruned
        # after an epoch or two, `maturing_pruner`).
        space: dict[str, Choice | Range] = {
            "model.embedding_dim": Choice((16, 32, 64, 128, 256)),
            "train.learning_rate": learning_rate,
            "train.epochs": Range(1, 12, integer=True),
            "train.batch_size": Choice((256, 512, 1024, 2048)),
            "model.temperature": Range(0.25, 2.0, log=True),
        }
        if train.get("early_stopping"):
            # Each trial chooses its epochs on its own carve, up to the
            # config's train.epochs.
            del space["train.epochs"]
        if model["logq_correction"]:
            space["model.logq_weight"] = Range(0.0, 2.0)
        data = config["data"]
        if not data.get("path"):  # streams have no histories
            space["model.history_length"] = Choice((0, 5, 10, 20, 50))
            if data["time"] != NO_TIME:
                # Read only with a history (`consistent` resets them
                # without). A table without times has no order: its
                # history is the profile, read by its mean.
                space["model.history_encoder"] = Choice(
                    ("mean", "gru", "transformer")
                )
                space["model.history"] = Choice(("latest", "profile"))
            own = list(model["query_features"])
            if data["user"] in own:
                # A profile history can describe the user better than
                # their id embedding, which learns each user's items by
                # heart (InstEval: benchmarks/RESULTS.md).
                without = [name for name in own if name != data["user"]]
                space["model.query_features"] = Choice((own, without))
        return space
    if kind == "tabular":
        # Crosses are found here, not hand-written: the interaction, the
        # depth of the cross network (read by "dcn" only) and the MLP above
        # it. Epochs are a cap: early stopping on the trial's own carve
        # still picks fewer.
        # "auto" epochs (a config not yet filled in) cap at 100 too.
        own_epochs = train["epochs"] if isinstance(train["epochs"], int) else 0
        epochs_cap = max(100, own_epochs)
        space = {
            "model.interaction": Choice(_interactions(config)),
            "model.num_cross_layers": Range(1, 4, integer=True),
            "model.hidden_units": Choice(
                ([], [64], [64, 32], [128, 64], [256, 128, 64])
            ),
            "model.embedding_dim": Choice((0, 4, 8, 16, 32)),
            "model.dropout": Range(0.0, 0.5),
            # Choices, not a log range: 0 (off, the default) is one, and
            # so is the config's own value, so trial 0 is the config.
            "model.l2": Choice(
                tuple(
                    sorted(
                        {0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1}
                        | {float(model["l2"])}
                    )
                )
            ),
            "train.learning_rate": learning_rate,
            "train.batch_size": Choice(_batch_sizes(rows, train["batch_size"])),
            # A cap up to 100 on a log scale: a small table's epoch is a few
            # steps and needs many (`recsys init` writes 100 for them).
            "train.epochs": Range(2, epochs_cap, log=True, integer=True),
        }
        if config["features"] and not _embedded_columns(config):
            # Numbers alone look nothing up: no embedding to size, no
            # looked-up row for the L2 to penalize. (A config without
            # feature tables is searched whole: tune writes init's first.)
            del space["model.embedding_dim"], space["model.l2"]
        return space
    # Text: the tokens matter as much as the network. Word n-grams
    # (`TextFeature.ngrams`) follow the words in the sequence, so the
    # sequence grows with them; the config's own length, vocabulary cap,
    # batch size and convolution are the first choices (the config itself
    # is the first trial). The LSTM is left out: the slowest and the worst
    # on tweets (benchmarks/RESULTS.md). Ensembles of architectures that
    # read the tokens differently beat each of them there (a member each
    # trained on its own: a trial costs two or three single ones).
    feature = f"features.{config['data']['text']}"
    table = config["features"][config["data"]["text"]]
    length = table.get("sequence_length", 40)
    space = {
        "model.architecture": Choice(
            (
                "mean_pool",
                "flatten",
                "conv1d",
                "conv1d+flatten",
                "conv1d+mean_pool",
                "conv1d+flatten+mean_pool",
            )
        ),
        "model.embedding_dim": Choice((32, 64, 128)),
        "model.dropout": Range(0.0, 0.5),
        "model.conv_filters": Choice((64, 128, 256)),
        "model.kernel_size": Choice((3, 5, 7)),
        "train.learning_rate": learning_rate,
        "train.batch_size": Choice((16, 32, 64, 128)),
        f"{feature}.ngrams": Choice((1, 2, 3)),
        f"{feature}.sequence_length": Choice((length, 2 * length, 3 * length)),
    }
    cap = table.get("max_tokens", 20_000)
    if cap is not None and table.get("vocabulary", "exact") == "exact":
        # N-grams need a larger vocabulary than words alone.
        space[f"{feature}.max_tokens"] = Choice((cap, 5 * cap))
    return space


def _embedded_columns(config: dict) -> int:
    """The tabular columns a config looks up in tables (all but its numeric
    ones), its history counted."""
    from recsys.config.tabular import model_features

    kinds = [
        config["features"][name]["kind"]
        for name in model_features(config)
        if name in config["features"]
    ]
    history = bool(config["model"].get("history_length"))
    return sum(kind != "numeric" for kind in kinds) + history


def _interactions(config: dict) -> tuple[str, ...]:
    """The tabular interactions a config's columns allow: `"dot"` needs
    two vectors to multiply (each embedded column, one for all numeric
    columns), which a table of numbers alone lacks."""
    from recsys.config.tabular import model_features

    numeric = any(
        config["features"].get(name, {}).get("kind") == "numeric"
        for name in model_features(config)
    )
    vectors = _embedded_columns(config) + numeric
    if config["features"] and vectors < 2:
        return ("mlp", "dcn")
    return ("mlp", "dcn", "dot")


def objective_metric(
    config: dict, catalog_size: int | None = None, repeat_share: float = 0.0
) -> str:
    """The validation metric a trial is judged by, for the config's kind.

    Retrieval: filtered HR at the largest `evaluate.ks` that is at most a
    tenth of the catalog or 5 (the smallest otherwise): on 132 items HR@100 is
    near 1 for any model and cannot tell trials apart. Unfiltered HR where
    users repeat their items (`repeat_share` from `REPEATS_NOTED` up, as
    `recsys train`'s note advises): the filtered one leaves out what they
    come back to. Tabular: RMSE (regression), AUC (binary) or log loss
    (multiclass); text: AUC.

    Args:
        config: dict. A validated config.
        catalog_size: int or None. Distinct items of a retrieval table;
            None takes the largest k.
        repeat_share: float. The share of a retrieval table's held-out
            rows that repeat a (user, item) pair of its training rows.
    """
    model = config["model"]
    if model["kind"] == "two_tower":
        from recsys.evaluation.retrieval import choosing_metric

        return choosing_metric(
            config["evaluate"]["ks"], catalog_size, repeat_share
        )
    if model["kind"] == "tabular":
        # "auto" (resolved at training): log loss reads every task.
        return CHOOSING_METRIC.get(model["task"], "logloss")
    return "auc"


def _catalog_and_repeats(config, frame):
    """`(distinct items, repeat share of the validation carve)` of a
    retrieval table (`carve_repeat_share`: the share early stopping and the
    baselines choose by); `(None, 0.0)` for the other kinds."""
    item = config["data"].get("item")
    if config["model"]["kind"] != "two_tower" or item not in frame:
        return None, 0.0
    from recsys.kinds.two_tower import carve_repeat_share

    return frame[item].nunique(), carve_repeat_share(config, frame)


def with_params(config: dict, params: dict[str, Any]) -> dict:
    """A copy of `config` with `"section.key"` values set (a feature's as
    `"features.<name>.key"`)."""
    updated = json.loads(json.dumps(config))
    for name, value in params.items():
        *path, key = name.split(".")
        table = updated
        for part in path:
            table = table.setdefault(part, {})
        table[key] = value
    return updated


def _config_value(config: dict, name: str) -> Any:
    """The value of `"section.key"` in `config`; a feature key the table
    leaves out (`"features.<name>.key"`) has its spec's default."""
    *path, key = name.split(".")
    table = config
    for part in path:
        table = table[part]
    if key not in table and path[0] == "features":
        from recsys.features.specs import feature_from_config

        spec = feature_from_config({"name": path[-1], **table})
        return spec.get_config()[key]
    return table[key]


def consistent(
    params: dict[str, Any], config: dict | None = None
) -> dict[str, Any]:
    """`params` as a valid config takes them.

    A two-tower without a history (`model.history_length = 0`) reads none,
    so its encoder is `"mean"` and its history `"latest"`; and its query
    tower keeps the config's own features (without the user column it would
    read nothing). A profile history (`model.history = "profile"`) has no
    order, so its encoder is `"mean"` too. Settings the others leave unread
    (`unread`: the cross layers of an interaction other than `"dcn"`, the
    convolution of a text architecture without one) keep the config's own
    values, so `best.toml` holds no draw that trained nothing.

    Args:
        params: dict. `"section.key"` -> value.
        config: dict or None. The config searched, for its query features.

    Returns:
        dict. `params`, fixed where needed.
    """
    if config is not None:
        params = {
            **params,
            **{
                name: _config_value(config, name)
                for name in unread(params, config)
            },
        }
    if params.get("model.history") == "profile" and params.get(
        "model.history_length"
    ):
        # A profile has no order for an ordered encoder to read.
        if params.get("model.history_encoder", "mean") != "mean":
            return {**params, "model.history_encoder": "mean"}
        return params
    if params.get("model.history_length") != 0:
        return params
    fixed = dict(params)
    if fixed.get("model.history_encoder", "mean") != "mean":
        fixed["model.history_encoder"] = "mean"
    if fixed.get("model.history", "latest") != "latest":
        fixed["model.history"] = "latest"
    if config is not None and fixed.get("model.query_features") == []:
        fixed["model.query_features"] = config["model"]["query_features"]
    return fixed


def unread(params: dict[str, Any], config: dict | None = None) -> list[str]:
    """The settings of `params` that its other settings leave unread.

    Args:
        params: dict. `"section.key"` -> value.
        config: dict or None. The config searched, for the settings
            `params` leaves out.

    Returns:
        list. Names of `params`: `model.num_cross_layers` under an
        interaction other than `"dcn"`; `model.conv_filters` and
        `model.kernel_size` under a text architecture without `conv1d`.
    """
    model = {**(config or {}).get("model", {})}
    model.update(
        (name.split(".")[1], value)
        for name, value in params.items()
        if name.startswith("model.")
    )
    names = []
    if model.get("interaction", "dcn") != "dcn":
        names.append("model.num_cross_layers")
    if "conv1d" not in model.get("architecture", "conv1d"):
        names += ["model.conv_filters", "model.kernel_size"]
    return [name for name in names if name in params]


@dataclasses.dataclass
class TuneResult:
    """What `tune` found.

    Attributes:
        metric: str. The validation metric searched.
        best_params: dict. `"section.key"` -> the best trial's value.
        best_value: float. Its validation metric.
        trials: DataFrame. One row per trial (`trials.csv`).
        test_metrics: dict. The best config's metrics on the test split.
        bundle: the trained bundle (None with `final=False`).
        config: dict. The best config (`best.toml`).
        kept_config: bool. Whether the config's own settings were kept
            because no trial beat them by a clear margin
            (`_chosen_trial`).
    """

    metric: str
    best_params: dict
    best_value: float
    trials: pd.DataFrame
    test_metrics: dict
    bundle: Any
    config: dict
    kept_config: bool = False


def standard_error(metric: str, value: float, examples: int | None) -> float:
    """One standard error of a validation metric, where it has a closed
    form (else 0).

    HR@k and accuracy are means of 0/1 outcomes: `sqrt(p (1 - p) / n)`.
    AUC: Hanley and McNeil (1982), the examples taken as half positive.

    Args:
        metric: str. The metric's name (`"auc"`, `"hr@100_filtered"`, ...).
        value: float. Its value.
        examples: int or None. The examples (interactions, rows) it is over.

    Returns:
        float.
    """
    if not examples or not math.isfinite(value) or not 0 <= value <= 1:
        return 0.0
    if metric == "auc":
        half = examples / 2
        q1 = value / (2 - value)
        q2 = 2 * value * value / (1 + value)
        variance = (
            value * (1 - value)
            + (half - 1) * (q1 - value * value)
            + (half - 1) * (q2 - value * value)
        ) / (half * half)
        return math.sqrt(max(variance, 0.0))
    if metric.startswith("hr@") or metric == "accuracy":
        return math.sqrt(value * (1 - value) / examples)
    return 0.0


def _chosen_trial(study, metric, output):
    """The best trial, or the config's own (its first) when the best does
    not beat it by a clear margin (`_margin`).

    A small validation carve ranks trials by noise. On AER's SwissLabor
    (140 validation rows) a barely trained trial beat the config by 0.002
    AUC, won, and tested at 0.63 against the config's 0.77.
    """
    import optuna

    best = study.best_trial
    first = next(
        (
            t
            # Finished: not a killed run's copy (failed, enqueued again),
            # nor a pruned one (its value an epoch's on the way).
            for t in study.get_trials(
                deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]
            )
            if t.user_attrs.get("config")
        ),
        None,
    )
    if first is None or first.value is None or first.number == best.number:
        return best
    margin, how = _margin(output, metric, first, best)
    if abs(best.value - first.value) <= margin:
        logger.info(
            "Trial %d's %s (%.4f) is within %s (%.4f) of the config's own "
            "settings (%.4f): keeping the config's settings.",
            best.number,
            metric,
            best.value,
            how,
            margin,
            first.value,
        )
        return first
    return best


def _margin(output, metric, first, best):
    """`(margin, what it is)`: how far the best trial must be from the
    config's own settings to replace them.

    Two standard errors of their difference where both trials' row
    influences are on disk (`recsys.evaluation.paired`: the two share the
    carve's luck, so the difference is far less noisy than either value;
    the best of many trials is also the luckiest, hence two); else one
    standard error of the config's value (`standard_error`; retrieval).
    """
    from recsys.evaluation.paired import difference_standard_error

    kept = [_read_influence(output, t.number) for t in (first, best)]
    if all(k is not None for k in kept):
        (labels, first_influence), (best_labels, best_influence) = kept
        if labels.shape == best_labels.shape and np.array_equal(
            labels, best_labels
        ):
            error = difference_standard_error(first_influence, best_influence)
            return (
                PAIRED_STANDARD_ERRORS * error,
                f"{PAIRED_STANDARD_ERRORS:g} standard errors of the difference",
            )
    error = standard_error(
        metric, first.value, first.user_attrs.get("examples")
    )
    return error, "one standard error"


def _influence_path(output, number):
    return os.path.join(output, "influence", f"trial_{number}.npz")


def _write_influence(output, number, metric, labels, predictions):
    """A trial's validation labels and each row's influence on `metric`
    (`influence/`; nothing where the metric has none). One number a row,
    whatever the number of classes."""
    from recsys.evaluation.paired import row_influence

    influence = row_influence(metric, labels, predictions)
    if influence is None:
        return
    path = _influence_path(output, number)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = io.BytesIO()
    np.savez(arrays, labels=np.asarray(labels), influence=influence)
    write_bytes_atomically(path, arrays.getvalue())


def _read_influence(output, number):
    """`(labels, influence)` of a trial, or None (not written: a study
    from before they were, or a kind or metric without them)."""
    try:
        with np.load(_influence_path(output, number), allow_pickle=False) as f:
            return f["labels"], f["influence"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def tune(
    config: dict,
    output: str,
    *,
    trials: int = 20,
    time_budget: float | None = None,
    metric: str | None = None,
    space: dict[str, Choice | Range] | None = None,
    frame: pd.DataFrame | None = None,
    final: bool = True,
    progress: bool = True,
) -> TuneResult:
    """Searches `space` on the validation carve, then trains the best.

    Ctrl-C stops it at the next batch end, as a `KeyboardInterrupt`: the
    finished trials stay in `output`, and a second run resumes there.

    Args:
        config: dict. A config, as `recsys.train` takes it: the dict or
            typed config `recsys.load_config` returns, a dict written by
            hand or a TOML path.
        output: str. The study's directory (see the module docstring). A
            study already there for the same config and space resumes.
        trials: int. Trials in all, counting those already finished.
            Defaults to `20`.
        time_budget: float or None. Seconds for this run's search; no new
            trial starts after it, and a trial still running stops at its
            next epoch once another trial has finished (it is marked
            failed, as a killed one, and does not count; the settings the
            search enqueued, the config's own or a probe, run again on the
            next run).
            Defaults to `None` (no limit).
        metric: str or None. A validation metric name; defaults to
            `objective_metric` of the config and its table.
        space: dict or None. Defaults to `search_space(config, rows)`.
        frame: DataFrame or None. The table; defaults to `data.source`.
        final: bool. Train the best config on the training split, score
            the test split and write `bundle/`. Defaults to `True`.
        progress: bool. Show a bar over trials. Defaults to `True`.

    Returns:
        A `TuneResult`.

    Raises:
        ValueError: for a streamed config, an unknown metric, a
            validation carve of one class for AUC (`_check_carve`), a study
            in `output` made for another config, space or table, or an
            `output` that holds files of something else (`_check_output`).
        OutputLockedError: if another process is writing `output` (a
            `ValueError`; `recsys.storage.output_lock`).
    """
    from recsys.kinds.run import validated_config

    config = validated_config(config, "recsys.tune.tune")
    if config["data"].get("path"):
        raise ValueError(
            "recsys tune trains every trial in memory; data.path streams "
            "shards. Fix: tune on a sample of the table with data.source, "
            "then train the chosen config on data.path."
        )
    check_output_path(output)
    # Refused now, not at the final training after every trial.
    from recsys.kinds.base import check_output_outside_data

    check_output_outside_data(config, output)
    # One run at a time: a second would fail the first's running trial
    # (`_open_study`) and overwrite its files. Held to the end, over the
    # final training too (whose bundle has its own lock, `bundle/`'s).
    with (
        output_lock(output, "recsys tune"),
        ctrl_c_at_batch_end(),
        warnings_once(),
    ):
        _check_output(output)
        _check_writable(output)
        return _search(
            config,
            output,
            trials=trials,
            time_budget=time_budget,
            metric=metric,
            space=space,
            frame=frame,
            final=final,
            progress=progress,
        )


def _search(
    config,
    output,
    *,
    trials,
    time_budget,
    metric,
    space,
    frame,
    final,
    progress,
):
    """`tune`'s search and final training, under the output's lock."""
    import optuna

    from recsys.init_config import with_written_features
    from recsys.kinds import get_kind
    from recsys.kinds.base import source_table
    from recsys.training.checkpoint import table_identity
    from recsys.training.divergence import TrainingDiverged

    kind = get_kind(config["model"]["kind"])
    frame = source_table(config, frame, progress=progress)
    # A tabular or text config without feature tables: init's, searched
    # and written out in best.toml.
    config = with_written_features(config, frame)
    catalog_size, repeat_share = _catalog_and_repeats(config, frame)
    metric = metric or objective_metric(config, catalog_size, repeat_share)
    _check_metric(config, metric, catalog_size)
    if time_budget is not None and not time_budget > 0:
        raise ValueError(
            f"--time-budget must be a positive number of seconds. Received: "
            f"{time_budget}. Fix: give the seconds the search may take, or "
            "leave it out (no limit)."
        )
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    space = search_space(config, len(frame)) if space is None else space
    grid = _is_grid(space)
    if not grid:
        # The config's own values, where outside the space, join it: its
        # first trial is the config's own, as a sampler may draw again.
        space = _with_config_values(config, space)
    tuning: dict[str, Any] = {"evaluate.split": "validation"}
    if "baselines" in config["evaluate"]:
        # A trial is judged alone: the baselines run once, beside the final
        # model (popularity is part of every retrieval evaluation).
        tuning["evaluate.baselines"] = []
    if "index" in config:
        # Trials are scored exactly; only the final bundle needs ScaNN.
        tuning["index.kind"] = "brute_force"
    tuning_config = with_params(config, tuning)
    _check_carve(tuning_config, frame, metric)
    os.makedirs(output, exist_ok=True)
    if read_marker(output) is None:
        write_marker(output, OUTPUT_KIND)
    study = _open_study(
        optuna,
        output,
        config,
        space,
        metric,
        direction,
        table_identity(frame),
    )

    deadline = None if time_budget is None else time.monotonic() + time_budget

    def objective(trial):
        params = _trial_params(
            {name: _suggest(trial, name, dim) for name, dim in space.items()},
            trial,
            config,
        )
        trial_config = with_params(tuning_config, params)
        trial_kind = get_kind(config["model"]["kind"])
        epochs = trial_config["train"].get("epochs")
        # The validation metric after each epoch (where the kind has it): a
        # trial below the bar of completed trials at the same epoch
        # (`maturing_pruner`, which reads the trial's epochs) stops there,
        # as does any trial past the time budget.
        trial.set_user_attr("epochs", epochs)
        trial_kind.epoch_end = functools.partial(
            _report, trial, metric, deadline=deadline
        )
        started = time.perf_counter()
        try:
            result = trial_kind.train(
                trial_config, frame=frame, progress=False, write=False
            )
        except TrainingDiverged as error:
            # A rate from the top of the range can be too large: the trial
            # fails, the search goes on.
            raise optuna.TrialPruned(str(error)) from error
        except OutOfTime:
            # Unfinished, as a killed trial is (`_open_study`): settings
            # the search enqueued (the config's own, a probe) run on resume.
            _enqueue_again(
                study, study.get_trials(deepcopy=False)[trial.number]
            )
            raise
        except KeyboardInterrupt:
            raise _Interrupted from None  # left running, as a kill leaves it
        finally:
            trial.set_user_attr(
                "seconds", round(time.perf_counter() - started, 2)
            )
        validation = result.metrics["validation"]
        value = _score(validation, metric)
        # How many examples scored it: its standard error follows.
        trial.set_user_attr(
            "examples",
            validation.get("num_examples", validation.get("num_interactions")),
        )
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{metric} is {value}")
        scored = result.split_predictions
        if scored is not None:
            # Each row's part in its metric, to compare with the config's
            # row by row (`_margin`).
            _write_influence(output, trial.number, metric, *scored)
        fitted = result.metrics.get("train", {})
        best_epoch = fitted.get("best_epoch")
        if best_epoch is None and config["model"]["kind"] == "text":
            # The text kind keeps its chosen epochs as `epochs` (one per
            # member of an ensemble): trials.csv said the cap, 30, for
            # trials that stopped at 6.
            chosen = fitted.get("epochs")
            best_epoch = max(chosen) if isinstance(chosen, list) else chosen
        if best_epoch is not None:
            # Early stopping chose the epochs: say how many; `train.epochs`
            # was only their cap.
            trial.set_user_attr("best_epoch", best_epoch)
        if trial_config["model"].get("second_stage"):
            skipped = result.metrics.get("second_stage", {}).get("skipped")
            if skipped:
                # Its value is then the model's alone, the config's again.
                logger.info(
                    "Trial %d: its second stage was skipped: %s",
                    trial.number,
                    skipped,
                )
            # Its value is the reranked lists', which no epoch of a model
            # alone compares with: the pruner reads no step of it.
            return value
        # The last epoch's value too, for later trials to compare with: a
        # two-tower fit reports every epoch but its last (`EpochScores`),
        # which is `best_epoch` after early stopping, unless its search
        # reported every epoch (`BestEpoch`: its best so far); tabular and
        # text fits report none per epoch (a text trial's value at its
        # epochs).
        reported = study.get_trials(deepcopy=False)[trial.number]
        if best_epoch is None and epochs:
            trial.report(value, epochs)
        elif (
            best_epoch is not None
            and config["model"]["kind"] != "tabular"
            and best_epoch not in reported.intermediate_values
        ):
            trial.report(value, best_epoch)
        return value

    start, outside = _starting_point(config, space)
    if start and not grid and not study.get_trials(deepcopy=False):
        # The config's own settings are the first trial: the search starts
        # from what the user has, and keeps it unless something beats it.
        # (A grid tries its points, not the config's.) A value no setting
        # of the space can hold (`_with_config_values`) is set over the
        # draws, as the linear probe's training is (`_trial_params`).
        kept = {"settings": outside} if outside else {}
        study.enqueue_trial(start, user_attrs={"config": True, **kept})
        if start.get("model.history_length"):
            # Then the same without the history: whether the table's time
            # order says anything is a new table's first question (on a
            # table without real times it can hurt a lot), and a sampler
            # may not try history_length = 0 for many trials.
            study.enqueue_trial(
                consistent({**start, "model.history_length": 0}, config),
                user_attrs=kept,
            )
        if start.get("model.history") == "latest" and (
            "model.history_length" in start
        ):
            study.enqueue_trial(_profile_probe(start, space), user_attrs=kept)
        # The config with the learned second stage over its candidates: on
        # MovieLens it lifts test filtered HR@10 from 0.046 to 0.058, more
        # than any setting of the first stage (RESULTS.md), and a search of
        # the first stage alone never tries it.
        left_out = _second_stage_left_out(config, space, catalog_size, frame)
        if left_out is None:
            logger.info(
                "Trial %d: your config with model.second_stage = true (the "
                "learned second stage over its candidates).",
                len(study.get_trials(deepcopy=False)),
            )
            study.enqueue_trial(
                start,
                user_attrs={
                    "settings": {**outside, "model.second_stage": True}
                },
            )
        elif config["model"]["kind"] == "two_tower" and not config["model"].get(
            "second_stage"
        ):
            logger.info("No trial with model.second_stage: %s.", left_out)
        linear = _linear_probe(start, space, config)
        if linear is not None:
            study.enqueue_trial(
                linear[0], user_attrs={"settings": {**outside, **linear[1]}}
            )
    done = _finished(study)
    remaining = max(trials - done, 0)
    if remaining:
        logger.info(
            "Tuning %s: %d trial(s) to run (%d already in %s), %s on the "
            "validation carve",
            config["model"]["kind"],
            remaining,
            done,
            output,
            metric,
        )
        # The package's bar, not Optuna's: one plain line at a time when
        # stderr is a log file (Optuna's rewrites one line with `\r`).
        bar = progress_bar(
            total=remaining, desc="trials", unit="trial", disable=not progress
        )

        def advance(study, trial):
            if trial.value is not None:
                best = study.best_trial
                bar.set_postfix_str(
                    f"best {metric} {best.value:.4f} (#{best.number})",
                    refresh=False,
                )
            # The table as trials finish, not only at the end: a long or
            # killed search shows what it has done so far.
            _write_trials(output, study, space, config)
            bar.update(1)
            # The budget's one clock (`_report`'s): a trial stopped for
            # time is the last, not followed by its own queued copy.
            if deadline is not None and time.monotonic() > deadline:
                study.stop()

        try:
            with _out_of_time_in_one_line(), bar:
                study.optimize(
                    objective,
                    n_trials=remaining,
                    callbacks=[advance],
                    catch=(OutOfTime,),
                )
        except (_Interrupted, KeyboardInterrupt, SystemExit) as stop:
            # Ctrl-C, SIGTERM: the study is on disk (the CLI exited 130
            # without a word).
            logger.warning(
                "Tuning stopped after %d of %d trial(s); the same command "
                "resumes the study in %s.",
                _finished(study) - done,
                remaining,
                output,
            )
            if isinstance(stop, _Interrupted):
                raise KeyboardInterrupt from None
            raise
        ran = _finished(study) - done
        # (A grid stops early too, once every point has run.)
        past = deadline is not None and time.monotonic() > deadline
        if ran < remaining and past:
            logger.info(
                "Time budget reached: %d of %d trial(s) run. The same "
                "command goes on from there (the study resumes).",
                ran,
                remaining,
            )
    else:
        # Said, not silent: nothing to tune; the chosen trial is trained
        # into bundle/ unless it is there already (`_trained_already`).
        logger.info(
            "Tuning %s: the %d trial(s) asked for are already in %s; none "
            "to run (pass a larger --trials to search on).",
            config["model"]["kind"],
            done,
            output,
        )
    table = _write_trials(output, study, space, config)
    if not any(t.value is not None for t in study.get_trials(deepcopy=False)):
        raise ValueError(
            f"No trial in {output} produced a finite {metric}. See "
            "trials.csv; fix the config or pass another --metric."
        )
    best = _chosen_trial(study, metric, output)
    best_params = _trial_params(
        {name: _value(best.params[name]) for name in space}, best, config
    )
    best_config = with_params(config, best_params)
    best_text = _toml_text(best_config, metric, best)
    best_path = os.path.join(output, "best.toml")
    write_best = functools.partial(write_text_atomically, best_path, best_text)
    bundle_path = os.path.join(output, "bundle")
    # best.toml describes bundle/ whenever both are there: while an earlier
    # run's bundle/ stands, it changes only once the new one replaced it (a
    # kill during the final training leaves the earlier pair, which the
    # same command replaces). Without one, it is written first: a failed
    # final training still leaves the chosen config.
    bundle = final and _trained_already(bundle_path, best_path, best_text)
    replacing = final and os.path.lexists(bundle_path)
    test_metrics: dict = {}
    if bundle:
        # The same command again (to see the result, or a longer search
        # whose winner stayed): the pair stands; not trained once more.
        logger.info(
            "%s already holds trial %d's model (as %s says): kept, not "
            "trained again (remove it to retrain).",
            bundle_path,
            best.number,
            best_path,
        )
        test_metrics = bundle.metrics
    elif final:
        if not replacing:
            write_best()
        result = kind.train(
            best_config, bundle_path, frame=frame, progress=progress
        )
        bundle, test_metrics = result.bundle, result.metrics
        if replacing:
            write_best()
    else:
        write_best()
    return TuneResult(
        metric=metric,
        best_params=best_params,
        best_value=float(best.value),
        kept_config=best.user_attrs.get("config", False),
        trials=table,
        test_metrics=test_metrics,
        bundle=bundle or None,
        config=best_config,
    )


def _check_output(output):
    """Refuses an `output` that holds anything but a study of `tune`'s,
    before any work: its trials.csv, best.toml, study.db, influence/ and
    bundle/ would replace a user's files of those names.

    Ours: missing, empty, marked by `tune` (`OUTPUT_KIND`), or holding a
    study.db with `tune`'s study (a study begun before the marker was).

    Raises:
        ValueError: for a file, or a non-empty directory not ours.
    """
    if os.path.lexists(output) and not os.path.isdir(output):
        raise ValueError(
            f"--output {output} exists and is not a directory. Fix: choose "
            "another --output directory for the study."
        )
    if not os.path.isdir(output) or not os.listdir(output):
        return
    marker = read_marker(output)
    if marker is not None and marker.get("kind") == OUTPUT_KIND:
        return
    if marker is None and _holds_our_study(output):
        return
    what = f"a recsys {marker.get('kind')}" if marker else "other files"
    raise ValueError(
        f"--output {output} exists and holds {what}, not a recsys tune "
        "study; refusing to write trials.csv, best.toml, study.db and "
        "bundle/ into it. Fix: choose a new or empty --output directory "
        "(a study's own directory resumes it)."
    )


def _check_writable(output):
    """Refuses a study directory, or its study.db, that cannot be written,
    before the table is read: SQLite found out at the study's first write
    and Optuna answered with 112 lines of traceback that blamed "invalid
    data in the commit".

    Raises:
        ValueError: naming the file, why, and the fix.
    """
    if not os.path.isdir(output):
        return  # made by `_search`; a parent that refuses says so there
    database = os.path.join(output, "study.db")
    try:
        if os.path.exists(database):
            # Opened for writing, nothing written.
            with open(database, "r+b"):
                pass
        # SQLite writes its journal beside the database. On Linux an
        # O_TMPFILE: no name ever appears in the directory.
        with tempfile.TemporaryFile(dir=output):
            pass
    except OSError as error:
        # The temporary file's random name would only puzzle.
        where = database if error.filename == database else output
        raise ValueError(
            f"{where} cannot be written ({error.strerror or error}), and a "
            "study writes its trials to study.db there. Fix: make it "
            "writable, or copy the study directory somewhere writable and "
            "pass that as --output (it resumes there)."
        ) from None


def _holds_our_study(output):
    """Whether `output/study.db` is an Optuna database holding `tune`'s
    study (read only: a user's own SQLite file is left as it is)."""
    path = os.path.join(os.path.abspath(output), "study.db")
    if not os.path.isfile(path):
        return False
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            found = db.execute(
                "SELECT 1 FROM studies WHERE study_name = ?", (STUDY,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return found is not None


def _open_study(optuna, output, config, space, metric, direction, table):
    """The study in `output/study.db`: resumed if it is this config's, on
    this table (`table`: `table_identity`, of the loaded frame, not the
    file's size and time: a frame passed in Python has no file, a copied
    or touched file the same rows)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fingerprint = hashlib.sha256(
        json.dumps(
            [config, _space_json(space), metric], sort_keys=True
        ).encode()
    ).hexdigest()
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{os.path.abspath(os.path.join(output, 'study.db'))}"
    )

    def create():
        return optuna.create_study(
            study_name=STUDY,
            storage=storage,
            direction=direction,
            # Prunes on the per-epoch values kinds report (two-tower); after
            # 5 trials, so that a median exists.
            pruner=maturing_pruner(),
            load_if_exists=True,
        )

    study = create()
    stored = study.user_attrs.get("fingerprint")
    # None in a study begun before tables were recorded: taken as this one.
    stored_table = study.user_attrs.get("table") or table
    changed = stored not in (None, fingerprint) or stored_table != table
    if changed and not _finished(study):
        # A study that never finished a trial (a run stopped at its first
        # error) holds nothing to keep: the corrected run starts afresh.
        optuna.delete_study(study_name=STUDY, storage=storage)
        study, stored, stored_table = create(), None, table
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("metric", metric)
    elif stored != fingerprint:
        raise ValueError(
            f"{output} holds a study of another config, search space or "
            "metric. Fix: pass another --output, or remove that directory "
            "to start over."
        )
    if stored_table != table:
        # Its trials' values were measured on rows that are gone: the
        # search would compare them with this table's and keep the stale.
        rows = (
            f"{stored_table['rows']:,} rows then, {table['rows']:,} now"
            if stored_table["rows"] != table["rows"]
            else f"{table['rows']:,} rows, other values"
        )
        raise ValueError(
            f"{output} holds a study of another table: its trials were "
            f"scored on data that has changed since ({rows}). Fix: pass "
            "another --output for this table, or remove that directory to "
            "start over."
        )
    study.set_user_attr("table", table)
    # A trial running when the last run was killed never finished: fail it
    # so that it does not count, and run it again (`_enqueue_again`) before
    # the trials still queued behind it. Enqueued after them, a killed
    # config trial came last, and a run of `--trials` no more than the
    # probes queued finished without ever judging the config.
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    killed = [t for t in trials if t.state == states.RUNNING]
    queued = [t for t in trials if t.state == states.WAITING] if killed else []
    for trial in queued:  # enqueued again below, after the killed
        storage.set_trial_user_attr(trial._trial_id, REQUEUED, True)
    for trial in [*killed, *queued]:
        storage.set_trial_state_values(trial._trial_id, states.FAIL)
    for trial in sorted([*killed, *queued], key=lambda t: t.number):
        _enqueue_again(study, trial)
    # Seeded by the trials stored: a resumed run draws new settings, not
    # the first run's again.
    study.sampler = _sampler(
        optuna, space, config["train"]["seed"] + len(study.trials)
    )
    return study


# A queued trial that never ran, failed only to be enqueued again behind a
# killed one (`_open_study`): not shown in trials.csv.
REQUEUED = "requeued"


def _enqueue_again(study, trial):
    """Enqueues a finished-in-failure `trial` (a `FrozenTrial`) again where
    the search had enqueued it (the config's own settings, a probe): the
    sampler would not draw its settings, and the config's own must be
    judged. A trial killed with its run (`_open_study`) or stopped by the
    time budget (`OutOfTime`) never finished."""
    fixed = trial.system_attrs.get("fixed_params")
    if fixed:
        kept = {
            k: v
            for k, v in trial.user_attrs.items()
            if k in ("config", "settings")
        }
        study.enqueue_trial(fixed, user_attrs=kept)


def maturing_pruner(
    *, early_percentile: float = EARLY_PERCENTILE, startup_trials: int = 5
):
    """An Optuna pruner whose bar rises as a trial reaches its last epochs.

    Optuna's median pruner compares every trial with the median of earlier
    trials at the same epoch. That favours what learns fast: a setting that
    starts slowly but ends higher (a profile history, redrawn every epoch,
    passes a history-less model only after about 5 epochs on InstEval,
    `benchmarks/RESULTS.md`) was mostly stopped after its first epoch.
    Here a trial is compared with the completed trials at the same epoch,
    as there, but in the first half of its own epochs
    (`user_attrs["epochs"]`, set by `tune`) it stops only below their
    `early_percentile` (clearly bad: a learning rate far off still stops
    after an epoch); from half of its epochs on, below their median. A
    trial without `"epochs"` is judged by the median throughout.

    Args:
        early_percentile: float. The percentile (0-100) of earlier trials'
            values at the same epoch that a trial in the first half of its
            epochs must reach. Defaults to `EARLY_PERCENTILE` (25, the
            lower quartile).
        startup_trials: int. Completed trials before any pruning. Defaults
            to `5`.

    Returns:
        An `optuna.pruners.BasePruner`.

    Example:

    ```python
    study = optuna.create_study(direction="maximize", pruner=maturing_pruner())
    trial = study.ask()
    trial.set_user_attr("epochs", 12)  # judged by the median from epoch 6
    ```
    """
    import optuna

    class MaturingPruner(optuna.pruners.BasePruner):
        def __init__(self):
            # Optuna's percentile is the top share kept (of a maximized
            # metric): 75 keeps all but the lowest quartile.
            self._early = optuna.pruners.PercentilePruner(
                100.0 - early_percentile, n_startup_trials=startup_trials
            )
            self._late = optuna.pruners.MedianPruner(
                n_startup_trials=startup_trials
            )

        def prune(self, study, trial):
            epochs = trial.user_attrs.get("epochs")
            step = trial.last_step
            # Half of its epochs, rounded up: a 12-epoch trial is judged by
            # the median from epoch 6, a 3-epoch one from epoch 2.
            early = epochs and step is not None and step < math.ceil(epochs / 2)
            pruner = self._early if early else self._late
            # Optuna's pruners read a study's `direction` and `get_trials`.
            stood: Any = _StoppedTrialsStand(study, step)
            return pruner.prune(stood, trial)

    return MaturingPruner()


class _StoppedTrialsStand:
    """A study as `maturing_pruner` reads it at `step`: a completed trial
    that early stopping ended before `step` stands there at its value.

    Optuna's pruners compare a trial with the completed trials that
    reported the same step; one that stopped at epoch 4 (its best, 2, and
    `patience` after) reported none at 6, so at epoch 6 only the trials
    still improving were left, and a trial above three of five completed
    ones was pruned as below the lower quartile of the other two (an
    outside audit, session 32). Early stopping keeps the best epoch's
    model: had it gone on, that value is what it would have kept.
    """

    def __init__(self, study, step):
        self._study, self._step = study, step

    @property
    def direction(self):
        return self._study.direction

    def get_trials(self, deepcopy=True, states=None):
        import optuna

        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        step = self._step
        stood = []
        for trial in trials:
            last = trial.last_step
            if (
                step is not None
                and trial.state == optuna.trial.TrialState.COMPLETE
                and "best_epoch" in trial.user_attrs
                and last is not None
                and last < step
            ):
                trial = copy.copy(trial)
                trial.intermediate_values = {
                    **trial.intermediate_values,
                    step: trial.value,
                }
            stood.append(trial)
        return stood

    def __getattr__(self, name):
        return getattr(self._study, name)


def _starting_point(config, space):
    """`(start, outside)`: the config's values of the searched settings
    that lie in `space` (as Optuna stores them), and those that do not."""
    start, outside = {}, {}
    for name, dim in space.items():
        value = _config_value(config, name)
        if isinstance(dim, Choice):
            if value in dim.values:
                start[name] = _key(value)
            else:
                outside[name] = value
        elif _in_range(value, dim):
            start[name] = value
        else:
            outside[name] = value
    return start, outside


def _in_range(value, dim):
    return _fits_range(value, dim) and dim.low <= value <= dim.high


def _fits_range(value, dim):
    """Whether a `Range` stretched to `value` is one Optuna can search."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not math.isfinite(value) or (dim.log and value <= 0):
        return False
    return not dim.integer or float(value).is_integer()


def _with_config_values(config, space):
    """`space` with the config's own values added where they lie outside
    it: a `Choice` gains the value, a `Range` stretches to it.

    The config's own settings are the first trial, and the one kept unless
    a trial beats it (`_chosen_trial`): a value the space lacked would be
    drawn by the sampler instead (a `--set model.embedding_dim=8` trained
    at 32, and kept as "the config's"). The space follows from the config,
    so a resumed study finds the same one (`_open_study`'s fingerprint; a
    categorical setting's choices cannot change within an Optuna study). A
    value no dimension can hold (not a number for a `Range`, 0 on a log
    scale) is left out: the config's trial sets it over its draws
    (`_starting_point`'s `outside`).
    """
    widened = dict(space)
    for name, dim in space.items():
        value = _config_value(config, name)
        if isinstance(dim, Choice):
            if value in dim.values or not _categorical(_key(value)):
                continue
            widened[name] = Choice((*dim.values, value))
        elif _in_range(value, dim) or not _fits_range(value, dim):
            continue
        else:
            widened[name] = dataclasses.replace(
                dim, low=min(dim.low, value), high=max(dim.high, value)
            )
        logger.info(
            "The config's %s = %r lies outside the search space: searched "
            "too, so that the first trial is the config's own.",
            name,
            value,
        )
    return widened


def _categorical(stored):
    """Whether Optuna can hold `stored` as a categorical choice."""
    return stored is None or isinstance(stored, (bool, int, float, str))


def _linear_probe(start, space, config):
    """`(params, settings)`: `start` without hidden layers or crosses, a
    tabular config's embeddings, numbers and per-value biases straight into
    the output, trained as a linear model is (`LINEAR_TRAINING`, at the
    smallest batch searched); None for other kinds.

    The simplest model of the space, tried second: where a few columns
    decide the label (openintro's `loans_full_schema`: the interest rate is
    the `sub_grade`'s), the MLP learns the other 50 columns' noise before
    the biases settle (validation RMSE 0.267 against 0.088 without hidden
    layers), and a sampler may not draw `hidden_units = []` for many
    trials. Adam, which moves every weight by about its rate a step, left
    such a model far from its optimum on small tables (ISLR's OJ,
    validation AUC 0.844 against one-hot LR's 0.926; Ecdat's Ketchup, log
    loss 0.849 against 0.778), Adagrad at 0.1 reaches LR's
    (benchmarks/RESULTS.md).
    """
    if "model.hidden_units" not in start:
        return None
    params = {
        **start,
        "model.interaction": "mlp",
        "model.hidden_units": _key([]),
        "model.dropout": 0.0,
    }
    if "train.batch_size" in space:
        params["train.batch_size"] = min(space["train.batch_size"].values)
    patience = max(config["train"]["patience"], LINEAR_TRAINING["patience"])
    settings = {
        "train.optimizer": LINEAR_TRAINING["optimizer"],
        "train.learning_rate": LINEAR_TRAINING["learning_rate"],
        "train.patience": patience,
    }
    return params, settings


def _second_stage_left_out(config, space, catalog_size, frame):
    """Why `tune` does not try the config with `model.second_stage`, or
    None: it does where the second stage can run (a two-tower config
    without it, nor a space that searches it; times; a catalog EASE fits;
    a carve whose users do not come back to their items, measured on the
    carve a trial's second stage fits on, as `skip_reason` measures it)."""
    from recsys.baselines.retrieval import EASE_MAX_ITEMS
    from recsys.evaluation.retrieval import REPEATS_NOTED
    from recsys.kinds.two_tower import carve_repeat_share

    model, data = config["model"], config["data"]
    if model["kind"] != "two_tower" or model.get("second_stage"):
        return "not a two-tower config without it"
    if "model.second_stage" in space:
        return "the search space holds it"
    if data["time"] == NO_TIME:
        return "the table has no times (data.time)"
    most = config["evaluate"].get("ease_max_items", EASE_MAX_ITEMS)
    if catalog_size > most:
        return (
            f"the catalog's {catalog_size:,} items exceed "
            f"evaluate.ease_max_items ({most:,})"
        )
    repeats = carve_repeat_share(config, frame, second_stage=True)
    if repeats >= REPEATS_NOTED:
        return (
            f"{repeats:.0%} of a trial's carve repeats a (user, item) pair "
            "of its user"
        )
    return None


def _trial_params(params, trial, config):
    """A trial's settings: its draws (`consistent`), then the settings it
    was enqueued with outside the space (the linear probe's training, the
    second stage)."""
    return {
        **consistent(params, config),
        **trial.user_attrs.get("settings", {}),
    }


def _profile_probe(start, space):
    """`start` with the user's profile as its history, without their id,
    for the most epochs searched.

    On a table without real times the profile (all of a user's items, in no
    order) is the history that describes a user, as EASE describes them,
    while an id embedding learns each user's training items by heart.
    """
    lengths = space["model.history_length"].values
    probe = {
        **start,
        "model.history": "profile",
        # Most of a user's items: InstEval's users have 25 on average.
        "model.history_length": 50 if 50 in lengths else max(lengths),
    }
    if "model.history_encoder" in space:
        probe["model.history_encoder"] = "mean"
    epochs = space.get("train.epochs")
    if isinstance(epochs, Range):
        # The history is drawn again each epoch (input noise): it needs
        # more epochs than an id embedding. On InstEval's validation carve
        # it passes no history only after 5 epochs at the default rate.
        probe["train.epochs"] = int(epochs.high)
    if "model.query_features" in space:
        probe["model.query_features"] = _key(
            space["model.query_features"].values[-1]
        )
    return consistent(probe)


def _is_grid(space):
    """Whether `space` is searched as a grid: every setting a choice, and
    few points."""
    choices = [dim for dim in space.values() if isinstance(dim, Choice)]
    return (
        len(choices) == len(space)
        and math.prod(len(c.values) for c in choices) <= 64
    )


def _sampler(optuna, space, seed):
    """A grid when every setting is a choice and the grid is small."""
    if _is_grid(space):
        grid = {
            name: [_key(v) for v in dim.values]
            for name, dim in space.items()
            if isinstance(dim, Choice)
        }
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def _key(value):
    """A choice as Optuna stores it: lists as their JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


def _value(stored):
    """A stored choice back as the config's value."""
    if isinstance(stored, str) and stored.startswith("["):
        return json.loads(stored)
    return stored


def _check_metric(config, metric, catalog_size=None):
    """Raises `ValueError` for a metric the config's trials do not report,
    before the first trial trains (and before the study records it)."""
    from recsys.evaluation.retrieval import evaluated_ks
    from recsys.evaluation.retrieval import metric_names
    from recsys.evaluation.retrieval import ranking_metric_names
    from recsys.evaluation.tasks import TASK_METRICS

    model = config["model"]
    if model["kind"] == "two_tower":
        ks = tuple(config["evaluate"]["ks"])
        if catalog_size is not None:
            # Training adds the k that chooses below the catalog (HR@3 of
            # 4 items, where `evaluate.ks` are 1 by construction).
            ks = evaluated_ks(ks, catalog_size)
        known = metric_names(ks) + ranking_metric_names(ks)
    elif model["kind"] == "tabular":
        known = list(
            TASK_METRICS.get(
                model["task"],
                sorted({m for ms in TASK_METRICS.values() for m in ms}),
            )
        )
    else:
        known = ["accuracy", "auc", "logloss"]
    if metric not in known:
        raise ValueError(
            f"--metric {metric!r} is not a validation metric of this "
            f"{model['kind']} config. Fix: pass one of {known}."
        )


def _check_carve(config, frame, metric):
    """Raises `ValueError` where every row of the validation carve holds
    one class and `metric` is AUC, before the first trial (and before the
    study records it): each trial would train, score NaN and be pruned
    (a 12-row table's 2-row carve, both 0). The carve is the trials'
    `data.split` applied to the training rows (`recsys.data.split`).

    Args:
        config: dict. The trials' config (`evaluate.split = "validation"`).
        frame: DataFrame. The table.
        metric: str. The validation metric searched.
    """
    label = config["data"].get("label")
    if metric != "auc" or label not in frame:
        return  # no label column: the first trial's error names it
    if config["model"]["kind"] == "tabular":
        from recsys.kinds.tabular import label_classes
        from recsys.kinds.tabular import row_labels
        from recsys.kinds.tabular import split_rows

        train, carve = split_rows(frame, config)
        # As the trials read them: a number against its threshold.
        labels = row_labels(carve, config, label_classes(train, config, frame))
    elif config["model"]["kind"] == "text":
        from recsys.kinds.text import split_rows as split_texts

        carve = split_texts(frame, config)[2]
        labels = carve[label].to_numpy()
    else:
        return
    if not len(labels) or len(np.unique(labels)) > 1:
        return  # an empty carve: the trial's own error names it
    values = sorted(map(str, pd.unique(carve[label])))
    split = config["data"].get("split", "suffix")
    raise ValueError(
        f"All {len(labels):,} rows of the validation carve have the same "
        f"'{label}' class ({', '.join(values)}), so their AUC, the metric "
        f'each trial is judged by, is undefined: data.split = "{split}" '
        "carves rows of one class. Fix: "
        'data.split = "random", or a split whose held-out rows hold every '
        "class; or pass --metric logloss."
    )


def _score(scores, metric):
    """`scores[metric]` as a float; a clear error for an unknown metric."""
    if metric not in scores:
        raise ValueError(
            f"Metric {metric!r} is not among the validation metrics "
            f"{sorted(scores)}. Fix: pass one of them as --metric."
        )
    return float(scores[metric])


class _Interrupted(BaseException):
    """Ctrl-C during a trial, carried past Optuna, which marks a trial
    failed on `KeyboardInterrupt` (and `_open_study` then never ran it
    again): the trial stays running, as a killed one does, and runs first
    on resume. `_search` raises `KeyboardInterrupt` again."""


class OutOfTime(Exception):
    """A trial stopped by `tune`'s time budget (marked failed)."""


class _OutOfTimeFilter(logging.Filter):
    """Optuna logs a trial the time budget stopped as a failure with its
    traceback and every parameter; this says it in one line instead. Any
    other error of a trial ends `tune` (it is not caught), where the CLI
    says it in one line: Optuna's traceback of it is dropped."""

    def __init__(self):
        super().__init__()
        self.stopped: set[str | None] = set()

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        words = record.getMessage().split()
        number = words[1] if len(words) > 1 and words[0] == "Trial" else None
        if isinstance(error, OutOfTime):
            self.stopped.add(number)
            logger.info(
                "Trial %s stopped: %s (marked failed, not counted).",
                number,
                error,
            )
            return False
        if error is not None:  # raised on to the caller: said there
            self.stopped.add(number)
            return False
        # Optuna's second line for the same trial ("failed with value None").
        return number not in self.stopped


@contextlib.contextmanager
def _out_of_time_in_one_line():
    optuna_logger = logging.getLogger("optuna.study._optimize")
    quiet = _OutOfTimeFilter()
    optuna_logger.addFilter(quiet)
    try:
        yield
    finally:
        optuna_logger.removeFilter(quiet)


def _report(trial, metric, epoch, scores, deadline=None):
    """A kind's `epoch_end` in a trial: report, and stop the trial if bad
    or past `deadline` (`time.monotonic()` seconds; a trial is stopped for
    time only once another has finished, so a budget shorter than one
    trial still yields a result). `scores` without `metric` (a tabular or
    text epoch: `recsys.training.refit.EpochEnd`) is not reported."""
    import optuna

    if metric in scores:
        value = float(scores[metric])
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"{metric} {value:.4f} after epoch {epoch}"
            )
    if deadline is not None and time.monotonic() > deadline:
        finished = trial.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        )
        if finished:
            raise OutOfTime(f"time budget reached after epoch {epoch}")


def _suggest(trial, name, dim):
    if isinstance(dim, Choice):
        return _value(
            trial.suggest_categorical(name, [_key(v) for v in dim.values])
        )
    if dim.integer:
        return trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, log=dim.log)


def _space_json(space):
    return {name: dataclasses.asdict(dim) for name, dim in space.items()}


def _finished(study):
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in states for t in study.get_trials(deepcopy=False))


def _write_trials(output, study, space, config):
    """Writes `trials.csv` (`_trials_table`) and returns the table."""
    table = _trials_table(study, space, config)
    write_text_atomically(
        os.path.join(output, "trials.csv"), table.to_csv(index=False)
    )
    return table


def _trials_table(study, space, config):
    import optuna

    rows = []
    # Queued trials (the probes beyond `--trials`) run on a resumed search;
    # until then they are not trials of the table.
    ran = study.get_trials(
        deepcopy=False,
        states=[s for s in optuna.trial.TrialState if s.name != "WAITING"],
    )
    for trial in ran:
        if trial.user_attrs.get(REQUEUED):
            continue
        row = {"trial": trial.number, "state": trial.state.name}
        # The settings the trial trained with (`consistent`), not the draws.
        params = {n: _value(trial.params.get(n)) for n in space}
        settings = _trial_params(params, trial, config)
        # Blank where the trial did not read it (an MLP's cross layers).
        row.update({**settings, **dict.fromkeys(unread(settings, config))})
        # A pruned trial has no value of its own (Optuna keeps its last
        # epoch's, which `last_epoch_value` shows): no choice compares it.
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        row["value"] = trial.value if complete else None
        # Where a kind reports epochs: the last one reported and its value
        # (a pruned trial's last word; a two-tower search's best so far).
        step = trial.last_step
        row["last_epoch"] = step
        row["last_epoch_value"] = (
            None if step is None else trial.intermediate_values[step]
        )
        row["best_epoch"] = trial.user_attrs.get("best_epoch")
        row["seconds"] = trial.user_attrs.get("seconds")
        rows.append(row)
    table = pd.DataFrame(rows)
    # Settings only some trials had (the linear probe's) beside the others.
    settings = [c for c in table.columns if "." in c]
    rest = [c for c in table.columns if "." not in c]
    table = table[rest[:2] + settings + rest[2:]]
    for name in table.columns:
        dim = space.get(name)
        values = [row[name] for row in rows if row.get(name) is not None]
        whole = bool(values) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for v in values
        )
        if whole or (isinstance(dim, Range) and dim.integer):
            # Whole numbers beside blanks (an unread setting, a setting of
            # the linear probe's alone, a failed trial's epochs) stay
            # whole: 5, not 5.0.
            table[name] = pd.to_numeric(table[name]).round().astype("Int64")
    for columns in (["last_epoch", "last_epoch_value"], ["best_epoch"]):
        if rows and table[columns[0]].isna().all():
            table = table.drop(columns=columns)
    return table


def _trained_already(bundle_path, best_path, best_text):
    """The bundle at `bundle_path` where `best_path` holds `best_text`
    (the same trial's config, whole: they are written as a pair, the
    bundle first once one stands), else None: no bundle, one of another
    trial (a kill during the final training leaves the earlier pair), or
    one that does not load."""
    from recsys.bundles import load_bundle

    try:
        with open(best_path, encoding="utf-8") as file:
            if file.read() != best_text or not os.path.isdir(bundle_path):
                return None
        return load_bundle(bundle_path)
    except (OSError, ValueError):  # a BundleError among them
        return None


def _toml_text(config, metric, best):
    """best.toml's text: the chosen config, under a header naming its
    trial."""
    import tomli_w

    if config["data"].get("time") == NO_TIME:
        # As the user wrote it: a table without times.
        config = {**config, "data": {**config["data"], "time": ""}}
    header = (
        f"# Written by `recsys tune`: trial {best.number}, validation "
        f"{metric} = {best.value:.4f}.\n"
        "# Train it on the whole training split: recsys train THIS_FILE\n\n"
    )
    return header + tomli_w.dumps(config)
