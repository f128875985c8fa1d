"""New items in a trained two-tower bundle, without retraining.

A bundle keeps its candidate tower (`candidate_tower.keras`), so an item
the model never saw can be embedded from its candidate features, through
the bundle's fitted preprocessor, and put in the catalog:
`Bundle.add_items(frame)` is the entry point, `recsys index BUNDLE --items
FILE` the command. Its id falls to the preprocessor's out-of-vocabulary (or
hashed) id, so what places a cold item among the others is its content
features (genres, year): a model trained with item ids alone embeds every
cold item at the same point.

This module checks the frame and merges the vectors into the catalog's
arrays; `Bundle.add_items` rebuilds the index and the `Bundle`.
"""

import dataclasses
import datetime
import logging
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.retrieval_inputs import item_inputs
from recsys.features import canonical_string
from recsys.features import canonical_strings
from recsys.training.embed import MAX_EMBEDDING_NORM
from recsys.training.embed import embed
from recsys.training.embed import norm_bound

logger = logging.getLogger(__name__)

# Ids named in an error message, at most.
SHOWN_IDS = 10
# A new item's numeric feature this many training standard deviations
# from the training mean is warned of (the model never saw its like).
FAR_FROM_TRAINING = 100


@dataclasses.dataclass
class MergedItems:
    """The catalog after `merge_items`.

    Attributes:
        items: DataFrame. The catalog columns (`items.parquet`), new rows
            appended.
        arrays: dict. New `item_ids`, `item_embeddings` and
            `item_popularity`.
        note: dict. What was done, for the manifest's `item_updates`.
        row_of: int array. Each old catalog row's new row.
    """

    items: pd.DataFrame
    arrays: dict[str, np.ndarray]
    note: dict[str, Any]
    row_of: np.ndarray


def check_new_items(
    frame: pd.DataFrame, *, item: str, features: list[str]
) -> None:
    """Refuses a frame of new items that cannot be embedded.

    Args:
        frame: DataFrame. One row per item.
        item: str. The item id column (`data.item`).
        features: list of str. The candidate feature columns.

    Raises:
        ValueError: for an empty frame, a missing column, or null or
            duplicate ids; the message names them and the fix.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            "`frame` must be a pandas DataFrame of new items. Received: "
            f"{type(frame).__name__}"
        )
    if len(frame) == 0:
        raise ValueError(
            "The table of new items is empty (0 rows). Fix: one row per "
            "item, with the item id and the candidate features as columns."
        )
    needed = list(dict.fromkeys([item, *features]))
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValueError(
            f"Columns {missing} are missing from the new items. The "
            f"bundle's candidate tower reads {needed} (data.item and "
            f"model.candidate_features). Available columns: "
            f"{list(frame.columns)}. Fix: add those columns, one row per "
            "item."
        )
    nulls = int(frame[item].isna().sum())
    if nulls:
        raise ValueError(
            f"Column '{item}' has {nulls} null ids; every new item needs "
            "an id. Fix: drop or fill those rows."
        )
    keys = pd.Series(canonical_strings(frame[item]))
    duplicated = pd.unique(keys[keys.duplicated()])
    if len(duplicated):
        shown = list(duplicated[:SHOWN_IDS])
        raise ValueError(
            f"Column '{item}' repeats {len(duplicated)} ids, e.g. {shown}: "
            "each new item needs exactly one row of features. Fix: keep "
            f"one row per item, e.g. frame.drop_duplicates('{item}', "
            "keep='last')."
        )


def _ids_like(values: pd.Series, catalog_ids: np.ndarray, item: str):
    """The new ids in the catalog's type: int64 or canonical strings."""
    if catalog_ids.dtype.kind not in "iu":
        return np.asarray(canonical_strings(values), dtype=str)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() | (numbers != np.floor(numbers.fillna(0.5)))]
    if len(bad):
        raise ValueError(
            f"This bundle's item ids are integers, but column '{item}' "
            f"holds {len(bad)} ids that are not, e.g. "
            f"{bad.iloc[:SHOWN_IDS].tolist()}. Fix: give the new items "
            "integer ids, as in the training data."
        )
    # An int64 cast would wrap 2**63 and above to negative ids.
    if numbers.dtype.kind == "u":
        outside = numbers > np.iinfo(np.int64).max
    elif numbers.dtype.kind == "f":
        outside = (numbers >= 2.0**63) | (numbers < -(2.0**63))
    else:
        outside = pd.Series(False, index=numbers.index)
    if outside.any():
        raise ValueError(
            f"Column '{item}' holds {int(outside.sum())} ids outside this "
            "bundle's int64 ids (-2**63 to 2**63 - 1), e.g. "
            f"{values[outside].iloc[:SHOWN_IDS].tolist()}. Fix: give the new "
            "items ids in that range, or retrain with them in the data "
            "(larger ids are then kept as their decimal strings)."
        )
    ids = numbers.to_numpy().astype(np.int64)
    # "0007" and "7" differ as text (`check_new_items`) but are one id.
    repeated = pd.unique(ids[pd.Series(ids).duplicated().to_numpy()])
    if len(repeated):
        raise ValueError(
            f"Column '{item}' spells {len(repeated)} ids in two ways that "
            "are one integer id (as '0007' and '7' are 7), e.g. "
            f"{repeated[:SHOWN_IDS].tolist()}. Fix: keep one row per item."
        )
    return ids


