"""From a table of texts and labels to an evaluated text-classifier bundle.

`TextKind` is what `recsys train` runs for `model.kind = "text"`
(`configs/tweets_text.toml`). The split follows PROTOCOL.md by default
(`data.split = "suffix"`): rows whose id ends in `data.test_suffixes` are
the test set; of the others, those ending in `data.validation_suffixes` pick
the number of epochs (early stopping), after which the model is trained
again on every training row for that many epochs (`train.refit`). `"random"`
and `"column"` hold rows out as `recsys.data.split` describes. The TF-IDF
baselines are fitted on the same training rows and scored on the same split
in the same run.
"""

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from recsys.baselines.text import run_baselines
from recsys.bundles.text import write_text_bundle
from recsys.config import feature_specs
from recsys.data.sources import closest_columns
from recsys.data.split import NO_TEST_NOTE
from recsys.data.split import SplitRule
from recsys.data.split import Splitter
from recsys.data.split import evaluation_split
from recsys.data.split import holds_out_nothing
from recsys.data.split import row_count
from recsys.data.split import split_record
from recsys.data.split import split_rule
from recsys.data.split import suffix_split
from recsys.data.texts import check_texts
from recsys.evaluation.classification import classification_metrics
from recsys.evaluation.tasks import class_shares
from recsys.features import Preprocessor
from recsys.features.pretrained import VectorFileError
from recsys.features.pretrained import embedding_matrix
from recsys.init_config import with_written_features
from recsys.kinds.base import Fitted
from recsys.kinds.base import ModelKind
from recsys.kinds.base import baselines_ahead_note
from recsys.kinds.base import check_held_out
from recsys.kinds.base import class_shares_note
from recsys.kinds.base import fit_preprocessor
from recsys.kinds.base import no_test_lines
from recsys.kinds.base import skipped_baselines_lines
from recsys.kinds.base import source_table
from recsys.kinds.base import warn_one_class
from recsys.models.text_classifier import TextClassifier
from recsys.models.text_ensemble import TextEnsemble
from recsys.training.memory import check_table_memory
from recsys.training.optimizers import make_optimizer
from recsys.training.progress import keras_verbosity
from recsys.training.refit import EpochEnd
from recsys.training.refit import epoch_cap_note
from recsys.training.refit import fit_then_refit

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TextData:
    """A text run's data, split and encoded.

    Attributes:
        classes: list. Class labels; index `i` is class id `i` (for two
            classes, index 1 is the positive class).
        train, valid, test: DataFrames. `valid` is part of `train`; `test`
            is the validation split when `evaluate.split = "validation"`.
        preprocessor: the `Preprocessor` fitted on `train`'s texts.
    """

    classes: list
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    preprocessor: Preprocessor


def class_labels(labels, column, positive=""):
    """The sorted class labels of a label column, checked.

    Args:
        labels: pandas Series.
        column: str. Its name, for messages.
        positive: the positive class of a binary label; `""` keeps the last
            in sorted order (numbers by value, anything else as text).

    Returns:
        list of labels (JSON-able Python values).
    """
    missing = labels.isna()
    if bool(missing.any()):
        raise ValueError(
            f"Label column '{column}' has {int(missing.sum())} missing values "
            f"(rows {labels.index[missing][:5].tolist()}). Fix: drop or fill "
            "those rows, or set data.drop_missing = true."
        )
    values = pd.unique(labels).tolist()
    # Numbers in their order (1, 2, 10), not as text (1, 10, 2).
    classes = sorted(values) if _numbers(values) else sorted(values, key=str)
    if len(classes) < 2:
        raise ValueError(
            f"Label column '{column}' holds a single class {classes}; a "
            "classifier needs at least two."
        )
    if positive != "":
        names = [str(c) for c in classes]
        if len(classes) != 2 or str(positive) not in names:
            raise ValueError(
                f"data.positive is {positive!r}, but label column '{column}' "
                f"holds the classes {classes}. Fix: name one of two classes, "
                'or set data.positive = "".'
            )
        positive_class = classes[names.index(str(positive))]
        classes = [c for c in classes if c != positive_class] + [positive_class]
    return classes


