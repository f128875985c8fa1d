"""From an interactions table to an evaluated, indexed bundle.

`TwoTowerKind` is what `recsys train` and `recsys evaluate` run for
`model.kind = "two_tower"`; both split the data exactly as PROTOCOL.md says.
Its steps are functions too (`prepare_data`, `build_two_tower`,
`fit_two_tower`, `embed_catalog_and_users`), for a benchmark that times one.
"""

import dataclasses
import functools
import json
import logging
import time

import keras
import numpy as np
import pandas as pd

from recsys.baselines.retrieval import EASE_MAX_ITEMS
from recsys.baselines.retrieval import fit_retrieval_baselines
from recsys.bundles.two_tower import Bundle
from recsys.bundles.two_tower import write_bundle
from recsys.config import feature_specs
from recsys.config.common import NO_TIME
from recsys.config.features import table_header
from recsys.config.two_tower import DEFAULT_BASELINES
from recsys.data.profile_batches import ProfileBatches
from recsys.data.retrieval_inputs import catalog
from recsys.data.retrieval_inputs import check_columns
from recsys.data.retrieval_inputs import check_interactions
from recsys.data.retrieval_inputs import item_inputs
from recsys.data.retrieval_inputs import parse_times
from recsys.data.retrieval_inputs import positive_rows
from recsys.data.retrieval_inputs import training_inputs
from recsys.data.retrieval_inputs import user_states
from recsys.data.retrieval_inputs import values_per_item
from recsys.data.split import NO_TEST_NOTE
from recsys.data.split import holds_out_nothing
from recsys.data.split import split_record
from recsys.data.split import split_rule
from recsys.data.split import split_table
from recsys.evaluation.retrieval import REPEATS_NOTED
from recsys.evaluation.retrieval import choosing_cutoff
from recsys.evaluation.retrieval import choosing_metric
from recsys.evaluation.retrieval import evaluate_beside_popularity
from recsys.evaluation.retrieval import evaluated_ks
from recsys.evaluation.retrieval import popularity_scores
from recsys.evaluation.retrieval import ranking_metric_names
from recsys.evaluation.retrieval import repeat_share
from recsys.features import Preprocessor
from recsys.index import BruteForceIndex
from recsys.index import build_index_from_config
from recsys.index.recall import index_metrics
from recsys.index.scann_index import SCANN_MIN_ITEMS
from recsys.kinds import two_tower_streamed as streamed
from recsys.kinds.base import Fitted
from recsys.kinds.base import ModelKind
from recsys.kinds.base import baselines_ahead_note
from recsys.kinds.base import check_held_out
from recsys.kinds.base import check_rescored
from recsys.kinds.base import fit_preprocessor
from recsys.kinds.base import no_test_lines
from recsys.kinds.base import source_table
from recsys.logs import progress_bar
from recsys.second_stage import fit_second_stage
from recsys.second_stage import skip_reason
from recsys.training.checkpoint import table_identity
from recsys.training.checkpoint import training_checkpoint
from recsys.training.distribution import distribution_from_config
from recsys.training.distribution import distribution_scope
from recsys.training.distribution import process_count
from recsys.training.distribution import process_share
from recsys.training.distribution import shardable
from recsys.training.embed import bundle_arrays
from recsys.training.precision import precision_scope
from recsys.training.refit import EpochEnd
from recsys.training.refit import epoch_cap_note
from recsys.training.two_tower import build_two_tower
from recsys.training.two_tower import fit_two_tower

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PreparedData:
    """Everything a two-tower run derives from its interactions table.

    Attributes:
        config: the run config.
        frame: the full interactions table.
        train, test: the protocol split (test is the validation split when
            `evaluate.split = "validation"`).
        items: the catalog, one row per item, sorted by item id.
        preprocessor: the `Preprocessor` fitted on `train`.
        item_inputs: candidate-tower inputs of every catalog item.
        inputs: one training row per interaction of `train`.
        users: known users' query inputs and seen items (`user_states`).
    """

    config: dict
    frame: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    preprocessor: Preprocessor
    item_inputs: dict
    inputs: dict
    users: dict


def split_for_evaluation(frame, config):
    """`(train, test)` by `data.split`; the validation carve on request."""
    data = config["data"]
    # A bundle written before `data.time_format` existed has ISO times.
    frame = parse_times(frame, data["time"], data.get("time_format", "ISO8601"))
    return split_table(
        frame,
        split_rule(data),
        validation=config["evaluate"]["split"] == "validation",
    )


def prepare_data(config, frame=None, *, progress=False):
    """Loads, validates and splits the data; fits the preprocessor.

    Args:
        config: dict. A validated config (`recsys.config.load_config`).
        frame: optional DataFrame of interactions; defaults to
            `config["data"]["source"]`.

    Returns:
        A `PreparedData`.
    """
    data = config["data"]
    frame = checked_interactions(
        config, source_table(config, frame, progress=progress)
    )
    display = [data["display"]] if data["display"] else []
    names = [spec.name for spec in feature_specs(config)]
    check_columns(frame, names + display)
    train, test = split_for_evaluation(frame, config)
    _warn_short_users(train, test, data)
    _warn_varying_item_features(frame, data["item"], config["model"])
    _warn_unread_features(config)
    return prepared_parts(config, frame, train, test, progress=progress)


def _warn_unread_features(config):
    """Warns of `[features.<name>]` tables neither tower reads: declared
    beside towers left to their defaults (the user and the item ids), they
    would otherwise be fitted and ignored without a word. The user id's
    table is not one: a query of the history alone leaves it out on
    purpose (`recsys tune`'s profile trial, `model.query_features = []`)."""
    model = config["model"]
    towers = model["query_features"] + model["candidate_features"]
    unread = [
        name
        for name in config["features"]
        if name not in towers and name != config["data"]["user"]
    ]
    if unread:
        tables = ", ".join(table_header(name) for name in unread)
        logger.warning(
            "%s %s read by neither tower (model.query_features = %s, "
            "model.candidate_features = %s): add %s to one of them (a "
            "candidate feature describes the item, a query feature the "
            "user), or remove %s.",
            tables,
            "are" if len(unread) > 1 else "is",
            model["query_features"],
            model["candidate_features"],
            " / ".join(f'"{name}"' for name in unread),
            "the tables" if len(unread) > 1 else "the table",
        )


def checked_interactions(config, frame):
    """The rows of `frame` that count as interactions (`positive_rows`),
    their id and time columns checked (`check_interactions`)."""
    data = config["data"]
    return check_interactions(
        positive_rows(frame, data),
        user=data["user"],
        item=data["item"],
        time=data["time"],
        time_format=data["time_format"],
    )