def _warn_unseen_values(preprocessor, frame, inputs, item):
    """Logs the new items' feature values the model never trained on
    (`inputs`: their candidate-tower inputs, by feature).

    A new item is placed by its features alone: a category the
    vocabulary does not hold reads as the unknown value (one vector for
    all of them), an empty number as the mean; an item whose features are
    all unseen lands wherever that vector does. A number far outside the
    training values places its item by that number.
    """
    from recsys.features.specs import CategoricalFeature
    from recsys.features.specs import NumericFeature

    unseen, far = [], []
    for name, codes in inputs.items():
        if name == item or name not in frame.columns:
            continue
        spec = preprocessor.feature(name)
        values = frame[name]
        codes = np.asarray(codes).reshape(len(values), -1)
        if isinstance(spec, CategoricalFeature):
            if spec.vocabulary == "hash":
                continue  # every value has a bucket
            rows = ((codes >= 1) & (codes <= spec.num_oov_buckets)).any(1)
            what = "a value the model never saw"
        else:
            rows = values.isna().to_numpy()
            what = "no value (read as missing)"
        if rows.any():
            # The vocabulary only where a value is unseen (a million ids).
            known = set(preprocessor.vocabularies_.get(name, ()))
            example = _example(values, rows, spec, known)
            unseen.append(_count(name, what, rows, example))
        if isinstance(spec, NumericFeature):
            distance = _standard_units(preprocessor, spec, codes[:, 0])
            rows = np.abs(distance) > FAR_FROM_TRAINING
            if rows.any():
                what = (
                    "values far outside the training values (over "
                    f"{FAR_FROM_TRAINING} standard deviations from their mean)"
                )
                far.append(_count(name, what, rows, _example(values, rows)))
    if unseen:
        logger.warning(
            "New items: %s. Those items are placed by their other features "
            "(an unseen category reads as the unknown value, shared by all).",
            "; ".join(unseen),
        )
    if far:
        logger.warning(
            "New items: %s. Those items are placed by that number, likely at "
            "the top or the bottom of every list. Fix: correct it, or leave "
            "it empty (read as the training mean).",
            "; ".join(far),
        )


def _standard_units(preprocessor, spec, inputs):
    """A numeric feature's tower inputs in training standard deviations
    from the training mean: the inputs themselves, but for `"none"`."""
    if spec.transform != "none":
        return inputs  # standardized (of the log, for "log")
    stats = preprocessor.stats_.get(spec.name) or {}
    if not stats.get("std"):
        return np.zeros_like(inputs)
    return (inputs - stats["mean"]) / stats["std"]


def _count(name, what, rows, example):
    """`'genres' holds ... in 1 of 4 rows, e.g. 'NewGenre'`."""
    return (
        f"'{name}' holds {what} in {int(rows.sum()):,} of {len(rows):,} rows"
        f"{example}"
    )


def _example(values, rows, spec=None, known=None):
    """`, e.g. 'NewGenre'`: the first flagged row's value.

    Of a multi-valued cell (a list, or text the feature splits at its
    separator) with the vocabulary `known`: its first value not in it (an
    unseen genre, not the whole cell).
    """
    example = values.iloc[int(np.flatnonzero(rows)[0])]
    separator = getattr(spec, "separator", None)
    elements = None
    if isinstance(example, (list, tuple, np.ndarray)):
        elements = list(example)
    elif isinstance(example, str) and separator:
        elements = example.split(separator)
    if elements is not None and known is not None:
        new = [
            element
            for element in elements
            if not _is_empty(element) and canonical_string(element) not in known
        ]
        example = new[0] if new else example
    if isinstance(example, np.generic):  # 2024, not np.int64(2024)
        example = example.item()
    return "" if _is_empty(example) else f", e.g. {example!r}"


