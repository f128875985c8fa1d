"""From an interactions table to an evaluated, indexed bundle.

`train_bundle` is what `recsys train` runs; `evaluate_bundle` is what
`recsys evaluate` runs. Both split the data exactly as PROTOCOL.md says. The
steps are separate functions so that benchmarks and notebooks can run them one
at a time (`prepare_data`, `build_two_tower`, `fit_two_tower`,
`embed_catalog_and_users`).
"""

import dataclasses
import logging

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.bundles.two_tower import Bundle
from recsys.bundles.two_tower import write_bundle
from recsys.config import feature_specs
from recsys.data.retrieval_inputs import catalog
from recsys.data.retrieval_inputs import check_columns
from recsys.data.retrieval_inputs import check_interactions
from recsys.data.retrieval_inputs import item_inputs
from recsys.data.retrieval_inputs import training_inputs
from recsys.data.retrieval_inputs import user_states
from recsys.data.sources import load_interactions
from recsys.data.split import protocol_split
from recsys.evaluation.retrieval import evaluate_retrieval
from recsys.evaluation.retrieval import popularity_scores
from recsys.features import Preprocessor
from recsys.index import BruteForceIndex
from recsys.index import build_index_from_config
from recsys.index import recall_against_exact
from recsys.training.checkpoint import training_checkpoint
from recsys.training.distribution import distribution_scope
from recsys.training.distribution import process_count
from recsys.training.distribution import process_share
from recsys.training.distribution import shardable
from recsys.training.precision import precision_scope
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
    """`(train, test)` per the protocol; the validation split on request."""
    data = config["data"]
    return protocol_split(
        frame,
        user=data["user"],
        item=data["item"],
        time=data["time"],
        validation=config["evaluate"]["split"] == "validation",
    )


def prepare_data(config, frame=None):
    """Loads, validates and splits the data; fits the preprocessor.

    Args:
        config: dict. A validated config (`recsys.config.load_config`).
        frame: optional DataFrame of interactions; defaults to
            `config["data"]["source"]`.

    Returns:
        A `PreparedData`.
    """
    data, model = config["data"], config["model"]
    user, item, time = data["user"], data["item"], data["time"]
    if frame is None:
        frame = load_interactions(data["source"])
    check_interactions(frame, user=user, item=item, time=time)
    specs = feature_specs(config)
    display = [data["display"]] if data["display"] else []
    check_columns(frame, [spec.name for spec in specs] + display)
    train, test = split_for_evaluation(frame, config)
    items = catalog(frame, item)
    preprocessor = Preprocessor(features=specs).fit(train)
    common = {
        "user": user,
        "item": item,
        "query_features": model["query_features"],
        "history_length": model["history_length"],
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
        inputs=training_inputs(preprocessor, train, items, items_x, **common),
        users=user_states(preprocessor, train, items, **common),
    )


def embed_catalog_and_users(model, prepared):
    """The arrays of a bundle: item and known-user vectors, popularity, seen.

    Args:
        model: a trained `TwoTower`.
        prepared: the run's `PreparedData`.

    Returns:
        dict of numpy arrays, keyed as `recsys.bundles.two_tower.ARRAYS`.
    """
    item = prepared.config["data"]["item"]
    items = model.candidate_tower.predict(
        prepared.item_inputs, batch_size=8192, verbose=0
    )
    users = model.query_tower.predict(
        prepared.users["inputs"], batch_size=8192, verbose=0
    )
    popularity = popularity_scores(
        prepared.train[item].to_numpy(), prepared.items[item].to_numpy()
    )
    return {
        "item_ids": prepared.items[item].to_numpy(),
        "item_embeddings": np.asarray(items, np.float32),
        "item_popularity": (popularity / len(prepared.train)).astype(
            np.float32
        ),
        "user_ids": prepared.users["users"],
        "user_embeddings": np.asarray(users, np.float32),
        "seen_indptr": prepared.users["seen_indptr"],
        "seen_items": prepared.users["seen_items"],
    }


def _item_columns(config, items):
    data = config["data"]
    names = [data["item"], data["display"]]
    return [c for c in dict.fromkeys(names) if c and c in items]


def in_memory_bundle(prepared, arrays, index=None):
    """A `Bundle` that was never written, for evaluation during training."""
    return Bundle(
        None,
        {"config": prepared.config},
        prepared.preprocessor,
        prepared.items[_item_columns(prepared.config, prepared.items)],
        arrays,
        index or BruteForceIndex(arrays["item_embeddings"]),
    )