def carve_repeat_share(config, frame, *, second_stage=False):
    """`repeat_share` of the validation carve a `recsys tune` trial is
    scored on: the same share early stopping and the baselines read.

    Args:
        config: dict. A validated two-tower config.
        frame: DataFrame. The whole table (`source_table`'s).
        second_stage: bool. Of the carve a trial's second stage fits on
            instead (a carve of the trial's training rows), whose share
            `skip_reason` reads. Defaults to `False`.

    Returns:
        float. The share of the carve's held-out rows that repeat a pair of
        its fit rows (0 for an empty carve).
    """
    evaluate = {**config["evaluate"], "split": "validation"}
    fit_rows, held = split_for_evaluation(
        checked_interactions(config, frame), {**config, "evaluate": evaluate}
    )
    if second_stage:
        fit_rows, held = split_rule(config["data"]).carve(fit_rows)
    if not (len(fit_rows) and len(held)):
        return 0.0
    return repeat_share(fit_rows, held, **_ids(config))


def _warn_short_users(train, test, data):
    """Warns when the per-user split holds out far more than
    `data.test_fraction`: each user keeps out at least one row, so users
    of one row are held out whole and meet the model cold."""
    if split_rule(data).method != "user_time":
        return
    rows = len(train) + len(test)
    share = len(test) / rows
    if share < 1.5 * data["test_fraction"]:
        return
    users = test[data["user"]].unique()
    cold = np.count_nonzero(~pd.Index(users).isin(train[data["user"]]))
    logger.warning(
        'data.split = "user_time" held out %.0f%% of the %s rows '
        "(data.test_fraction = %s): each user keeps out at least one row, "
        "and %s of the %s held-out users have no training row (cold: "
        "their id was never learnt). Fix: a user column with more rows "
        'per user, or a global split (data.split = "time" or "random").',
        100 * share,
        f"{rows:,}",
        data["test_fraction"],
        f"{cold:,}",
        f"{len(users):,}",
    )


def _warn_varying_item_features(frame, item, model):
    """Warns of candidate features that differ between an item's rows: the
    catalog keeps each item's first row (`catalog`), the rest are unread."""
    names = [n for n in model["candidate_features"] if n != item]
    if not names:
        return
    counts = values_per_item(frame, item, names)
    for name in names:
        varying = counts[name][counts[name] > 1]
        if len(varying):
            logger.warning(
                "Candidate feature '%s' has several values within %s of %s "
                "items (item %r: %d values); the candidate tower reads one "
                "per item, from its first row in the table. Fix: a column "
                "describing the item (one value each), or leave '%s' out "
                "of model.candidate_features.",
                name,
                f"{len(varying):,}",
                f"{len(counts):,}",
                varying.index.tolist()[0],  # 296, not np.int64(296)
                int(varying.iloc[0]),
                name,
            )


def check_index_kind(config, num_items):
    """Raises `ValueError` before training where `index.kind = "scann"`
    cannot index the catalog (the index said so after training).

    Args:
        config: dict. A two-tower config.
        num_items: int. Items in the catalog.
    """
    if config["index"]["kind"] == "scann" and num_items < SCANN_MIN_ITEMS:
        raise ValueError(
            f'index.kind = "scann" needs at least {SCANN_MIN_ITEMS} items; '
            f'this catalog has {num_items:,}. Fix: index.kind = "auto" '
            '(exact search for small catalogs) or "brute_force".'
        )


def prepared_parts(config, frame, train, test, *, progress=False):
    """`prepare_data` of a checked `frame` already split into `train` and
    `test` (an early-stopping carve of a run's training rows)."""
    data, model = config["data"], config["model"]
    user, item, time = data["user"], data["item"], data["time"]
    specs = feature_specs(config)
    items = catalog(frame, item)
    check_index_kind(config, len(items))
    preprocessor = fit_preprocessor(specs, train, progress=progress)
    common = {
        "user": user,
        "item": item,
        "query_features": model["query_features"],
        "history_length": model["history_length"],
        # A bundle written before `model.history` existed: the latest items.
        "history": model.get("history", "latest"),
    }
    items_x = item_inputs(preprocessor, items, model["candidate_features"])
    return PreparedData(
        config=config,
        frame=frame,
        train=train,
        test=test,
        items=items,
        preprocessor=preprocessor,
        item_inputs=items_x,
        inputs=training_inputs(
            preprocessor, train, items, items_x, time=time, **common
        ),
        users=user_states(preprocessor, train, items, **common),
    )


def _profile_history(config):
    model = config["model"]
    return model["history_length"] and model.get("history") == "profile"


def profile_batches(prepared: PreparedData, batch_size: int) -> ProfileBatches:
    """The training rows with a new profile history each epoch.

    Args:
        prepared: the run's `PreparedData` (`model.history = "profile"`).
        batch_size: int. Rows per batch.

    Returns:
        A `ProfileBatches` over `prepared.inputs`. (With a distribution the
        arrays are fed as they are: their history was drawn once.)
    """
    config = prepared.config
    user, item = config["data"]["user"], config["data"]["item"]
    return ProfileBatches(
        prepared.inputs,
        prepared.train[user].to_numpy(),
        prepared.preprocessor.transform_column(item, prepared.train[item]),
        config["model"]["history_length"],
        batch_size,
        seed=config["train"]["seed"],
    )


def embed_catalog_and_users(
    model: keras.Model, prepared: PreparedData
) -> dict[str, np.ndarray]:
    """The arrays of a bundle: item and known-user vectors, popularity, seen.

    Args:
        model: a trained `TwoTower`.
        prepared: the run's `PreparedData`.

    Returns:
        dict of numpy arrays, keyed as `recsys.bundles.two_tower.ARRAYS`.
    """
    item = prepared.config["data"]["item"]
    item_ids = prepared.items[item].to_numpy()
    popularity = popularity_scores(prepared.train[item].to_numpy(), item_ids)
    return bundle_arrays(
        model,
        item_ids=item_ids,
        item_inputs=prepared.item_inputs,
        item_popularity=(popularity / len(prepared.train)).astype(np.float32),
        user_ids=prepared.users["users"],
        user_inputs=prepared.users["inputs"],
        seen_indptr=prepared.users["seen_indptr"],
        seen_items=prepared.users["seen_items"],
    )


def _item_columns(config, items):
    data = config["data"]
    names = [data["item"], data["display"]]
    return [c for c in dict.fromkeys(names) if c and c in items]


def unwritten_bundle(config, exported):
    """A `Bundle` that was never written, for evaluation during training.

    Args:
        config: dict. The run config.
        exported: dict. A two-tower kind's export: `arrays`, `items`,
            `preprocessor` and (optionally) `index`; exact search without.
    """
    arrays = exported["arrays"]
    return Bundle(
        None,
        {"config": config},
        exported["preprocessor"],
        exported["items"],
        arrays,
        exported.get("index") or BruteForceIndex(arrays["item_embeddings"]),
    )


def in_memory_bundle(prepared, arrays, index=None):
    """`unwritten_bundle` of an in-memory run's `PreparedData`."""
    items = prepared.items[_item_columns(prepared.config, prepared.items)]
    return unwritten_bundle(
        prepared.config,
        {
            "arrays": arrays,
            "items": items,
            "preprocessor": prepared.preprocessor,
            "index": index,
        },
    )


