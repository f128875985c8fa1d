"""`ModelKind`: the steps every model kind runs, in one order.

`recsys train` for any `model.kind` is `ModelKind.train`: prepare the data
(read, check, split, fit the preprocessor), fit the model, export what the
bundle holds besides the model (embeddings and their index, side tables),
evaluate it beside the kind's baselines, write the bundle. A kind fills in
the steps; the order, the `write=False` path and what `recsys evaluate`
prints for a stored bundle are written once, here.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
import os
import textwrap
from collections.abc import Callable
from typing import Any
from typing import ClassVar

logger = logging.getLogger(__name__)

# A re-score runs the split through the loaded bundle: tabular metrics come
# back bit for bit; a text bundle's float32 probabilities move log loss by
# about 2e-10.
RESCORE_TOLERANCE = 1e-6


@dataclasses.dataclass
class Fitted:
    """A trained model and what its fit measured.

    Attributes:
        model: the trained Keras model.
        timing: dict stored as `metrics["train"]` (seconds, examples/s,
            epochs, ...).
        state: kind-specific leftovers of the fit that later steps need
            (e.g. the checkpoint to finish once the bundle is written; the
            evaluated split's `"split_predictions"`, for `TrainResult`).
    """

    model: Any
    timing: dict
    state: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainResult:
    """What `recsys.train` returns.

    Attributes:
        metrics: dict. The metrics (the bundle's `metrics.json`).
        bundle: the written bundle loaded back from disk, or None with
            `write=False`.
        model: the trained Keras model (None for a streamed two-tower run,
            whose model lives only in its bundle).
        prepared: the kind's prepared data (splits, preprocessor, inputs),
            or None for a streamed run.
        exported: dict. What the bundle holds besides the model (e.g. the
            `item_embeddings` and the `index` of a two-tower model).
        split_predictions: `(labels, predictions)` of the evaluated split,
            as its metrics read them, where the kind scores rows (tabular,
            text; `recsys tune` compares two trials row by row); None for
            a retrieval model, which ranks a catalog per user.
    """

    metrics: dict
    bundle: Any = None
    model: Any = None
    prepared: Any = None
    exported: dict = dataclasses.field(default_factory=dict)
    split_predictions: tuple | None = None

    def __iter__(self):
        # `bundle, metrics = recsys.train(...)` as `train_bundle` returned.
        return iter((self.bundle, self.metrics))

    def __repr__(self) -> str:
        # The dataclass's own spelt out every array and split: 55,000
        # characters at the end of a notebook cell.
        split = next(
            (k for k in ("test", "validation") if k in self.metrics), None
        )
        scores = self.metrics.get(split, {}) if split else {}
        shown = ", ".join(
            f"{k}={v:.4f}"
            for k, v in list(scores.items())[:4]
            if isinstance(v, float)
        )
        where = getattr(self.bundle, "path", None)
        return (
            f"TrainResult({split or 'metrics'}: {shown or 'none'}; "
            f"bundle={where!r})"
        )


class ModelKind(abc.ABC):
    """One model kind: what `model.kind = name` trains, evaluates, writes.

    Subclasses set `name` and implement the five steps; `train` runs them.
    Register a new kind in `recsys.kinds.KINDS`.
    """

    name: ClassVar[str]
    # A config without feature tables trains on the columns `recsys init`
    # would declare (tabular, text: their columns follow from the table).
    reads_init_features: ClassVar[bool] = False
    # `(epoch, metrics)` after each training epoch, where a kind calls it
    # (`recsys tune` sets it on a trial's instance to prune and time it).
    epoch_end: Callable[[int, dict], Any] | None = None

    @abc.abstractmethod
    def prepare(self, config: dict, frame=None, *, progress=True) -> Any:
        """Reads (unless `frame` is given), checks and splits the data and
        fits the preprocessor. Returns the kind's prepared-data object."""

    @abc.abstractmethod
    def fit(
        self, prepared: Any, config: dict, *, output=None, progress=True
    ) -> Fitted:
        """Builds and fits the model (`output`: where the bundle will go,
        for a resumable job directory; None when nothing is written)."""

    def export(
        self, fitted: Fitted, prepared: Any, config: dict, *, progress=True
    ) -> dict:
        """What the bundle holds besides the model (nothing by default)."""
        return {}

    @abc.abstractmethod
    def evaluate(
        self,
        fitted: Fitted,
        exported: dict,
        prepared: Any,
        config: dict,
        *,
        progress=True,
    ) -> dict:
        """The metrics of the model and its baselines on the config's
        evaluation split, with `fitted.timing` under `"train"`."""

    @abc.abstractmethod
    def write(
        self,
        output: str,
        fitted: Fitted,
        exported: dict,
        prepared: Any,
        config: dict,
        metrics: dict,
    ) -> str:
        """Writes the bundle atomically; returns its path."""

    def load(self, path: str) -> Any:
        """Loads a bundle of this kind (its registered bundle class)."""
        from recsys.kinds import bundle_class

        cls: Any = bundle_class(self.name)
        return cls.load(path)

    @abc.abstractmethod
    def summary(self, metrics: dict, config: dict) -> str:
        """What `recsys train` prints: the metrics beside the baselines."""

    @abc.abstractmethod
    def rescore(self, bundle: Any, frame=None) -> dict:
        """The loaded bundle's metrics on its config's evaluation split,
        recomputed (`frame`: the table; defaults to `data.source`)."""

    def train(
        self,
        config: dict,
        output: str | None = None,
        *,
        frame=None,
        progress: bool = True,
        write: bool = True,
    ) -> TrainResult:
        """Runs the steps: prepare, fit, export, evaluate and (unless
        `write=False`) write. The arguments are `recsys.train`'s."""
        if write and not output:
            raise ValueError(
                "train(..., write=True) needs an output directory. Received: "
                f"output={output!r}. Fix: pass output=PATH, or write=False."
            )
        if write and output:
            check_output_outside_data(config, output)
        if write and config.get("data", {}).get("split") == "none":
            _warn_not_every_row(config)
        if self.reads_init_features:
            from recsys.init_config import needs_written_lines
            from recsys.init_config import with_written_features

            if needs_written_lines(config):
                # The shortest config: the columns (and the task) `recsys
                # init` would write.
                frame = source_table(config, frame, progress=progress)
                config = with_written_features(config, frame)
        from recsys.training.precision import precision_scope

        prepared = self.prepare(config, frame, progress=progress)
        # The config's precision, not a policy the caller set globally
        # (`keras.config.set_dtype_policy("mixed_float16")` in a notebook
        # built a tabular model in float16, saved so in its bundle).
        with precision_scope(config):
            fitted = self.fit(
                prepared,
                config,
                output=output if write else None,
                progress=progress,
            )
            exported = self.export(fitted, prepared, config, progress=progress)
            metrics = self.evaluate(
                fitted, exported, prepared, config, progress=progress
            )
        result = TrainResult(
            metrics=metrics,
            model=fitted.model,
            prepared=prepared,
            exported=exported,
            # Kept by `evaluate` where the kind scores rows.
            split_predictions=fitted.state.get("split_predictions"),
        )
        if write and output:
            path = self.write(
                output, fitted, exported, prepared, config, metrics
            )
            result.bundle = self.load(path)
        return result

    def evaluate_document(self, bundle, *, frame=None, rescore=False) -> dict:
        """What `recsys evaluate --json` prints: the stored metrics and,
        with `rescore`, the split's metrics recomputed (which must match).

        Raises:
            BundleError, ValueError: as `evaluate_report`.
        """
        # The report's checks (metrics written by `recsys train`, --data
        # only with --rescore); its text is not needed here.
        self.evaluate_report(bundle, frame=None if rescore else frame)
        document = {"bundle": bundle.path, "metrics": bundle.metrics}
        if rescore:
            split = bundle.config["evaluate"]["split"]
            document["rescored"] = rescored = self.rescore(bundle, frame)
            check_rescored(bundle, bundle.metrics[split], rescored)
        return document

    def evaluate_report(self, bundle, *, frame=None, rescore=False) -> str:
        """What `recsys evaluate` prints for a bundle of this kind.

        By default: the stored metrics as training printed them and, with
        `rescore`, the split re-run through the loaded bundle, which must
        reproduce them.

        Raises:
            BundleError: if the bundle's metrics were not written by
                `recsys train`.
            ValueError: if re-scoring does not reproduce the metrics, or
                the bundle held out no rows (`check_held_out`).
        """
        from recsys.storage.files import BundleError

        check_held_out(bundle)
        metrics, config = bundle.metrics, bundle.config
        split = config["evaluate"]["split"]
        missing = [key for key in (split, "train") if key not in metrics]
        if missing:
            raise BundleError(
                f"The metrics of {bundle.path} lack {missing}: it was not "
                "written by `recsys train`. Retrain the bundle."
            )
        if frame is not None and not rescore:
            raise ValueError("--data is the table to re-score: add --rescore.")
        try:
            lines = [self.summary(metrics, config)]
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            # Checksummed, so re-signed by hand: not what training wrote.
            raise BundleError(
                f"The metrics of {bundle.path} are not as `recsys train` "
                f"writes them ({type(error).__name__}: {error}). Retrain "
                "the bundle."
            ) from None
        if not rescore:
            return "\n".join(lines)
        rescored = self.rescore(bundle, frame)
        stored = metrics[split]
        lines += [
            f"\nre-scored through the loaded bundle on the {split} split "
            f"({rescored['num_examples']} rows):",
            f"{'metric':<12}{'stored':>10}{'rescored':>10}",
        ]
        for name, value in rescored.items():
            if name != "num_examples" and name in stored:
                lines.append(f"{name:<12}{stored[name]:>10.4f}{value:>10.4f}")
        check_rescored(bundle, stored, rescored)
        lines.append(f"matches metrics.json (to {RESCORE_TOLERANCE})")
        return "\n".join(lines)


def check_output_outside_data(config: dict, output: str) -> None:
    """Refuses an output inside the folder the table is read from (a
    directory of Parquet files): the bundle's files then joined the table,
    and the next training of the config failed to read it."""
    data = config.get("data", {})
    for key in ("source", "path"):
        folder = data.get(key) or ""
        if not folder or not os.path.isdir(folder):
            continue
        inside = os.path.realpath(os.path.abspath(output))
        table = os.path.realpath(folder)
        if inside == table or inside.startswith(table + os.sep):
            raise ValueError(
                f"Output {output} is inside the folder the table is read "
                f"from (data.{key} = {folder!r}): its files would join the "
                "table's. Fix: choose an output outside it, e.g. beside it."
            )


def _warn_not_every_row(config: dict) -> None:
    """Warns where a `data.split = "none"` run written as a bundle learns
    fewer rows than every one: a validation run (as tune's trials are), or
    one without early stopping's refit."""
    if config["evaluate"]["split"] == "validation":
        logger.warning(
            'data.split = "none" with evaluate.split = "validation": '
            "this bundle learns from the validation carve's training "
            "part only and measures a setting, as recsys tune's trials "
            "do; it is not the bundle to ship. Fix: leave evaluate.split "
            "out to train on every row."
        )
    elif config["train"].get("refit") is False:
        logger.warning(
            'data.split = "none" with train.refit = false: the model '
            "learns the rows early stopping's carve leaves it, not every "
            "row. Fix: leave train.refit out (true) for the bundle to "
            "ship."
        )


def check_held_out(bundle) -> None:
    """Raises where a bundle held out no rows to evaluate it on.

    Args:
        bundle: a loaded bundle of any kind.

    Raises:
        ValueError: for a bundle trained with `data.split = "none"` and
            `evaluate.split = "test"`, naming the fix.
    """
    from recsys.data.split import holds_out_nothing

    if holds_out_nothing(bundle.config):
        raise ValueError(
            f'{bundle.path} was trained with data.split = "none": every row '
            "trained it and none was held out, so it has no test metrics to "
            "show or re-score. Fix: to measure the model, train the same "
            "config with data.split left out (its default) or another "
            "split; this bundle is the one to ship."
        )


def no_test_lines(metrics: dict, split: str) -> list[str]:
    """What a report says in place of its metrics for a run that held out
    no rows (`data.split = "none"`).

    Args:
        metrics: dict. The run's metrics (metrics.json).
        split: str. The evaluated split's key in `metrics`.

    Returns:
        list of str: `NO_TEST_NOTE` and a blank line, or `[]` where
        `metrics` holds the split's metrics.
    """
    from recsys.data.split import NO_TEST_NOTE

    if split in metrics or metrics.get("split", {}).get("method") != "none":
        return []
    return [textwrap.fill(metrics.get("note", NO_TEST_NOTE), width=80), ""]


def baselines_ahead_note(metrics: dict, split: str, metric: str) -> list[str]:
    """What a run's report adds where a baseline beats the model.

    Compared on `metric`, the one `recsys tune` chooses settings by: a user
    who reads "popularity 0.9189, model 0.8634" learns what to run next (a
    tuned run's report says the same, a fact there).

    Args:
        metrics: dict. The run's metrics (metrics.json).
        split: str. The evaluated split's key in `metrics`.
        metric: str. The metric to compare (lower is better for
            `LOWER_IS_BETTER`).

    Returns:
        list of str: the note, or `[]` when no baseline is ahead.
    """
    from recsys.evaluation.tasks import LOWER_IS_BETTER

    model = metrics.get(split, {}).get(metric)
    if not isinstance(model, int | float) or not math.isfinite(model):
        return []
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ahead = [
        (key.removeprefix("baseline_"), scores[metric])
        for key, scores in metrics.items()
        if key.startswith("baseline_")
        and isinstance(scores, dict)
        and isinstance(scores.get(metric), int | float)
        and sign * scores[metric] > sign * model
    ]
    if not ahead:
        return []
    # Digits enough to tell each ahead from the model: HELPfull's "0.9375
    # scores better than the model (0.9375)" read as a contradiction.
    digits = next(
        (
            d
            for d in range(4, 9)
            if all(f"{v:.{d}f}" != f"{model:.{d}f}" for _, v in ahead)
        ),
        8,
    )
    names = ", ".join(f"{name} ({value:.{digits}f})" for name, value in ahead)
    verb = "scores" if len(ahead) == 1 else "score"
    return [
        textwrap.fill(
            f"note: {names} {verb} better than the model "
            f"({model:.{digits}f}) on "
            f"{metric}, the metric `recsys tune CONFIG` chooses this model's "
            "settings by, on the validation carve.",
            width=80,
        )
    ]


def skipped_baselines_lines(metrics: dict) -> list[str]:
    """`"<name>: skipped, <note>"` for each baseline a run could not fit
    (its note in `metrics["baselines_tuned"]`), for the report."""
    return [
        f"{name}: skipped, {details['skipped']}"
        for name, details in metrics.get("baselines_tuned", {}).items()
        if "skipped" in details
    ]


def class_shares_note(metrics: dict, split: str) -> list[str]:
    """What a classifier's report adds where its probabilities are worse
    than always predicting the training rows' class shares (`metrics`'
    `"class_shares"`, `recsys.evaluation.tasks.class_share_metrics`): a
    model that learnt less than nothing from its inputs, which AUC alone
    hides (a text model of movie titles, log loss 0.640 against 0.604).

    Returns:
        list of str: the note, or `[]`.
    """
    model, shares = metrics.get(split, {}), metrics.get("class_shares")
    if not isinstance(shares, dict) or "logloss" not in model:
        return []
    if not model["logloss"] > shares["logloss"]:
        return []
    return [
        textwrap.fill(
            f"note: the model's log loss ({model['logloss']:.4f}) is above "
            "that of always predicting the training rows' class shares "
            f"({shares['logloss']:.4f}; accuracy {shares['accuracy']:.4f}, "
            "the majority class's): its probabilities say less than the "
            "shares alone. Fix: more informative columns, or other "
            "settings (`recsys tune CONFIG` searches them).",
            width=80,
        )
    ]


def training_mean_note(metrics: dict, split: str) -> list[str]:
    """What a regression's report adds where its RMSE is no better than
    always predicting the training rows' mean (`metrics`'
    `"training_mean"`): a model that learnt nothing from its inputs (a
    ridge baseline held back by its regularization looked beaten by it).

    Returns:
        list of str: the note, or `[]`.
    """
    model, mean = metrics.get(split, {}), metrics.get("training_mean")
    if not isinstance(mean, dict) or "rmse" not in model:
        return []
    if model["rmse"] < mean["rmse"]:
        return []
    return [
        textwrap.fill(
            f"note: the model's RMSE ({model['rmse']:.4f}) is no better than "
            "that of always predicting the training rows' mean "
            f"({mean['rmse']:.4f}; its MAE {mean['mae']:.4f}): by RMSE it "
            "learnt nothing the mean does not say. Fix: more informative "
            "columns, or other settings (`recsys tune CONFIG` searches "
            "them).",
            width=80,
        )
    ]


def warn_one_class(count: int, label: str, value, method: str, fix: str):
    """Warns that all `count` held-out rows hold one class, `value` of
    column `label`: their AUC is NaN, and the table printed says nothing of
    why (modeldata's hotel_rates split by arrival date: every held-out row
    is 0).

    Args:
        count: int. Held-out rows.
        label: str. The label column.
        value: their one class.
        method: str. `data.split`.
        fix: str. What to change, for that split.
    """
    logger.warning(
        "All %s held-out rows have the same '%s' (%s), so their AUC is "
        "undefined (nan) and the other metrics say little: data.split = %r "
        "holds out rows of one class. Fix: %s.",
        f"{count:,}",
        label,
        value,
        method,
        fix,
    )


# A held-out score this close to perfect is a leak far more often than a
# model: a column computed from the label (goals beside a goal difference).
PERFECT = 0.9999


def perfect_score_note(metrics: dict, split: str) -> list[str]:
    """What a classifier's report adds where its held-out AUC or accuracy
    is perfect (`PERFECT`): a column that holds the label trains silently
    to AUC 1.0000.

    Returns:
        list of str: the note, or `[]`.
    """
    scores = metrics.get(split, {})
    name = next((m for m in ("auc", "accuracy") if m in scores), None)
    if name is None or not scores[name] >= PERFECT:
        return []
    return [
        textwrap.fill(
            f"note: {name} {scores[name]:.4f} on the {split} split, a perfect "
            "score: one column or a few together probably hold the label "
            "(computed from it, or recorded after it). Fix: leave them out "
            "of model.features (for a tabular config without feature "
            "tables, list the columns to read there).",
            width=80,
        )
    ]


def check_rescored(bundle, stored: dict, rescored: dict) -> None:
    """Raises unless `rescored` reproduces the `stored` metrics.

    Raises:
        ValueError: naming each metric that differs, and why it may.
    """
    differ = compare_metrics(stored, rescored)
    if differ:
        raise ValueError(
            f"Re-scoring {bundle.path} does not reproduce its metrics.json: "
            + ", ".join(
                f"{n} {a:.4g} stored, {b:.4g} now" for n, a, b in differ
            )
            + ". The data (data.source or --data) may have changed since "
            "training, or this is not the table the bundle was trained on."
        )


def source_table(config: dict, frame=None, *, progress: bool = False):
    """`frame`, or the config's `data.source` table when `frame` is None
    (a large file shows a bar of the bytes read with `progress`), without
    its rows of empty key cells under `data.drop_missing`."""
    if frame is None:
        from recsys.data.sources import load_interactions

        if not config["data"]["source"]:
            raise ValueError(
                "data.source is empty, so there is no table to read (a "
                "bundle trained from a DataFrame keeps none). Fix: set "
                'data.source = "my_table.csv" in the config (a path relative '
                "to the config file); to re-score a bundle, pass the table "
                "with `recsys evaluate BUNDLE --data FILE` (or frame= in "
                "Python: recsys.train(config, output, frame=frame))."
            )
        frame = load_interactions(config["data"]["source"], progress=progress)
    from recsys.data.sources import names_as_text

    data = config.get("data", {})
    used = {v for v in data.values() if isinstance(v, str)}
    frame = names_as_text(frame, used | set(config.get("features", {})))
    frame = _times_read(frame, config["data"])
    _check_number_columns(frame, config.get("features", {}))
    if config["data"].get("drop_missing"):
        frame = drop_missing_rows(frame, config["data"])
    from recsys.data.retrieval_inputs import with_time_column

    return with_time_column(frame, config["data"])


def _check_number_columns(frame, features):
    """Checks the text cells of numeric features before any row is
    dropped or split (`check_numbers`): a cell that is no number is named
    by its row of the file. Columns already numbers have none to check."""
    import pandas as pd

    from recsys.features.preprocessor import check_numbers

    for name, table in features.items():
        if (
            isinstance(table, dict)
            and table.get("kind") in ("numeric", "bucketized")
            and name in frame
            and not pd.api.types.is_numeric_dtype(frame[name])
            and not pd.api.types.is_datetime64_any_dtype(frame[name])
        ):
            check_numbers(frame[name], name)


def _times_read(frame, data):
    """`frame` with its time column of text parsed (`parse_times`) before
    any row is dropped: a value that does not parse is named with its row
    of the file (`data.positive_column` and `data.drop_missing` number the
    rows they keep afresh).

    Blank cells and the text "None" are missing times: a column of times in
    `data.time_format` (`24/12/2010`) is no column of text, but the loader
    knows ISO 8601 times only (`none_as_value`).
    """
    from recsys.data.retrieval_inputs import parse_times
    from recsys.data.sources import NONE
    from recsys.data.sources import empty_cells

    time = data.get("time", "")
    if not time or time not in frame or frame[time].dtype.kind in "iufcmMb":
        return frame
    missing = empty_cells(frame[[time]])[time] | frame[time].eq(NONE)
    if missing.any():
        frame = frame.assign(**{time: frame[time].mask(missing)})
    return parse_times(frame, time, data.get("time_format", "ISO8601"))


# The `[data]` keys naming the columns a row cannot do without.
KEY_COLUMNS = ("user", "item", "time", "label", "text")


def drop_missing_rows(frame, data: dict):
    """`frame` without the rows whose key columns (`KEY_COLUMNS` of the
    `[data]` section `data`) hold an empty cell (missing, or text of spaces
    alone: `empty_cells`); each count is logged.

    Raises:
        ValueError: when no row is left.
    """
    columns = [
        data[key] for key in KEY_COLUMNS if data.get(key) in frame.columns
    ]
    from recsys.data.sources import empty_cells

    empty = empty_cells(frame[list(dict.fromkeys(columns))])
    dropped = empty.any(axis=1).to_numpy()
    if not dropped.any():
        return frame
    counts = ", ".join(
        f"{int(n):,} with an empty '{column}'"
        for column, n in empty.sum().items()
        if n
    )
    if dropped.all():
        raise ValueError(
            f"Every one of the {len(frame):,} rows has an empty key cell "
            f"({counts}), so data.drop_missing leaves none. Fix: check the "
            "column names in [data]."
        )
    logger.warning(
        "data.drop_missing: dropped %s of %s rows (%s).",
        f"{int(dropped.sum()):,}",
        f"{len(frame):,}",
        counts,
    )
    return frame[~dropped].reset_index(drop=True)


# Tables larger than this fit the preprocessor chunk by chunk, with a bar;
# smaller ones in one call (what `partial_fit` learns equals `fit`'s).
FIT_CHUNK_ROWS = 1_000_000


def fit_preprocessor(specs, train, *, progress: bool = False):
    """A `Preprocessor` of `specs` fitted on the training rows `train`.

    Args:
        specs: list of feature specs.
        train: DataFrame. The training rows.
        progress: bool. A bar over chunks of `FIT_CHUNK_ROWS` rows for
            tables larger than that. Defaults to `False`.

    Returns:
        A fitted `recsys.features.Preprocessor`.
    """
    from recsys.features import Preprocessor
    from recsys.logs import progress_bar

    _check_columns_present(specs, train)
    preprocessor = Preprocessor(features=specs)
    if len(train) <= FIT_CHUNK_ROWS:
        return preprocessor.fit(train)
    starts = range(0, len(train), FIT_CHUNK_ROWS)
    bar = progress_bar(
        starts,
        desc="fit vocabularies",
        unit="chunk",
        disable=not progress,
        leave=False,
    )
    for start in bar:
        preprocessor.partial_fit(train.iloc[start : start + FIT_CHUNK_ROWS])
    return preprocessor


def _check_columns_present(specs, train) -> None:
    """Raises a `ValueError` naming the fix for a feature column empty on
    every training row: a numeric one has no mean or quantile to learn (it
    said only "no non-null values to fit on"), a categorical one trained
    silently on nothing but its missing value (an upstream join that
    broke, in a nightly job)."""
    from recsys.config.features import table_header

    for spec in specs:
        if spec.name in train and train[spec.name].isna().all():
            raise ValueError(
                f"Column '{spec.name}' is empty on every one of the "
                f"{len(train):,} training rows (after data.drop_missing and "
                "the split), so the model cannot learn from it. Fix: remove "
                f"{table_header(spec.name)} and its name where [model] lists "
                "it (model.features; a two-tower's model.query_features or "
                "model.candidate_features), or fill the column."
            )


def compare_metrics(
    stored: dict, rescored: dict, tolerance: float = RESCORE_TOLERANCE
) -> list[tuple[str, float, float]]:
    """The metrics that differ between two runs on the same split.

    Args:
        stored: dict. Metrics as training stored them.
        rescored: dict. The same metrics, recomputed.
        tolerance: float. Largest absolute difference that still matches.

    Returns:
        list of `(name, stored, rescored)` for every metric both hold that
        differs by more than `tolerance` (the row count must be equal);
        empty when they match.

    Example:

    ```python
    compare_metrics({"auc": 0.81}, {"auc": 0.81})  # []
    ```
    """
    differ = []
    for name, value in rescored.items():
        if name not in stored:
            continue
        limit = 0 if name == "num_examples" else tolerance
        if not math.isclose(stored[name], value, rel_tol=0, abs_tol=limit):
            differ.append((name, stored[name], value))
    return differ