# Distinct numbers in a label beyond which the text kind says it
# classifies them: a review's 419 star averages trained a 419-way softmax
# (accuracy 0.0067) without a word.
NUMERIC_CLASSES_WARNED = 20


def _numbers(values) -> bool:
    """Whether label values are all numbers (booleans are not)."""
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def _warn_numeric_classes(classes, column, rows):
    """Warns where the label is numbers of many values: one class each."""
    if _numbers(classes) and len(classes) > NUMERIC_CLASSES_WARNED:
        logger.warning(
            "Label column '%s' holds %d distinct numbers over %d rows: the "
            "text kind learns each as a class of its own, and does not "
            "regress them. Fix: bin them into a few classes (a column of "
            "'low' / 'high'), or train a tabular model with model.task = "
            '"regression" on the text as a "multi_categorical" feature with '
            'tokenizer = "words".',
            column,
            len(classes),
            rows,
        )


def split_rows(
    frame: pd.DataFrame, config: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`(train, valid, test)` by `data.split` (see module doc); `"none"`
    holds out no test rows, and carves the validation rows by suffix.

    The parts are indexed by row number (0 for the table's first row):
    `data.id = ""` splits by it, and `valid` is told apart from the rest of
    `train` by it, whatever index `frame` had (a sample's, a `pd.concat`'s
    repeated labels, text labels, a MultiIndex).
    """
    data = config["data"]
    # A table read from a file is numbered so already; a DataFrame from a
    # notebook splits as its fresh-index twin does.
    frame = frame.reset_index(drop=True)
    method = data.get("split", "suffix")
    holdout: Splitter
    carve: Splitter
    if method in ("suffix", "none"):
        holdout, carve = (
            functools.partial(
                suffix_split, suffixes=data[key], id_column=data["id"]
            )
            for key in ("test_suffixes", "validation_suffixes")
        )
        fix = (
            f"check data.id ({data['id']!r}) and data.test_suffixes / "
            "data.validation_suffixes"
        )
        if data["id"] and data["id"] in frame:
            ids = frame[data["id"]].astype(str)
            if not ids.str.endswith(tuple(data["test_suffixes"])).any():
                # Baker names as ids: no id ends in a test suffix's digit.
                fix = (
                    f"no value of data.id ({data['id']!r}, e.g. "
                    f"{str(frame[data['id']].iloc[0])!r}) ends in a "
                    f"test suffix {list(data['test_suffixes'])}: the id "
                    'must be a row number. Set data.id = "" (the row '
                    'number), or data.split = "random"'
                )
        if method == "none":
            holdout = SplitRule("none").hold_out
    else:
        rule = split_rule(data, texts=True)
        holdout, carve = rule.hold_out, rule.carve
        fix = (
            f"check data.split_column ({data['split_column']!r})"
            if method == "column"
            else "use more rows or another data.test_fraction"
        )
    tuning = config["evaluate"]["split"] == "validation"
    train, test = evaluation_split(frame, holdout, carve, validation=tuning)
    # `valid` rows are part of `train` unless tuning. Tuning: they stop
    # training and are reported; no fit ever sees them (there is no refit).
    valid = test if tuning else carve(train)[1]
    for name, part in (
        ("training", train),
        ("test", test),
        ("validation", valid),
    ):
        if len(part) == 0 and not (name == "test" and method == "none"):
            raise ValueError(
                f"The {name} split of {row_count(len(frame))} is empty "
                f'(data.split = "{method}"). Fix: {fix}.'
            )
    return train, valid, test


def split_description(config: dict, train, test) -> dict:
    """metrics.json's `split`: the text kind's rule and rows per side."""
    data = config["data"]
    method = data.get("split", "suffix")
    if method not in ("suffix", "none"):
        return split_record(split_rule(data, texts=True), train, test)
    suffixes = {
        "method": "suffix",
        "id": data["id"],
        "test_suffixes": data["test_suffixes"],
        "validation_suffixes": data["validation_suffixes"],
    }
    if method == "none":
        del suffixes["test_suffixes"]
        suffixes = {"method": "none", "validation": suffixes}
    return {
        **suffixes,
        "train_rows": int(len(train)),
        "held_out_rows": int(len(test)),
    }


def _check_text_columns(frame, data):
    """Raises a `KeyError` naming the text, label or id columns `frame`
    lacks, and the keys that name them."""
    keys = ("text", "label", "id")
    missing = [
        (k, data.get(k)) for k in keys if data.get(k) and data[k] not in frame
    ]
    if missing:
        raise KeyError(
            f"Columns {[c for _, c in missing]} are missing from the text "
            f"table. Available columns: {list(frame.columns)}."
            f"{closest_columns([c for _, c in missing], frame.columns)} "
            "Fix: set "
            + ", ".join(f"data.{k}" for k, _ in missing)
            + " to the right column names."
        )


def prepare_text_data(config, frame=None, *, progress=False):
    """Loads, checks and splits the data; fits the text preprocessor.

    Args:
        config: dict. A validated `model.kind = "text"` config.
        frame: optional DataFrame; defaults to `config["data"]["source"]`.

    Returns:
        A `TextData`.
    """
    data = config["data"]
    frame = source_table(config, frame, progress=progress)
    config = with_written_features(config, frame)
    _check_text_columns(frame, data)
    check_texts(frame[data["text"]], data["text"], training=True)
    label = data["label"]
    classes = class_labels(frame[label], label, data["positive"])
    _warn_numeric_classes(classes, label, len(frame))
    train, valid, test = split_rows(frame, config)
    preprocessor = fit_preprocessor(
        feature_specs(config), train[[data["text"]]], progress=progress
    )
    return TextData(classes, train, valid, test, preprocessor)


def class_ids(prepared, labels):
    """Class indices (`int32`) of a Series of labels.

    Raises:
        ValueError: naming the first label (empty, or no class of the
            model: `recsys evaluate --rescore --data` of another table)
            and its row; training reads its classes off the whole table.
    """
    index = {str(c): i for i, c in enumerate(prepared.classes)}
    ids = labels.map(lambda v: index.get(str(v), -1) if pd.notna(v) else -1)
    unknown = ids.to_numpy() < 0
    if unknown.any():
        row = labels.index[unknown][0]
        value = labels[row]
        what = "an empty label" if pd.isna(value) else f"{value!r}"
        raise ValueError(
            f"Label column '{labels.name}' holds {what} (row {row}; "
            f"{int(unknown.sum()):,} rows in all) that is no class of this "
            f"model: {[str(c) for c in prepared.classes][:20]}. Fix: drop "
            "those rows, or train on a table that holds the class."
        )
    return ids.to_numpy().astype(np.int32)


def encode(prepared, frame, config):
    """`(token_ids, class_ids)` of a split."""
    data = config["data"]
    ids = prepared.preprocessor.transform_column(
        data["text"], frame[data["text"]]
    )
    return ids, class_ids(prepared, frame[data["label"]])


def architectures(config):
    """The architectures of `model.architecture`: one, or an ensemble's.

    `"conv1d+flatten"` names an ensemble of a `"conv1d"` and a `"flatten"`
    model (`recsys.models.TextEnsemble`).
    """
    return config["model"]["architecture"].split("+")


def build_text_classifier(prepared, config, architecture=None):
    """The compiled `TextClassifier` that `config` describes.

    Pretrained vectors (`model.embeddings` a file path) are aligned with the
    vocabulary; words the file lacks start random.

    Args:
        prepared: the `TextData`.
        config: dict. The run config.
        architecture: str or None. One member's architecture; defaults to
            `model.architecture` (a single model's).

    Returns:
        `(model, coverage)`: coverage is the share of the vocabulary found
        in the vector file, or None for random embeddings.
    """
    model_config, train = config["model"], config["train"]
    name = config["data"]["text"]
    feature = prepared.preprocessor.feature(name)
    # Before Keras allocates it: a hashed text of 200M buckets tried 51 GB
    # and ended out of memory naming every setting but num_buckets.
    check_table_memory(
        [
            {
                "name": name,
                "type": "embedding",
                "input_dim": prepared.preprocessor.input_dim(name),
                "output_dim": model_config["embedding_dim"],
            }
        ],
        optimizer=train["optimizer"],
    )
    model = TextClassifier(
        input_dim=prepared.preprocessor.input_dim(name),
        sequence_length=feature.sequence_length,
        embedding_dim=model_config["embedding_dim"],
        architecture=architecture or model_config["architecture"],
        num_classes=len(prepared.classes),
        trainable_embeddings=model_config["trainable"],
        lstm_units=model_config["lstm_units"],
        conv_filters=model_config["conv_filters"],
        kernel_size=min(model_config["kernel_size"], feature.sequence_length),
        dropout=model_config["dropout"],
    )
    coverage = None
    if model_config["embeddings"] != "random":
        matrix, coverage = embedding_matrix(
            prepared.preprocessor,
            name,
            model_config["embeddings"],
            format=model_config["vectors_format"],
            seed=train["seed"],
        )
        if matrix.shape[1] != model_config["embedding_dim"]:
            raise VectorFileError(
                f"Vectors in {model_config['embeddings']} have dimension "
                f"{matrix.shape[1]}, but model.embedding_dim is "
                f"{model_config['embedding_dim']}. Fix: --set "
                f"model.embedding_dim={matrix.shape[1]}."
            )
        model.set_embeddings(matrix)
    metrics = []
    if len(prepared.classes) == 2:
        metrics = [keras.metrics.AUC(name="auc")]
    model.sparse_updates = train["sparse_updates"]
    model.compile(
        optimizer=make_optimizer(train["optimizer"], train["learning_rate"]),
        loss=model.default_loss(),
        metrics=metrics,
    )
    return model, coverage


def fit_text_classifier(
    prepared: TextData,
    config: dict,
    progress: bool = True,
    epoch_end: Callable[[int, dict], Any] | None = None,
) -> tuple[keras.Model, float | None, dict]:
    """Early stopping on the validation rows, then a refit on all of train.

    An ensemble (`model.architecture = "conv1d+flatten"`) trains each
    member so, one after the other, member `i` from seed `train.seed + i`,
    and averages them (`TextEnsemble`).

    Args:
        prepared: the `TextData`.
        config: dict. The run config.
        progress: bool. Keras' progress output.
        epoch_end: callable `(epoch, metrics)` or None, called with `{}`
            after each epoch of each fit (`EpochEnd`).

    Returns:
        `(model, coverage, timing)`: the trained model, the pretrained
        vectors' coverage (or None) and a dict of epochs and seconds.
    """
    train = config["train"]
    started = time.perf_counter()
    x_train, y_train = encode(prepared, prepared.train, config)
    fit_data, validation_data = None, None
    if len(prepared.valid):
        # By row number (`split_rows`): the index labels are unique.
        fit_rows = ~prepared.train.index.isin(prepared.valid.index)
        fit_data = (x_train[fit_rows], y_train[fit_rows])
        validation_data = encode(prepared, prepared.valid, config)
    names = architectures(config)
    members, runs = [], []
    callbacks = [] if epoch_end is None else [EpochEnd(epoch_end)]
    for i, architecture in enumerate(names):
        model, coverage, run = _fit_member(
            prepared,
            config,
            architecture,
            (fit_data, validation_data, (x_train, y_train)),
            seed=train["seed"] + i,
            progress=progress,
            callbacks=callbacks,
        )
        members.append(model)
        runs.append(run)
    timing: dict[str, Any] = {
        "seconds": round(time.perf_counter() - started, 2),
        "train_rows": int(len(x_train)),
        "backend": keras.backend.backend(),
    }
    if len(members) == 1:
        return members[0], coverage, {**timing, **runs[0]}
    timing.update(
        epochs=[run["epochs"] for run in runs],
        refit=runs[0]["refit"],
        members=[
            {"architecture": a, **run}
            for a, run in zip(names, runs, strict=True)
        ],
    )
    return TextEnsemble(members), coverage, timing


def _fit_member(
    prepared, config, architecture, data, *, seed, progress, callbacks
):
    """`fit_then_refit` of one `TextClassifier`: `(model, coverage, run)`."""
    train = config["train"]
    fit_data, validation_data, train_data = data
    binary = len(prepared.classes) == 2
    built = {}

    def build(part):
        # The vectors' coverage is the same for both builds: keep the last.
        model, built["coverage"] = build_text_classifier(
            prepared, config, architecture
        )
        return model

    monitor = "val_auc" if binary else "val_loss"
    result = fit_then_refit(
        build,
        fit_data,
        validation_data,
        train_data,
        epochs=train["epochs"],
        patience=train["patience"],
        monitor=monitor,
        mode="max" if binary else "min",
        # Tuning reports the validation rows: no fit may see them.
        refit=train["refit"] and config["evaluate"]["split"] != "validation",
        seed=seed,
        batch_size=train["batch_size"],
        verbose=keras_verbosity(progress),
        callbacks=callbacks,
    )
    run: dict[str, Any] = {
        "epochs": result.best_epoch,
        "refit": result.refitted,
    }
    if result.history is not None:
        run["validation_curve"] = [
            round(float(v), 4) for v in result.history[monitor]
        ]
    return result.model, built["coverage"], run


def _warn_one_class(labels, config):
    """`warn_one_class` where the evaluated rows hold one class, with a fix
    for the split used."""
    if not len(labels) or labels.nunique() > 1:
        return
    data = config["data"]
    method = data.get("split", "suffix")
    tuning = config["evaluate"]["split"] == "validation"
    if method in ("suffix", "none"):
        key = "validation_suffixes" if tuning else "test_suffixes"
        fix = f'other data.{key}, or data.split = "random"'
    elif method == "random":
        fix = (
            "more rows, a larger data.test_fraction or another data.split_seed"
        )
    else:
        mark = "validation" if tuning else "test"
        fix = f"mark rows of every class \"{mark}\" in '{data['split_column']}'"
    warn_one_class(len(labels), data["label"], labels.iloc[0], method, fix)


def _split_metrics(fitted, prepared, config, progress):
    """The model's, the class shares' and the baselines' metrics on the
    evaluated split (`TextKind.evaluate`)."""
    split = config["evaluate"]["split"]
    _warn_one_class(prepared.test[config["data"]["label"]], config)
    x_test, y_test = encode(prepared, prepared.test, config)
    probabilities = fitted.model.predict(x_test, verbose=0)
    fitted.state["split_predictions"] = (y_test, probabilities)
    metrics: dict[str, Any] = {
        split: classification_metrics(y_test, probabilities)
    }
    metrics[split]["seconds"] = fitted.timing["seconds"]
    text, label = config["data"]["text"], config["data"]["label"]
    train_ids = class_ids(prepared, prepared.train[label])
    shares = class_shares(train_ids, len(prepared.classes))
    metrics["class_shares"] = classification_metrics(
        y_test, np.tile(shares, (len(y_test), 1))
    )
    metrics.update(
        run_baselines(
            config["evaluate"]["baselines"],
            prepared.train[text].tolist(),
            train_ids,
            prepared.test[text].tolist(),
            y_test,
            len(prepared.classes),
            progress=progress,
        )
    )
    return metrics


class TextKind(ModelKind):
    """`model.kind = "text"`: a text column -> a class.

    Attributes:
        epoch_end: callable `(epoch, metrics)` or None. Set on an instance
            to be called after each epoch (`metrics` empty:
            `fit_text_classifier`); `recsys tune` stops a trial past its
            time budget with it. Defaults to `None`.
    """

    name = "text"
    reads_init_features = True

    def prepare(self, config, frame=None, *, progress=True):
        return prepare_text_data(config, frame, progress=progress)

    def fit(self, prepared, config, *, output=None, progress=True):
        model, coverage, timing = fit_text_classifier(
            prepared, config, progress, self.epoch_end
        )
        return Fitted(model, timing, {"coverage": coverage})

    def evaluate(self, fitted, exported, prepared, config, *, progress=True):
        # No held-out rows (`data.split = "none"`): no metrics, no baselines.
        metrics = (
            {"note": NO_TEST_NOTE}
            if holds_out_nothing(config)
            else _split_metrics(fitted, prepared, config, progress)
        )
        metrics["split"] = split_description(
            config, prepared.train, prepared.test
        )
        metrics["train"] = fitted.timing
        coverage = fitted.state["coverage"]
        if coverage is not None:
            metrics["pretrained_coverage"] = round(float(coverage), 4)
        return metrics

    def write(self, output, fitted, exported, prepared, config, metrics):
        return write_text_bundle(
            output,
            config=config,
            metrics=metrics,
            preprocessor=prepared.preprocessor,
            model=fitted.model,
            classes=prepared.classes,
        )

    def summary(self, metrics, config):
        return summary(metrics, config)

    def rescore(self, bundle, frame=None):
        check_held_out(bundle)
        config = bundle.config
        frame = source_table(config, frame)
        data = config["data"]
        _check_text_columns(frame, data)
        _, _, test = split_rows(frame, config)
        return classification_metrics(
            class_ids(bundle, test[data["label"]]),
            bundle.predict_proba(test[data["text"]]),
        )


def summary(metrics, config):
    """What `recsys train` prints: the model beside each baseline (a run
    that held out no rows, `data.split = "none"`: its note)."""
    split = config["evaluate"]["split"]
    lines = no_test_lines(metrics, split) or _metric_lines(metrics, config)
    train = metrics["train"]
    epochs = train["epochs"]
    capped = epoch_cap_note(
        epochs if isinstance(epochs, list) else [epochs],
        config.get("train", {}).get("epochs"),
    )
    unit = "epoch" if epochs == 1 else "epochs"
    if isinstance(epochs, list):  # an ensemble's members, in order
        epochs = " + ".join(str(e) for e in epochs)
    lines.append(
        f"training: {epochs} {unit} (early stopping on validation"
        f"{', then refit on all training rows' if train['refit'] else ''}), "
        f"{train['seconds']:.1f} s ({train['backend']} backend)"
    )
    if "pretrained_coverage" in metrics:
        lines.append(
            f"pretrained vectors cover {metrics['pretrained_coverage']:.1%} "
            "of the vocabulary"
        )
    return "\n".join(lines + capped)


def _metric_lines(metrics, config):
    """`summary`'s table of the evaluated split, and the notes under it."""
    split = config["evaluate"]["split"]
    rows = [("model", metrics[split])] + [
        (name.removeprefix("baseline_"), value)
        for name, value in metrics.items()
        if name.startswith("baseline_")
    ]
    lines = [
        f"{config['model']['architecture']} text classifier on the {split} "
        f"split ({metrics[split]['num_examples']} texts):",
        f"{'':<12}{'accuracy':>10}{'auc':>10}{'logloss':>10}{'seconds':>10}",
    ]
    for name, value in rows:
        lines.append(
            f"{name:<12}{value['accuracy']:>10.4f}{value['auc']:>10.4f}"
            f"{value['logloss']:>10.4f}{value['seconds']:>10.1f}"
        )
    lines += baselines_ahead_note(metrics, split, "auc")
    return (
        lines
        + class_shares_note(metrics, split)
        + skipped_baselines_lines(metrics)
        + [""]
    )