def evaluate_bundle(
    bundle: Bundle,
    frame: pd.DataFrame,
    config: dict,
    train: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
    *,
    progress: bool = False,
) -> dict[str, dict]:
    """HR@k of `bundle` and of its baselines on the evaluated split.

    Popularity is always scored; `evaluate.baselines` adds EASE and item-kNN
    (`recsys.baselines.retrieval`), fitted on `train` with their settings
    chosen on its validation carve, never on `test`; the default baselines
    add `"repeat"` where a fifth or more of that carve repeats a pair.

    Args:
        bundle: `Bundle`.
        frame: the full interactions table.
        config: the run config (data columns, evaluation split, ks and
            baselines).
        train, test: the split, if already computed.
        progress: bool. A bar of the users scored, for each scorer.

    Returns:
        dict with the split's name (`"test"` or `"validation"`),
        `"baseline_popularity"` and `"baseline_<name>"` for each fitted
        baseline, each a dict of HR@k metrics; with EASE or item-kNN asked
        for, `"baselines"`: each one's chosen setting, or why it was
        skipped.
    """
    data, evaluate = config["data"], config["evaluate"]
    if train is None or test is None:
        train, test = split_for_evaluation(frame, config)
    train_items = train[data["item"]].to_numpy()
    ks = evaluated_ks(evaluate["ks"], len(bundle.item_ids))
    # A bundle written before `evaluate.baselines` existed: popularity only.
    names = [n for n in evaluate.get("baselines", []) if n != "popularity"]
    if set(evaluate.get("baselines", [])) == set(DEFAULT_BASELINES):
        # Where users come back to their items (on the training part's own
        # carve), their own items are the baseline to beat: EASE's zero
        # diagonal ranks them last (rodents' HR@1 0.0011, random 0.021).
        fit_rows, held = split_rule(data).carve(train)
        if len(held) and (
            repeat_share(fit_rows, held, **_ids(config)) >= REPEATS_NOTED
        ):
            names.append("repeat")
    scorers, details = fit_retrieval_baselines(
        names,
        train,
        user=data["user"],
        item=data["item"],
        candidates=bundle.item_ids,
        carve=split_rule(data).carve,
        k=choosing_cutoff(ks, len(bundle.item_ids)),
        ease_max_items=evaluate.get("ease_max_items", EASE_MAX_ITEMS),
        # Without times there is no recency to weigh (ease_recent skipped).
        time_column="" if data["time"] == NO_TIME else data["time"],
    )
    if bundle.ranked is not None:
        # The model without its second stage, beside it.
        first = functools.partial(bundle.score, ranked=False)
        scorers = {"first_stage": first, **scorers}
    metrics: dict[str, dict] = evaluate_beside_popularity(
        bundle.score,
        popularity_scores(train_items, bundle.item_ids),
        split=evaluate["split"],
        baselines=scorers,
        candidates=bundle.item_ids,
        test_users=test[data["user"]].to_numpy(),
        test_items=test[data["item"]].to_numpy(),
        train_users=train[data["user"]].to_numpy(),
        train_items=train_items,
        ks=ks,
        progress=progress,
    )
    if names:
        metrics["baselines"] = details
    return metrics


class EpochScores(keras.callbacks.Callback):
    """Scores the evaluated split after every epoch but the last.

    `recsys tune` prunes a bad trial on these scores (the last epoch is
    scored by the run's own evaluation, so it is not scored twice).

    Args:
        report: callable `(epoch, metrics)`, `epoch` counted from 1 and
            `metrics` the split's HR@k (`evaluate_bundle`'s split entry).
            It may raise to stop training (e.g. `optuna.TrialPruned`).
        model: the `TwoTower` being fitted.
        prepared: the run's `PreparedData`.
        config: the run config (`train.epochs`, `evaluate`).
    """

    def __init__(self, report, model, prepared, config):
        super().__init__()
        self._report = report
        self._two_tower = model
        self._prepared = prepared
        self._config = config

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self._config["train"]["epochs"]:
            return
        scores = model_scores(self._two_tower, self._prepared, self._config)
        self._report(epoch + 1, scores)


def model_scores(model, prepared, config):
    """HR@k of the model being fitted on `prepared`'s held-out rows, alone
    (no baselines): the evaluated split's entry of `evaluate_bundle`."""
    arrays = embed_catalog_and_users(model, prepared)
    config = {**config, "evaluate": {**config["evaluate"], "baselines": []}}
    metrics = evaluate_bundle(
        in_memory_bundle(prepared, arrays),
        prepared.frame,
        config,
        prepared.train,
        prepared.test,
    )
    return metrics[config["evaluate"]["split"]]


def _ids(config):
    """`{"user", "item"}` columns of a run's `[data]`."""
    return {"user": config["data"]["user"], "item": config["data"]["item"]}


class BestEpoch(keras.callbacks.Callback):
    """Scores every epoch on a held-out carve; stops after `patience`
    epochs without a better score.

    Args:
        model: the `TwoTower` being fitted.
        prepared: `PreparedData` whose held-out rows are the carve.
        config: the run config.
        metric: str. The HR@k key to maximize (e.g. `"hr@10_filtered"`).
        patience: int. Epochs without a better score before stopping.
        epoch_end: callable `(epoch, metrics)` or None, called after each
            epoch: `recsys tune` stops a trial past its time budget there
            (the epochs of this search count against it as the run's do).
            Defaults to `None`.
        keep_best: bool. Keep the best epoch's weights (`best_weights`):
            the search's model at its best epoch is then the run's (its
            held-out rows are the run's evaluated ones) or the second
            stage's carve model. Defaults to `False`.
        report_best: bool. Pass `epoch_end` the best epoch's scores so far
            (with `keep_best` where the search is the run's training: what
            a trial would score if stopped at an epoch is its best so far).
            Otherwise `epoch_end` gets `{}` (the run's own epochs,
            `EpochScores`, report theirs; a second stage's run reports
            none). Defaults to `False`.
    """

    def __init__(
        self,
        model,
        prepared,
        config,
        metric,
        patience,
        epoch_end=None,
        keep_best=False,
        report_best=False,
    ):
        super().__init__()
        self._two_tower = model
        self._prepared = prepared
        self._config = config
        self.metric = metric
        self.patience = patience
        self._epoch_end = epoch_end
        self._keep_best = keep_best
        self._report_best = report_best
        self.scores: list[float] = []
        self.best_weights: list | None = None
        self._best_scores: dict = {}

    @property
    def best_epoch(self) -> int:
        """The first epoch (from 1) of the highest score."""
        return int(np.argmax(self.scores)) + 1

    def on_epoch_end(self, epoch, logs=None):
        scores = model_scores(self._two_tower, self._prepared, self._config)
        self.scores.append(round(float(scores[self.metric]), 6))
        if self.best_epoch == epoch + 1:
            if self._keep_best:
                self.best_weights = self._two_tower.get_weights()
            if self._report_best:
                self._best_scores = scores
        # Keras' `EarlyStopping` counting: `patience` epochs in a row
        # without a better score stop training (0: the first one).
        waited = epoch + 1 - self.best_epoch
        if waited and waited >= self.patience:
            self.model.stop_training = True
        if self._epoch_end is not None:
            self._epoch_end(epoch + 1, self._best_scores)