def _is_empty(value):
    if isinstance(value, str):
        return value == ""
    return value is None or pd.isna(value) is True


def merge_items(bundle: Any, frame: pd.DataFrame, tower: Any) -> MergedItems:
    """Embeds `frame`'s items and merges them into `bundle`'s catalog.

    New ids join the catalog with popularity 0, in id order: the catalog
    stays sorted by id, the candidate order evaluation needs, so the rows
    after them move and every user's seen items are renumbered to match.
    Ids already in the catalog are re-embedded from the new features and
    keep their popularity; their display value is updated when `frame`
    has the display column.

    Args:
        bundle: a loaded two-tower `Bundle`.
        frame: DataFrame. One row per item (see `check_new_items`).
        tower: the bundle's candidate tower.

    Returns:
        A `MergedItems`.

    Raises:
        ValueError: see `check_new_items`, and for ids of another type
            than the catalog's.
    """
    config = bundle.config
    item = config["data"]["item"]
    features = list(config["model"]["candidate_features"])
    check_new_items(frame, item=item, features=features)
    frame = frame.reset_index(drop=True)
    ids = _ids_like(frame[item], bundle.item_ids, item)
    inputs = item_inputs(bundle.preprocessor, frame, features)
    _warn_unseen_values(bundle.preprocessor, frame, inputs, item)
    vectors = embed(tower, inputs)
    # The bundle's own load check: a vector over it would be written, and
    # the bundle then refused by every command.
    unusable = ~(norm_bound(vectors, axis=1) <= MAX_EMBEDDING_NORM)
    if unusable.any():
        shown = ids[unusable][:SHOWN_IDS].tolist()
        raise ValueError(
            f"The candidate tower gives {int(unusable.sum()):,} new items "
            f"vectors too large to score (norm over {MAX_EMBEDDING_NORM:.0e}"
            f", or NaN / inf), e.g. items {shown}: a feature value far "
            "outside the training values (see the warning above). The "
            "bundle is unchanged. Fix: correct those items' feature values."
        )
    rows = bundle.item_rows(ids)
    known, fresh = rows >= 0, rows < 0
    embeddings = np.concatenate(
        [bundle.item_embeddings, vectors[fresh]]
    ).astype(np.float32)
    embeddings[rows[known]] = vectors[known]
    added = pd.DataFrame(index=pd.RangeIndex(int(fresh.sum())))
    for column in bundle.items.columns:
        if column == item:
            added[column] = ids[fresh]
        elif column in frame.columns:
            added[column] = frame.loc[fresh, column].to_numpy()
        else:
            added[column] = None  # e.g. no display column given
    items = bundle.items.copy()
    # The stored ids, exactly: items.parquet of a streamed bundle written
    # before this fix holds uint64 ids that item_ids.npy keeps as strings.
    items[item] = bundle.item_ids
    for column in items.columns:
        if column != item and column in frame.columns and known.any():
            items.loc[rows[known], column] = frame.loc[known, column].values
    if len(added):
        items = pd.concat([items, added], ignore_index=True)
    item_ids = np.concatenate([bundle.item_ids, ids[fresh]])
    popularity = np.concatenate(
        [bundle.item_popularity, np.zeros(fresh.sum(), np.float32)]
    )
    # Appended rows sorted into place; `row_of` renumbers old rows.
    order = np.argsort(item_ids, kind="stable")
    row_of = np.empty_like(order)
    row_of[order] = np.arange(len(order))
    seen = bundle.seen_items
    arrays = {
        "item_ids": item_ids[order],
        "item_embeddings": embeddings[order],
        "item_popularity": popularity[order].astype(np.float32),
        "seen_items": row_of[seen].astype(seen.dtype),
    }
    items = items.iloc[order].reset_index(drop=True)
    note = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(),
        "from_version": bundle.version,
        "new": int(fresh.sum()),
        "updated": int(known.sum()),
        "num_items": int(len(item_ids)),
        "note": "metrics are the training run's, measured on the catalog "
        "at training time",
    }
    return MergedItems(items=items, arrays=arrays, note=note, row_of=row_of)