def evaluate_bundle(bundle, frame, config, train=None, test=None):
    """HR@k of `bundle` and of the popularity baseline on the protocol split.

    Args:
        bundle: `Bundle`.
        frame: the full interactions table.
        config: the run config (data columns, evaluation split and ks).
        train, test: the split, if already computed.

    Returns:
        dict with the split's name (`"test"` or `"validation"`) and
        `"baseline_popularity"`, each a dict of HR@k metrics.
    """
    data = config["data"]
    if train is None or test is None:
        train, test = split_for_evaluation(frame, config)
    candidates = bundle.item_ids
    common = {
        "candidates": candidates,
        "test_users": test[data["user"]].to_numpy(),
        "test_items": test[data["item"]].to_numpy(),
        "train_users": train[data["user"]].to_numpy(),
        "train_items": train[data["item"]].to_numpy(),
        "ks": tuple(config["evaluate"]["ks"]),
    }
    popularity = popularity_scores(common["train_items"], candidates)
    return {
        config["evaluate"]["split"]: evaluate_retrieval(bundle.score, **common),
        "baseline_popularity": evaluate_retrieval(
            lambda users: np.broadcast_to(
                popularity, (len(users), len(popularity))
            ),
            **common,
        ),
    }


def train_bundle(config, output, *, frame=None, progress=True):
    """Trains the configured two-tower model and writes its bundle.

    Args:
        config: dict. A validated config (`recsys.config.load_config`).
        output: str. Bundle directory to write.
        frame: optional DataFrame of interactions; defaults to
            `config["data"]["source"]`.
        progress: bool. Show progress bars.

    Returns:
        `(bundle, metrics)`: the written `Bundle` (loaded back from disk)
        and the metrics dict also saved as `metrics.json`.
    """
    if config["data"]["path"] and frame is None:
        # Parquet shards are streamed, never loaded whole.
        from recsys.kinds.two_tower_streamed import train_streamed

        return train_streamed(config, output, progress=progress)
    keras.utils.set_random_seed(config["train"]["seed"])
    prepared = prepare_data(config, frame)
    with distribution_scope(config) as distribution, precision_scope(config):
        processes = process_count(distribution)
        # Checkpoints in a job directory: the same command resumes after a
        # kill. Not with several processes: each would resume from its own
        # latest checkpoint, and a kill between two processes' saves would
        # restart them at different steps.
        checkpoint = None
        if processes == 1:
            checkpoint = training_checkpoint(config, output)
        else:
            logger.warning("%d processes: checkpoints are off.", processes)
        model = build_two_tower(prepared.preprocessor, config)
        inputs, batch_size = process_share(
            shardable(
                prepared.inputs, distribution, config["train"]["batch_size"]
            ),
            distribution,
            config["train"]["batch_size"],
        )
        timing = fit_two_tower(
            model,
            inputs,
            {**config, "train": {**config["train"], "batch_size": batch_size}},
            callbacks=[checkpoint] if checkpoint else [],
            progress=progress,
        )
    # `fit_two_tower` counted this process's share of the rows.
    timing["train_rows"] *= processes
    timing["examples_per_second"] *= processes
    timing["resumed_from"] = checkpoint and checkpoint.resumed_from

    stages = tqdm(total=3, desc="bundle", disable=not progress, leave=False)
    stages.set_postfix_str("embed items and users")
    arrays = embed_catalog_and_users(model, prepared)
    stages.update()
    stages.set_postfix_str("build index")
    index = build_index_from_config(
        arrays["item_embeddings"], config["index"], progress=progress
    )
    recall = recall_against_exact(index, arrays["user_embeddings"], k=10)
    stages.update()
    stages.set_postfix_str("evaluate")
    metrics = evaluate_bundle(
        in_memory_bundle(prepared, arrays, index),
        prepared.frame,
        config,
        prepared.train,
        prepared.test,
    )
    stages.update()
    stages.close()
    metrics["train"] = timing
    metrics["index"] = {
        "kind": index.kind,
        "options": index.options,
        "recall@10_vs_exact": recall,
    }
    path = write_bundle(
        output,
        config=config,
        metrics=metrics,
        preprocessor=prepared.preprocessor,
        query_tower=model.query_tower,
        items=prepared.items[_item_columns(config, prepared.items)],
        arrays=arrays,
        index=index,
    )
    if checkpoint:
        checkpoint.finish()  # the bundle is whole: nothing left to resume
    return Bundle.load(path), metrics


def summary(metrics, config):
    """What `recsys train` prints: HR@k beside popularity, speed, index."""
    split = config["evaluate"]["split"]
    train = metrics["train"]
    lines = [
        f"HR@k on the {split} split ({metrics[split]['num_interactions']} "
        "interactions, exact scoring of every item):",
        f"{'metric':<18}{'model':>10}{'popularity':>12}",
    ]
    for name in (k for k in metrics[split] if k.startswith("hr@")):
        lines.append(
            f"{name:<18}{metrics[split][name]:>10.4f}"
            f"{metrics['baseline_popularity'][name]:>12.4f}"
        )
    lines += [
        "",
        f"training: {train['seconds']:.1f} s, "
        f"{train['examples_per_second']:,.0f} examples/s "
        f"({train['backend']} backend)",
        f"index: {metrics['index']['kind']}, recall@10 vs exact "
        f"{metrics['index']['recall@10_vs_exact']:.4f}",
    ]
    for name, value in metrics.get("ground_truth", {}).get("model", {}).items():
        baseline = metrics["ground_truth"]["baseline_popularity"][name]
        lines.append(
            f"ground truth {name}: {value:.4f} (popularity {baseline:.4f})"
        )
    return "\n".join(lines)