def choose_epochs(prepared, config, *, progress=True, epoch_end=None):
    """The number of epochs, chosen on a validation carve of the training
    split (`train.early_stopping`).

    The carve is the split rule's own (`SplitRule.carve`) applied to
    `prepared.train`, so the evaluated rows are never seen. A run that
    evaluates that carve (`evaluate.split = "validation"`: `recsys tune`'s
    trials) chooses on its evaluated rows, the same carve: a carve of the
    carve chose by its own noise (a trial refit 4 epochs and scored 0.588
    where its config, at the 2 epochs the carve itself picks, scores
    0.663), and tune replaced a config that tested better. The metric is
    the one `recsys tune` judges by (`choosing_metric`): filtered HR at
    the largest `evaluate.ks` up to a tenth of the catalog or 5, unfiltered
    on a table of repeats.

    Args:
        prepared: the run's `PreparedData`.
        config: the run config (`train.epochs` is the most, `train.patience`
            the epochs without a better score before stopping).
        progress: bool. Keras' per-epoch lines.
        epoch_end: callable `(epoch, metrics)` or None, after each epoch:
            the best epoch's scores so far where the search is the run's
            training (`"trained"` below), else `{}` (see `BestEpoch`).
            Defaults to `None`.

    Returns:
        dict with `"best_epoch"`, `"metric"`, `"scores"` (per epoch) and
        `"seconds"`; in a validation run on one device also `"weights_kept":
        True` and `"trained"`, `(model, timing)`: the search's model at its
        best epoch, which is what training for that many epochs on the same
        rows would give (and what the run then keeps, trained once). With
        `model.second_stage` in other runs, `"carve_model"`, `(carved,
        model)`: the carve's `PreparedData` and the search's model at its
        best epoch, the model the second stage is fitted with.
    """
    started = time.perf_counter()
    second_stage = bool(config["model"].get("second_stage"))
    if config["evaluate"]["split"] == "validation":
        keep = distribution_from_config(config) is None
        where = (
            "the evaluated validation rows",
            "its weights kept" if keep else "now trained on the same rows",
        )
        chosen, kept = _chosen_epochs(
            prepared,
            config,
            progress,
            started,
            where,
            epoch_end,
            keep,
            # With a second stage the run is scored on reranked lists,
            # which an epoch of the model alone does not predict.
            report=keep and not second_stage,
        )
        if kept is not None:
            chosen.update(weights_kept=True, trained=kept)
        return chosen
    fit_rows, held = split_rule(config["data"]).carve(prepared.train)
    if not (len(fit_rows) and len(held)):
        logger.warning(
            "train.early_stopping: the validation carve of %d training rows "
            "%s; training for train.epochs = %d.",
            len(prepared.train),
            "holds out none"
            if not len(held)
            else "holds out every row (each user has too few to keep one)",
            config["train"]["epochs"],
        )
        epochs = config["train"]["epochs"]
        return {"best_epoch": epochs, "metric": "", "scores": [], "seconds": 0}
    carved = prepared_parts(config, prepared.frame, fit_rows, held)
    # The second stage's carve model is this carve's, trained for the best
    # epochs: the search's at its best epoch (one training less). Kept only
    # where the second stage will run on this carve.
    keep = (
        second_stage
        and _second_stage_skip(config, prepared, fit_rows, held) is None
    )
    where = (
        "the validation carve",
        "now trained on the whole training split"
        + (", its weights kept for the second stage" if keep else ""),
    )
    chosen, kept = _chosen_epochs(
        carved, config, progress, started, where, epoch_end, keep
    )
    if kept is not None:
        chosen["carve_model"] = (carved, kept[0])
    return chosen


def _second_stage_skip(config, prepared, fit_rows, held):
    """Why `model.second_stage` cannot run on this carve of the training
    rows, or None (`recsys.second_stage.skip_reason`)."""
    return skip_reason(
        config,
        len(prepared.items),
        len(held),
        repeat_share(fit_rows, held, **_ids(config)) if len(held) else 0.0,
    )


