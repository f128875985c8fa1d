"""From an interactions table to an evaluated, indexed bundle.

`train_bundle` is what `recsys train` runs; `evaluate_bundle` is what
`recsys evaluate` runs. Both split the data exactly as PROTOCOL.md says.
"""

import logging

import keras
import numpy as np
from tqdm.auto import tqdm

from features import Preprocessor
from recsys.bundle import Bundle
from recsys.bundle import write_bundle
from recsys.config import feature_specs
from recsys.data.retrieval_inputs import catalog
from recsys.data.retrieval_inputs import check_columns
from recsys.data.retrieval_inputs import check_interactions
from recsys.data.retrieval_inputs import item_inputs
from recsys.data.retrieval_inputs import training_inputs
from recsys.data.retrieval_inputs import user_states
from recsys.data.sources import load_interactions
from recsys.data.split import temporal_split
from recsys.evaluation import evaluate_retrieval
from recsys.evaluation import popularity_scores
from recsys.index import build_index
from recsys.index import recall_against_exact
from recsys.training import build_two_tower
from recsys.training import fit_two_tower

logger = logging.getLogger(__name__)


def split_for_evaluation(frame, config):
    """`(train, test)` per the protocol; the validation split on request."""
    data = config["data"]
    columns = {"user": data["user"], "item": data["item"], "time": data["time"]}
    train, test = temporal_split(frame, **columns)
    if config["evaluate"]["split"] == "validation":
        train, test = temporal_split(train, **columns)
    return train, test


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
            lambda users: np.broadcast_to(popularity, (len(users), len(popularity))),
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
    data, model_config = config["data"], config["model"]
    user, item, time = data["user"], data["item"], data["time"]
    if frame is None:
        frame = load_interactions(data["source"])
    check_interactions(frame, user=user, item=item, time=time)
    specs = feature_specs(config)
    display = [data["display"]] if data["display"] else []
    check_columns(frame, [spec.name for spec in specs] + display)

    train, test = split_for_evaluation(frame, config)
    items = catalog(frame, item)
    keras.utils.set_random_seed(config["train"]["seed"])
    preprocessor = Preprocessor(features=specs).fit(train)
    common = {
        "user": user,
        "item": item,
        "query_features": model_config["query_features"],
        "history_length": model_config["history_length"],
    }
    items_x = item_inputs(preprocessor, items, model_config["candidate_features"])
    inputs = training_inputs(preprocessor, train, items, items_x, **common)
    model = build_two_tower(preprocessor, config)
    timing = fit_two_tower(model, inputs, config, progress=progress)

    stages = tqdm(
        total=4, desc="bundle", disable=not progress, unit="stage", leave=False
    )
    stages.set_postfix_str("embed items and users")
    batch = 8192
    item_embeddings = model.candidate_tower.predict(items_x, batch_size=batch, verbose=0)
    states = user_states(preprocessor, train, items, **common)
    user_embeddings = model.query_tower.predict(
        states["inputs"], batch_size=batch, verbose=0
    )
    popularity = popularity_scores(train[item].to_numpy(), items[item].to_numpy())
    arrays = {
        "item_ids": items[item].to_numpy(),
        "item_embeddings": np.asarray(item_embeddings, np.float32),
        "item_popularity": (popularity / len(train)).astype(np.float32),
        "user_ids": states["users"],
        "user_embeddings": np.asarray(user_embeddings, np.float32),
        "seen_indptr": states["seen_indptr"],
        "seen_items": states["seen_items"],
    }
    stages.update()
    stages.set_postfix_str("build index")
    options = {
        key: value
        for key, value in config["index"].items()
        if key != "kind" and value
    }
    index = build_index(arrays["item_embeddings"], kind=config["index"]["kind"], **options)
    stages.update()
    stages.set_postfix_str("measure index recall")
    recall = recall_against_exact(index, arrays["user_embeddings"], k=10)
    stages.update()
    stages.set_postfix_str("evaluate")
    item_columns = [c for c in dict.fromkeys([item, *display]) if c in items]
    in_memory = Bundle(None, {"config": config}, preprocessor,
                       items[item_columns], arrays, index)
    metrics = evaluate_bundle(in_memory, frame, config, train, test)
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
        preprocessor=preprocessor,
        query_tower=model.query_tower,
        items=items[item_columns],
        arrays=arrays,
        index=index,
    )
    return Bundle.load(path), metrics