def _chosen_epochs(
    carved, config, progress, started, where, epoch_end, keep, report=False
):
    """`choose_epochs` on `carved`'s training and held-out rows; `where`:
    `(held-out rows, what follows)`, as the log line names them;
    `keep`: keep the model at its best epoch; `report`: pass `epoch_end`
    the best scores so far (`BestEpoch`).

    Returns:
        `(chosen, kept)`: `choose_epochs`' dict, and `(model, timing)` of
        the search at its best epoch where `keep`, else None.
    """
    metric = choosing_metric(
        config["evaluate"]["ks"],
        len(carved.items),
        repeat_share(carved.train, carved.test, **_ids(config)),
    )
    model = build_two_tower(carved.preprocessor, config)
    scores = BestEpoch(
        model,
        carved,
        config,
        metric,
        config["train"]["patience"],
        epoch_end=epoch_end,
        keep_best=keep,
        report_best=report,
    )
    inputs = carved.inputs
    if _profile_history(config):
        inputs = profile_batches(carved, config["train"]["batch_size"])
    timing = fit_two_tower(
        model, inputs, config, callbacks=[scores], progress=progress
    )
    logger.info(
        "train.early_stopping: %s on %s by epoch %s; best epoch %d, %s.",
        metric,
        where[0],
        scores.scores,
        scores.best_epoch,
        where[1],
    )
    chosen = {
        "best_epoch": scores.best_epoch,
        "metric": metric,
        "scores": scores.scores,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if not keep:
        return chosen, None
    model.set_weights(scores.best_weights)
    return chosen, (model, timing)


class TwoTowerKind(ModelKind):
    """`model.kind = "two_tower"`: retrieval, an indexed bundle, HR@k.

    Interactions in memory run the steps below; a Parquet `data.path` is
    streamed (`recsys.kinds.two_tower_streamed`), never loaded whole.

    Attributes:
        epoch_end: callable `(epoch, metrics)` or None. Set on an instance
            to see the evaluated split's HR@k after each epoch but the last
            (`EpochScores`), or, in a validation run with early stopping
            whose search is its training, after every epoch of the search
            with the best epoch's scores so far (`BestEpoch`); `recsys
            tune` prunes trials with it. Not with `model.second_stage` (the
            run is scored on the reranked lists, an epoch on the model
            alone). Defaults to `None` (no per-epoch scoring).
    """

    name = "two_tower"
    epoch_end = None

    def train(
        self, config, output=None, *, frame=None, progress=True, write=True
    ):
        if config["data"]["path"] and frame is None:
            # Parquet shards are streamed, never loaded whole.
            return StreamedTwoTowerKind().train(
                config, output, progress=progress, write=write
            )
        return super().train(
            config, output, frame=frame, progress=progress, write=write
        )

    def prepare(self, config, frame=None, *, progress=True):
        keras.utils.set_random_seed(config["train"]["seed"])
        return prepare_data(config, frame, progress=progress)

    def fit(self, prepared, config, *, output=None, progress=True):
        early, carve_model = None, None
        if config["train"].get("early_stopping"):
            # On one device: the carve's batches are not sharded.
            with precision_scope(config):
                early = choose_epochs(
                    prepared,
                    config,
                    progress=progress,
                    epoch_end=self.epoch_end,
                )
            trained = early.pop("trained", None)
            if trained is not None:
                # A validation run: the search trained on these rows.
                model, timing = trained
                timing.update(
                    resumed_from=None,
                    early_stopping=early,
                    best_epoch=early["best_epoch"],
                )
                return Fitted(model, timing, {"checkpoint": None})
            carve_model = early.pop("carve_model", None)
            train = {**config["train"], "epochs": early["best_epoch"]}
            config = {**config, "train": train}
            keras.utils.set_random_seed(train["seed"])
        with (
            distribution_scope(config) as distribution,
            precision_scope(config),
        ):
            processes = process_count(distribution)
            # Checkpoints in a job directory: the same command resumes after
            # a kill. Not with several processes: each would resume from its
            # own latest checkpoint, and a kill between two processes' saves
            # would restart them at different steps.
            checkpoint = None
            if processes == 1 and output:
                # Of these training rows only: a changed table restarts.
                rows = table_identity(prepared.train)
                checkpoint = training_checkpoint(config, output, rows)
            elif processes > 1:
                logger.warning("%d processes: checkpoints are off.", processes)
            model = build_two_tower(prepared.preprocessor, config)
            batch_size = config["train"]["batch_size"]
            inputs, batch_size = process_share(
                shardable(prepared.inputs, distribution, batch_size),
                distribution,
                batch_size,
            )
            if distribution is None and _profile_history(config):
                inputs = profile_batches(prepared, batch_size)
            callbacks = [checkpoint] if checkpoint else []
            # With a second stage the run's score is the reranked lists,
            # which no epoch of the model alone compares with: no pruning,
            # but timed (`recsys tune`'s budget).
            if self.epoch_end is not None:
                scored = not holds_out_nothing(config) and not config[
                    "model"
                ].get("second_stage")
                callbacks.append(
                    EpochScores(self.epoch_end, model, prepared, config)
                    if scored
                    else EpochEnd(self.epoch_end)
                )
            timing = fit_two_tower(
                model,
                inputs,
                {
                    **config,
                    "train": {**config["train"], "batch_size": batch_size},
                },
                callbacks=callbacks,
                progress=progress,
            )
        # `fit_two_tower` counted this process's share of the rows.
        timing["train_rows"] *= processes
        timing["examples_per_second"] *= processes
        timing["resumed_from"] = checkpoint and checkpoint.resumed_from
        if early is not None:
            timing["early_stopping"] = early
            # As tabular and text runs say it (`recsys tune` reads it).
            timing["best_epoch"] = early["best_epoch"]
        state = {"checkpoint": checkpoint}
        if carve_model is not None:
            state["carve_model"] = carve_model
        return Fitted(model, timing, state)

    def export(self, fitted, prepared, config, *, progress=True):
        stages = progress_bar(
            total=2, desc="bundle", disable=not progress, leave=False
        )
        stages.set_postfix_str("embed items and users")
        arrays = embed_catalog_and_users(fitted.model, prepared)
        stages.update()
        if config["model"].get("second_stage"):
            stages.set_postfix_str("second stage")
            lists, fitted.state["second_stage"] = self._second_stage(
                fitted, prepared, config, arrays, progress=progress
            )
            if lists is not None:
                arrays.update(lists.arrays())
        stages.set_postfix_str("build index")
        # Tuned on the users' own query vectors (`index.recall_target`),
        # their seen items excluded as `recommend` excludes them.
        index = build_index_from_config(
            arrays["item_embeddings"],
            config["index"],
            progress=progress,
            queries=arrays["user_embeddings"],
            seen=(arrays["seen_indptr"], arrays["seen_items"]),
        )
        stages.update()
        stages.close()
        return {
            "arrays": arrays,
            "index": index,
            "items": prepared.items[_item_columns(config, prepared.items)],
            "preprocessor": prepared.preprocessor,
        }

    def _second_stage(self, fitted, prepared, config, arrays, *, progress):
        """`model.second_stage`: the model trained again on the training
        rows' validation carve (the run's epochs; the early-stopping
        search's model where it searched that carve), the second stage
        fitted on it (`recsys.second_stage`); `(lists, details)`."""
        started = time.perf_counter()
        # Taken off the state: the bundle's writing keeps no carve model.
        searched = fitted.state.pop("carve_model", None)
        fit_rows, held = split_rule(config["data"]).carve(prepared.train)
        reason = _second_stage_skip(config, prepared, fit_rows, held)
        if reason is not None:
            logger.warning("model.second_stage is skipped: %s", reason)
            return None, {"skipped": reason}
        if searched is not None:
            carved, model = searched
        else:
            carved, model = self._carve_model(
                fitted, prepared, config, fit_rows, held, progress=progress
            )
        # `recsys tune`'s clock between the stage's parts: a trial's
        # budget ended only at its epochs, and the stage after them ran
        # 168 s past it (mlmRev's star, 240 s).
        epochs = fitted.timing.get("best_epoch", config["train"]["epochs"])
        step = (
            None
            if self.epoch_end is None
            else functools.partial(self.epoch_end, epochs, {})
        )
        lists, details = fit_second_stage(
            carved,
            in_memory_bundle(carved, embed_catalog_and_users(model, carved)),
            prepared,
            in_memory_bundle(prepared, arrays),
            progress=progress,
            step=step,
        )
        details["seconds"] = round(time.perf_counter() - started, 1)
        return lists, details

    def _carve_model(
        self, fitted, prepared, config, fit_rows, held, *, progress
    ):
        """The carve's `PreparedData` and the model trained on its first
        part for the run's epochs: `(carved, model)`."""
        epochs = fitted.timing.get("best_epoch", config["train"]["epochs"])
        train = {**config["train"], "epochs": epochs, "early_stopping": False}
        carve_config = {**config, "train": train}
        keras.utils.set_random_seed(train["seed"])
        carved = prepared_parts(carve_config, prepared.frame, fit_rows, held)
        # A fresh kind: `recsys tune`'s `epoch_end` reports the run's
        # epochs, not the carve model's; it times them (a second stage's
        # run reports none).
        kind = type(self)()
        kind.epoch_end = self.epoch_end
        return carved, kind.fit(carved, carve_config, progress=progress).model

    def evaluate(self, fitted, exported, prepared, config, *, progress=True):
        arrays, index = exported["arrays"], exported["index"]
        split = split_record(
            split_rule(config["data"]), prepared.train, prepared.test
        )
        if holds_out_nothing(config):
            # No held-out rows: no metrics, and no baselines beside them.
            metrics: dict = {"note": NO_TEST_NOTE}
        else:
            metrics = evaluate_bundle(
                unwritten_bundle(config, exported),
                prepared.frame,
                config,
                prepared.train,
                prepared.test,
                progress=progress,
            )
            split["repeat_share"] = repeat_share(
                prepared.train, prepared.test, **_ids(config)
            )
        metrics["split"] = {**split, "items": len(prepared.items)}
        metrics["train"] = fitted.timing
        if "second_stage" in fitted.state:
            metrics["second_stage"] = fitted.state["second_stage"]
        metrics["index"] = index_metrics(
            index,
            arrays["user_embeddings"],
            (arrays["seen_indptr"], arrays["seen_items"]),
        )
        return metrics

    def write(self, output, fitted, exported, prepared, config, metrics):
        path = write_bundle(
            output,
            config=config,
            metrics=metrics,
            query_tower=fitted.model.query_tower,
            # Kept so `recsys index` can embed new items without a retrain.
            candidate_tower=fitted.model.candidate_tower,
            **exported,
        )
        if fitted.state["checkpoint"]:
            # The bundle is whole: nothing left to resume.
            fitted.state["checkpoint"].finish()
        return path

    def summary(self, metrics, config):
        return summary(metrics, config)

    def rescore(self, bundle, frame=None):
        """HR@k of the loaded bundle and of popularity, recomputed."""
        check_held_out(bundle)
        config = bundle.config
        if config["data"].get("path") and frame is None:
            return streamed.evaluate_streamed(bundle, progress=False)
        # Checked as training checked them: a table without the id or time
        # columns is told so by name.
        table = (
            f"data.source {config['data']['source']!r}"
            if frame is None
            else "The table passed (--data)"
        )
        frame = checked_interactions(config, source_table(config, frame))
        train, test = split_for_evaluation(frame, config)
        _other_rows_note(bundle, train, test, table)
        _check_catalog(bundle, test, config["data"]["item"], table, train)
        metrics: dict = evaluate_bundle(bundle, frame, config, train, test)
        _added_items_note(bundle)
        users = test[config["data"]["user"]].to_numpy()
        if len(users) and (bundle.user_rows(users) < 0).all():
            metrics["unknown_users"] = int(pd.unique(users).size)
        return metrics

    def evaluate_report(self, bundle, *, frame=None, rescore=False):
        """`recsys evaluate`: HR@k recomputed on the split, in the table
        `recsys train` printed (its training and index lines as stored)."""
        rescored = self.rescore(bundle, frame)
        if rescore:
            _check_reproduced(bundle, rescored)
        metrics = {**bundle.metrics, **rescored}
        if not {"train", "index"} <= set(metrics):
            # A bundle whose metrics were not written by `recsys train`.
            return json.dumps(metrics, indent=2)
        return self.summary(metrics, bundle.config)

    def evaluate_document(self, bundle, *, frame=None, rescore=False):
        """`recsys evaluate --json`: the metrics recomputed on the split."""
        rescored = self.rescore(bundle, frame)
        if rescore:
            _check_reproduced(bundle, rescored)
        return rescored


def _check_reproduced(bundle, rescored):
    """`recsys evaluate --rescore`: raises unless the split's recomputed
    HR@k are the stored ones, as for the other kinds (it was accepted and
    exited 0 on any numbers: a two-tower bundle is always re-scored)."""
    split = bundle.config.get("evaluate", {}).get("split", "test")
    stored, now = bundle.metrics.get(split), rescored.get(split)
    if isinstance(stored, dict) and isinstance(now, dict):
        check_rescored(bundle, stored, now)


def _other_rows_note(bundle, train, test, table):
    """Says where the table's split is not training's (its rows per side
    differ): a nightly job that refreshed data.source in place and
    evaluated yesterday's bundle got HR@10 0.39 instead of 0.33, rows the
    model trained on now held out, without a word."""
    if bundle.config["data"].get("path"):
        # Streamed: its split held out the last share of the time span,
        # this one the last share of the rows.
        return
    stored = bundle.metrics.get("split", {})
    then = (stored.get("train_rows"), stored.get("held_out_rows"))
    if None in then or then == (len(train), len(test)):
        return
    logger.warning(
        "%s splits into %s training and %s held-out rows, the bundle's "
        "training split into %s and %s: it is not the table the bundle "
        "was trained on, and these metrics are of other rows (some the "
        "model trained on may now be held out). Fix: evaluate on the "
        "training table (--data FILE), or retrain on this one.",
        table,
        f"{len(train):,}",
        f"{len(test):,}",
        f"{then[0]:,}",
        f"{then[1]:,}",
    )


def _added_items_note(bundle):
    """Says where `recsys index` grew the catalog since training: the
    rescored metrics rank those items too, metrics.json did not."""
    updates = bundle.manifest.get("item_updates", [])
    added = sum(int(update.get("new", 0)) for update in updates)
    if added:
        logger.warning(
            "The catalog holds %s added by `recsys index` after training "
            "(%d items now): these metrics rank them too, so they can "
            "differ from metrics.json, measured on the training run's "
            "catalog.",
            "1 item" if added == 1 else f"{added:,} items",
            len(bundle.item_ids),
        )


def _check_catalog(bundle, test, item, table, train=None):
    """Refuses held-out (or training) items the bundle's catalog lacks,
    naming them.

    Only catalog items can be ranked: a table of re-typed ids ('i4' for 4)
    or of new items stopped at "Every test item must be among the
    candidates", or at LAPACK's stderr and "EASE's Gram matrix is not
    positive definite" for the empty matrix of training items; one new
    item in a training row at the first (the baselines' validation carve
    holds out the latest training rows).

    Raises:
        ValueError: naming `table`, how many items, an example of each
            side's ids, and the fix.
    """
    catalog = pd.Index(bundle.item_ids)

    def outside(part):
        """The part's distinct items, and those the catalog lacks."""
        items = pd.unique(part[item].to_numpy())
        return items, items[catalog.get_indexer(items) < 0]

    rows, (items, unknown) = "held-out", outside(test)
    if not len(unknown) and train is not None:
        rows, (items, unknown) = "training", outside(train)
    if not len(unknown):
        return
    ids = bundle.item_ids
    kind = {"i": "integer", "u": "integer", "f": "number"}.get(
        ids.dtype.kind, "text"
    )
    example = ids[0].item() if hasattr(ids[0], "item") else ids[0]
    odd = unknown[0].item() if hasattr(unknown[0], "item") else unknown[0]
    fix = (
        "Fix: evaluate on the table the bundle was trained on, or retrain "
        "it on this one."
        if table.startswith("The table passed")
        # Its own table: changed since, or the bundle's ids edited.
        else "Fix: retrain the bundle on it, or pass the table it was "
        "trained on with --data."
    )
    raise ValueError(
        f"{table}: {len(unknown):,} of its {len(items):,} {rows} items "
        f"(e.g. {odd!r}) are not in the bundle's catalog of "
        f"{len(ids):,} {kind} ids (such as {example!r}), and a model ranks "
        f"only its catalog. {fix}"
    )


def _unknown_users_note(metrics: dict) -> list[str]:
    """A note where no held-out user is known to the bundle (`recsys
    evaluate --data` on another table's users): the model's row is then
    its fallback, the items popular in the bundle's own training rows,
    beside baselines fitted on the table (its popularity column counts
    this table's rows, and differs)."""
    users = metrics.get("unknown_users")
    if not users:
        return []
    return [
        f"note: none of the {users:,} held-out users is known to the "
        "bundle, so the model\nanswers each with its fallback, the items "
        "popular in its own training rows\n(the popularity column counts "
        "this table's). Evaluate on the table the bundle\nwas trained on, "
        "or retrain on this one.",
        "",
    ]


def _repeats_note(metrics: dict) -> list[str]:
    share = metrics.get("split", {}).get("repeat_share", 0.0)
    if share < REPEATS_NOTED:
        return []
    compare = (
        ""
        # A streamed run (its sample in `split`) scores popularity alone.
        if "baseline_repeat" in metrics or "sample" in metrics["split"]
        else '\nCompare with each user\'s own items: add "repeat" to '
        "evaluate.baselines."
    )
    return [
        f"note: {share:.0%} of the held-out rows repeat an item their user "
        "had in training (repeat\nconsumption). The filtered metrics rank "
        "those among the user's unseen items:\nread the unfiltered ones, and "
        "recommend with seen items kept (--include-seen,\n"
        "exclude_seen=False)." + compare,
        "",
    ]


def _filtered_recall(metrics: dict) -> str:
    """The index's recall with seen items excluded, as users get it."""
    filtered = metrics["index"].get("recall@10_vs_exact_filtered")
    return "" if filtered is None else f", {filtered:.4f} seen items excluded"


def _tuned(metrics: dict) -> str:
    """What the index chose for its recall target, if it tuned itself."""
    index = metrics["index"]
    tuning = index.get("tuning") or {}
    if "recall_target" not in tuning:
        return ""
    options = index["options"]
    return (
        f" ({options.get('num_leaves_to_search')} of "
        f"{options.get('num_leaves')} leaves searched, reorder "
        f"{options.get('reorder')}: chosen for recall target "
        f"{tuning['recall_target']})"
    )


def summary(metrics: dict, config: dict) -> str:
    """What `recsys train` prints: the metrics beside the baselines, speed.

    HR@k (unfiltered and filtered) first, then the filtered recall@k,
    NDCG@k, MRR and coverage@k, a column per baseline (popularity, then
    EASE and item-kNN where scored); metrics.json holds the unfiltered ones
    too. Then each baseline's chosen setting or why it was skipped.
    Metrics written before those existed print HR@k alone; a run that held
    out no rows (`data.split = "none"`) prints its note instead.

    Args:
        metrics: dict. The run's metrics (metrics.json).
        config: dict. The run config.

    Returns:
        str. The printed report.
    """
    split = config["evaluate"]["split"]
    train = metrics["train"]
    lines = no_test_lines(metrics, split) or _metric_lines(metrics, config)
    early = train.get("early_stopping")
    resumed = train.get("resumed_from")
    speed = (
        f"{train['seconds']:.1f} s, "
        f"{train['examples_per_second']:,.0f} examples/s"
    )
    if resumed and not train["examples_per_second"]:
        # Its checkpoint held every epoch: "0.0 s, 0 examples/s" read as
        # a run that trained nothing.
        speed = "none left after its checkpoint of every epoch"
    elif resumed:
        speed += f", resumed at epoch {resumed['epoch'] + 1}"
    lines += [
        f"training: {speed} ({train['backend']} backend)"
        + _early_stopping_words(early),
        f"index: {metrics['index']['kind']}, recall@10 vs exact "
        f"{metrics['index']['recall@10_vs_exact']:.4f}"
        + _filtered_recall(metrics)
        + _tuned(metrics),
    ] + _second_stage_lines(metrics.get("second_stage"))
    for name, value in metrics.get("ground_truth", {}).get("model", {}).items():
        baseline = metrics["ground_truth"]["baseline_popularity"][name]
        lines.append(
            f"ground truth {name}: {value:.4f} (popularity {baseline:.4f})"
        )
    if early and early["scores"]:
        lines += epoch_cap_note([early["best_epoch"]], len(early["scores"]))
    return "\n".join(lines)


def _early_stopping_words(early: dict | None) -> str:
    """`summary`'s words on the epoch search: the training's seconds are
    the search's own where it kept its best epoch's weights."""
    if not (early and early["scores"]):
        return ""
    chosen = f"best epoch {early['best_epoch']} of {len(early['scores'])}"
    if early.get("weights_kept"):
        return (
            f"; {chosen} on validation ({early['metric']}), its weights "
            f"kept: one training, {early['seconds']:.1f} s with each "
            "epoch's scoring"
        )
    return (
        f"; {chosen} on validation ({early['metric']}, "
        f"{early['seconds']:.1f} s)"
    )


def _second_stage_lines(stage: dict | None) -> list[str]:
    """`summary`'s line of `model.second_stage`: what it learnt from, or
    why it was skipped (the model's answers are then the bundle's)."""
    if not stage:
        return []
    if "skipped" in stage:
        return [f"second stage: skipped: {stage['skipped']}"]
    hits = stage["carve_hits"]
    return [
        f"second stage: each known user's top {stage['list_length']} "
        f"reordered (the 'model' column; the model alone: 'first_stage'), "
        f"learnt from {stage['fit_pairs']:,} carve pairs, "
        f"{stage['seconds']:.1f} s; held-out pairs in the carve's top "
        f"{hits['k']}: {hits['reranked']:,} against the model's "
        f"{hits['model']:,}"
    ]


def _metric_lines(metrics: dict, config: dict) -> list[str]:
    """`summary`'s tables of the evaluated split, and the notes under them."""
    split = config["evaluate"]["split"]
    model = metrics[split]
    columns = ["baseline_popularity"] + [
        key
        for key in metrics
        if key.startswith("baseline_") and key != "baseline_popularity"
    ]

    def row(name, label=None):
        label = label or name
        return f"{label:<18}{model[name]:>10.4f}" + "".join(
            f"{metrics[key][name]:>12.4f}" for key in columns
        )

    header = f"{'metric':<18}{'model':>10}" + "".join(
        f"{key.removeprefix('baseline_'):>12}" for key in columns
    )
    # A streamed run scores a sample of its held-out rows.
    sample = metrics.get("split", {}).get("sample")
    drawn = (
        f" of {sample['users']:,} sampled users, at most "
        f"{sample['max_rows_per_user']} each"
        if sample
        else ""
    )
    lines = [
        f"HR@k on the {split} split ({model['num_interactions']} "
        f"interactions{drawn}, exact scoring of every item):",
        header,
    ]
    lines += [row(name) for name in model if name.startswith("hr@")]
    ranking = [
        name
        for name in ranking_metric_names(tuple(config["evaluate"]["ks"]))
        if name.endswith("_filtered")
        and name in model
        and all(name in metrics[key] for key in columns)
    ]
    if ranking:
        lines += [
            "",
            "Filtered (training items left out): recall per user, NDCG and "
            "MRR per\ninteraction, coverage = share of the catalog in some "
            "user's top k:",
            header,
        ]
        lines += [row(name, name.removesuffix("_filtered")) for name in ranking]
    lines += [""] + _unknown_users_note(metrics) + _repeats_note(metrics)
    held_out = metrics.get("split", {})
    ahead = baselines_ahead_note(
        metrics,
        split,
        choosing_metric(
            config["evaluate"]["ks"],
            held_out.get("items"),
            held_out.get("repeat_share", 0.0),
        ),
    )
    lines += ahead + ([""] if ahead else [])
    return lines + _baseline_notes(metrics.get("baselines", {}))


def _baseline_notes(baselines):
    """One line per baseline: its chosen setting, or why it was skipped."""
    lines = []
    for name, details in baselines.items():
        if "skipped" in details:
            lines.append(f"{name}: skipped, {details['skipped']}")
            continue
        if "boost" in details and not details["boost"]:
            # 1 + 0 * exp(-rank / scale): EASE itself.
            setting = f"l2 = {details['l2']:g}, no recency weight (= ease)"
        elif "boost" in details:
            setting = (
                f"l2 = {details['l2']:g}, recency weights 1 + "
                f"{details['boost']:g} exp(-rank / {details['scale']:g})"
            )
        elif "l2" in details:
            setting = f"l2 = {details['l2']:g}"
        elif "neighbours" in details:
            setting = f"{details['neighbours']} neighbours"
        else:
            setting = "no setting"
        if "chosen_by" in details:
            setting += f" ({details['chosen_by']})"
        lines.append(f"{name}: {setting}, {details['seconds']:.1f} s")
    return lines


@dataclasses.dataclass
class StreamedRun:
    """What a streamed run derives from its Parquet shards before training.

    Attributes:
        source: the `ParquetSource` of `data.path`.
        bounds: the split's time bounds.
        data: the `StreamedData` of the vocabulary pass (preprocessor,
            catalog, counts).
        stages: the `StageClock` timing each stage.
    """

    source: object
    bounds: tuple
    data: object
    stages: streamed.StageClock


class StreamedTwoTowerKind(TwoTowerKind):
    """The two-tower steps over Parquet shards (`data.path`), streamed.

    The stages, each timed in `metrics["stages"]`, are described in
    `recsys.kinds.two_tower_streamed`.
    """

    def train(
        self, config, output=None, *, frame=None, progress=True, write=True
    ):
        return ModelKind.train(
            self, config, output, frame=frame, progress=progress, write=write
        )

    def prepare(self, config, frame=None, *, progress=True):
        streamed.check_streaming_config(config)
        keras.utils.set_random_seed(config["train"]["seed"])
        stages = streamed.StageClock()
        source = streamed.open_source(config)
        bounds = streamed.split_bounds(source, config)
        stages.lap("scan")
        data = streamed.scan_vocabulary(config, source, bounds, progress)
        check_index_kind(config, len(data.items))
        if data.num_train == 0:
            raise ValueError(
                f"No training rows in {config['data']['path']}: every row "
                "falls in the held-out end of the time span."
            )
        stages.lap("vocab")
        return StreamedRun(source, bounds, data, stages)

    def fit(self, prepared, config, *, output=None, progress=True):
        # Checkpoints in a job directory: the same command resumes a kill.
        checkpoint = None
        if output:
            table = streamed.source_identity(
                prepared.source, prepared.bounds, prepared.data.rows_digest
            )
            checkpoint = training_checkpoint(config, output, table)
        with precision_scope(config):
            model = build_two_tower(prepared.data.preprocessor, config)
            timing = fit_two_tower(
                model,
                streamed.training_batches(prepared.data),
                config,
                callbacks=[checkpoint] if checkpoint else [],
                progress=progress,
            )
        timing["resumed_from"] = checkpoint and checkpoint.resumed_from
        prepared.stages.lap("train")
        return Fitted(model, timing, {"checkpoint": checkpoint})

    def export(self, fitted, prepared, config, *, progress=True):
        data, stages = prepared.data, prepared.stages
        evaluated = streamed.eval_users(
            data.users, data.test_users, config["train"]["seed"]
        )
        indptr, seen, test_users, test_items = streamed.scan_seen(
            data, evaluated, progress
        )
        stages.lap("seen")
        arrays = streamed.embed_streamed(fitted.model, data, indptr, seen)
        stages.lap("embed")
        # Tuned on the users' own query vectors (`index.recall_target`),
        # their seen items excluded as `recommend` excludes them.
        index = build_index_from_config(
            arrays["item_embeddings"],
            config["index"],
            progress=progress,
            queries=arrays["user_embeddings"],
            seen=(arrays["seen_indptr"], arrays["seen_items"]),
        )
        stages.lap("index")
        return {
            "arrays": arrays,
            "index": index,
            "items": data.items[_item_columns(config, data.items)],
            "preprocessor": data.preprocessor,
            "evaluation": (evaluated, test_users, test_items),
        }

    def evaluate(self, fitted, exported, prepared, config, *, progress=True):
        arrays, index = exported["arrays"], exported["index"]
        data, source = prepared.data, prepared.source
        bundle = unwritten_bundle(config, exported)
        evaluated = exported["evaluation"][0]
        metrics = streamed.evaluation_metrics(
            bundle, config, *exported["evaluation"]
        )
        # The evaluated users' first 1,000 (exact search is chunked).
        metrics["index"] = index_metrics(
            index,
            arrays["user_embeddings"],
            (arrays["seen_indptr"], arrays["seen_items"]),
            rows=bundle.user_rows(evaluated)[:1000],
        )
        prepared.stages.lap("evaluate")
        # The bounds in seconds are `metrics["data"]["split_time"]`.
        metrics["split"] = {
            **split_rule(config["data"]).describe(),
            "train_rows": data.num_train,
            "held_out_rows": data.held_out_rows,
            "items": int(len(bundle.item_ids)),
            **metrics["split"],  # the evaluated rows' repeat_share, sample
        }
        metrics["train"] = fitted.timing
        metrics["data"] = {
            "rows": source.num_rows,
            "train_rows": data.num_train,
            "users": int(len(data.users)),
            "items": int(len(bundle.item_ids)),
            "row_groups": source.num_groups,
            "files": len(source.files),
            "split_time": list(prepared.bounds),
        }
        metrics["stages"] = prepared.stages.seconds
        metrics["peak_rss_mb_after"] = prepared.stages.peak_mb
        return metrics

    def write(self, output, fitted, exported, prepared, config, metrics):
        bundle = {k: v for k, v in exported.items() if k != "evaluation"}
        path = super().write(output, fitted, bundle, prepared, config, metrics)
        prepared.stages.lap("write")
        return path
