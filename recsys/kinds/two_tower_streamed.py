"""Two-tower training streamed from a directory of Parquet shards.

`recsys train` takes this path when the config sets `data.path`: the steps
of `StreamedTwoTowerKind` (`recsys.kinds.two_tower`) call the functions
here. The rows are never loaded whole: every stage reads the shards one row
group at a time (`recsys.data.parquet_source`), so memory depends on the
number of users and items, not on the number of interactions.

Stages (each timed in `metrics["stages"]`):
1. `scan`: the time range, read from the time column alone.
2. `vocab`: one pass that fits the preprocessor on the training rows
   (`recsys.features.streaming.fit_streaming`) and collects the catalog (every
   item's first row), item and user training counts.
3. `train`: epochs over `InteractionBatches`, shuffled fixed-size batches.
4. `seen`: one pass that writes each user's training items (a CSR, placed
   with a counting sort) and the test rows of the evaluation users.
5. `embed`, `index`, `evaluate`, `write`: as in `recsys.kinds.two_tower`.

Split and evaluation. Rows carry no per-user order the stream can rely on, so
the split is global in time (`data.split = "time"`): the last
`data.test_fraction` of the time span, or the rows at or after
`data.split_cutoff`, are the test split (with `evaluate.split = "validation"`,
the last `data.test_fraction` of the rest is held out instead and the test span
is not read). HR@k follows PROTOCOL.md's metric (exact scores over every
catalog item, ties by item id, filtered and unfiltered), on the test rows of up
to `EVAL_USERS` users drawn with the run's seed among the users that have both
training and test rows (at most `MAX_TEST_PER_USER` test rows each, drawn with
the seed). When the data came from `recsys synth` (`_synthetic.json` beside the
shards), the generator's ground truth adds `recall@100_vs_truth`: the share of
each evaluation user's 100 likeliest items under the generator that the model
ranks in its top 100 (seen items kept), and `cluster_precision@100`, the share
of the model's top 100 that lies in the user's latent cluster; both beside the
popularity baseline.

Limits: the query tower takes the user id only (`model.query_features =
[data.user]`, `model.history_length = 0`); candidate features are taken from
each item's first row.
"""

import dataclasses
import hashlib
import os
import resource
import time

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.bundles.two_tower import Bundle
from recsys.config import ConfigError
from recsys.config import feature_specs
from recsys.data.interaction_batches import InteractionBatches
from recsys.data.parquet_source import ParquetSource
from recsys.data.retrieval_inputs import distinct_per_user
from recsys.data.retrieval_inputs import item_inputs
from recsys.data.synthetic import SyntheticInteractions
from recsys.evaluation.retrieval import evaluate_beside_popularity
from recsys.evaluation.retrieval import repeat_share
from recsys.features import Preprocessor
from recsys.features import canonical_strings
from recsys.features.streaming import ValueCounter
from recsys.features.streaming import fit_streaming
from recsys.logs import progress_bar
from recsys.names import SAMPLING_PROBABILITY
from recsys.training.embed import bundle_arrays


class StageClock:
    """Seconds and peak RSS after each stage, for `metrics["stages"]`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        """Records the time since the previous lap as stage `name`."""
        now = time.perf_counter()
        self.seconds[name] = now - self._clock
        self._clock = now
        # Peak RSS so far (Linux reports KiB), to see which stage sets it.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mb[name] = peak / 1024


# The test share of streamed bundles written before `data.test_fraction`.
TEST_FRACTION = 0.1
EVAL_USERS = 2000
# Zipf users are very unequal (at 10M rows the most active user has ~70k
# test rows): a cap keeps evaluation memory and the users' weights bounded.
MAX_TEST_PER_USER = 10
TRUTH_K = 100
_ROLES = {
    "categorical": "id",
    "multi_categorical": "text",
    "text": "text",
    "numeric": "number",
    "bucketized": "number",
}


@dataclasses.dataclass
class StreamedData:
    """What the `vocab` pass learns about a Parquet directory.

    Attributes:
        config: the run config.
        source: the `ParquetSource`.
        bounds: `(train_end, test_end)`: train rows have time < train_end,
            test rows train_end <= time < test_end.
        preprocessor: fitted on the training rows.
        items: the catalog (every item's first row), sorted by item id.
        item_inputs: candidate-tower inputs of every catalog item.
        item_counts: training interactions of each catalog item.
        users: ids of the users with training rows, ascending.
        user_counts: training interactions of each of `users`.
        group_rows: training rows of each row group.
        test_users: ids of the users with test rows.
        held_out_rows: rows in the held-out span (every user's, known or
            not; HR@k reads a sample of the known users' rows).
        rows_digest: str. A hash of every row group's values, read in the
            same pass (`group_digest`): a shard rewritten at the same size
            is another table to a checkpoint.
    """

    config: dict
    source: ParquetSource
    bounds: tuple
    preprocessor: Preprocessor
    items: pd.DataFrame
    item_inputs: dict
    item_counts: np.ndarray
    users: np.ndarray
    user_counts: np.ndarray
    group_rows: list
    test_users: np.ndarray
    held_out_rows: int = 0
    rows_digest: str = ""

    @property
    def num_train(self):
        return int(sum(self.group_rows))


def check_streaming_config(config):
    """Raises `ConfigError` for what the streamed path cannot train."""
    data, model = config["data"], config["model"]
    if model["history_length"]:
        raise ConfigError(
            "model.history_length must be 0 when data.path streams Parquet "
            "shards: histories need each user's rows in time order, which "
            f"the stream does not have. Received: {model['history_length']}"
        )
    if model["query_features"] != [data["user"]]:
        raise ConfigError(
            f'model.query_features must be ["{data["user"]}"] (the user id) '
            "when data.path streams Parquet shards. Received: "
            f"{model['query_features']}"
        )
    if config["train"]["distribution"] != "none":
        # Batches of the stream end unevenly; recsys.training.distribution trims
        # in-memory rows only.
        raise ConfigError(
            'train.distribution must be "none" when data.path streams '
            f"Parquet shards. Received: {config['train']['distribution']!r}"
        )


def open_source(config):
    """The config's `data.path` as a checked `ParquetSource`."""
    data = config["data"]
    roles = {data["user"]: "id", data["item"]: "id", data["time"]: "time"}
    for spec in feature_specs(config):
        roles.setdefault(spec.name, _ROLES.get(spec.kind, "id"))
    if data["display"]:
        roles.setdefault(data["display"], "id")
    return ParquetSource(data["path"], roles)


def source_identity(source, bounds, rows_digest):
    """What a streamed run's checkpoints are of: each shard's name and size,
    the split's bounds (a shard gone moves them, and rows the first epoch
    trained on were held out after a resume) and a digest of the rows.

    Args:
        source: the run's `ParquetSource`.
        bounds: its `split_bounds`.
        rows_digest: str. `StreamedData.rows_digest` of the same pass.

    Returns:
        dict, JSON-serializable.
    """
    shards = [
        [os.path.relpath(f, source.path), os.path.getsize(f)]
        for f in source.files
    ]
    return {
        "shards": shards,
        "bounds": [str(b) for b in bounds],
        "rows": rows_digest,
    }


def group_digest(table):
    """A 64-bit digest of a row group's values, column by column, in order.

    Each value is hashed (`pandas.util.hash_array`) and the hashes summed
    with weights by position, so a changed, swapped or moved value changes
    it; a shard's name and size alone missed a rewrite of the same size
    (every item id shifted by one). A list column counts as its lengths and
    its values.
    """
    total = 0
    for column in table.columns:
        for values in _plain_arrays(column):
            weights = np.arange(len(values), dtype=np.uint64) * 2 + 1
            hashed = pd.util.hash_array(values)
            total = (total * 31 + int((hashed * weights).sum())) % 2**64
    return total


def _plain_arrays(column):
    """numpy arrays of hashable values that spell an Arrow column."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        yield from _plain_arrays(column.cast(kind.value_type))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield pc.list_value_length(column).fill_null(-1).to_numpy()
        yield from _plain_arrays(pc.list_flatten(column))
    else:
        yield column.to_numpy(zero_copy_only=False)


def split_bounds(source, config):
    """`(train_end, test_end)` of the global temporal split (see above)."""
    data = config["data"]
    low, high = source.time_range(data["time"], _time_format(config))
    if low == high:
        raise ValueError(
            f"Column '{data['time']}' in {source.path} holds one time "
            f"({_spelled(source, data['time'], low)}) on every row: a time "
            "split needs at least two. Fix: store each interaction's time "
            "there, or set data.time to a column that holds them."
        )
    # Bundles written before data.test_fraction held out a tenth.
    fraction = data.get("test_fraction", TEST_FRACTION)
    cutoff = data.get("split_cutoff", "")
    if cutoff != "":
        test_start = cutoff_seconds(cutoff)
        if not low < test_start <= high:
            span = [_spelled(source, data["time"], t) for t in (low, high)]
            raise ValueError(
                f"data.split_cutoff = {cutoff!r} is outside the times of "
                f"column '{data['time']}' in {source.path} ({span[0]} to "
                f"{span[1]}), so one side of the split would be empty. Fix: "
                "choose a cutoff after the first time and at or before the "
                "last."
            )
    else:
        test_start = low + (1 - fraction) * (high - low)
    # Slightly past the maximum, so the last row falls in the test split.
    test_end = np.nextafter(high, np.inf)
    if config["evaluate"]["split"] == "validation":
        test_end = test_start
        test_start = low + (1 - fraction) * (test_start - low)
    return float(test_start), float(test_end)


def cutoff_seconds(cutoff):
    """`data.split_cutoff` on the scale of `as_float`: a number, or a time
    in ISO 8601 as Unix seconds (UTC unless it names its offset)."""
    if not isinstance(cutoff, str):
        return float(cutoff)
    try:
        return float(cutoff)
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(cutoff)
    except ValueError:
        raise ValueError(
            f"data.split_cutoff = {cutoff!r} is neither a number nor a time. "
            'Fix: write it in ISO 8601, e.g. "2024-03-01".'
        ) from None
    if stamp.tz is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


def _time_format(config):
    return config["data"].get("time_format", "ISO8601")


def _spelled(source, column, seconds):
    """A time of `column` (`as_float`'s scale) as the user wrote it: a
    number for a column of numbers, else ISO 8601 in UTC."""
    found = source.schema.field(column).type
    if pa.types.is_integer(found) or pa.types.is_floating(found):
        return f"{seconds:.15g}"
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


def _masks(source, group, table, config, bounds):
    """Train and test masks of one row group; checks its id columns."""
    data = config["data"]
    for name in (data["user"], data["item"], data["time"]):
        nulls = table.column(name).null_count
        if nulls:
            raise ValueError(
                f"Column '{name}' in {source.file_of(group)} has {nulls} null"
                " values; every interaction needs a user, an item and a "
                "time. Fix: drop or fill those rows."
            )
    t = source.times(
        group, table.column(data["time"]), data["time"], _time_format(config)
    )
    return t < bounds[0], (t >= bounds[0]) & (t < bounds[1])


def scan_vocabulary(config, source, bounds, progress=True):
    """The `vocab` pass: fits the preprocessor, collects catalog and counts.

    Returns:
        A `StreamedData`.
    """
    data, model = config["data"], config["model"]
    user, item = data["user"], data["item"]
    specs = feature_specs(config)
    catalog_columns = list(
        dict.fromkeys(
            [item, *model["candidate_features"]]
            + ([data["display"]] if data["display"] else [])
        )
    )
    columns = list(
        dict.fromkeys(
            [user, item, data["time"], *catalog_columns]
            + [s.name for s in specs]
        )
    )
    items_seen = ValueCounter()
    item_counts, user_counts, test_users = (ValueCounter() for _ in range(3))
    first_rows, group_rows, held_rows = [], [], []
    digests = hashlib.sha256()
    bar = progress_bar(
        total=source.num_rows,
        desc="vocab",
        unit=" rows",
        unit_scale=True,
        disable=not progress,
    )

    def train_parts():
        nonlocal first_rows
        for group in range(source.num_groups):
            table = source.read(group, columns)
            train, test = _masks(source, group, table, config, bounds)
            group_rows.append(int(train.sum()))
            held_rows.append(int(test.sum()))
            items_seen.update(table.column(item))
            if len(catalog_columns) > 1:
                first_rows.append(
                    table.select(catalog_columns)
                    .to_pandas()
                    .drop_duplicates(item)
                )
                if sum(len(f) for f in first_rows) > 1 << 20:
                    first_rows = [pd.concat(first_rows).drop_duplicates(item)]
            digests.update(group_digest(table).to_bytes(8, "little"))
            test_users.update(table.column(user).filter(pa.array(test)))
            part = table.filter(pa.array(train))
            item_counts.update(part.column(item))
            user_counts.update(part.column(user))
            bar.update(table.num_rows)
            yield part

    try:
        preprocessor = fit_streaming(specs, train_parts())
    finally:
        bar.close()
    if len(catalog_columns) > 1:
        items = pd.concat(first_rows).drop_duplicates(item)
    else:
        items = pd.DataFrame({item: items_seen.result()[0].to_pandas()})
    items = items.sort_values(item, kind="stable").reset_index(drop=True)
    values, counts = item_counts.result()
    position = pd.Index(items[item]).get_indexer(values.to_pandas())
    per_item = np.zeros(len(items), np.int64)
    per_item[position] = counts
    users, per_user = user_counts.result()
    order = np.argsort(users.to_numpy(zero_copy_only=False), kind="stable")
    return StreamedData(
        config=config,
        source=source,
        bounds=bounds,
        preprocessor=preprocessor,
        items=items,
        item_inputs=item_inputs(
            preprocessor, items, model["candidate_features"]
        ),
        item_counts=per_item,
        users=users.to_numpy(zero_copy_only=False)[order],
        user_counts=per_user[order],
        group_rows=group_rows,
        test_users=test_users.result()[0].to_numpy(zero_copy_only=False),
        held_out_rows=sum(held_rows),
        rows_digest=digests.hexdigest(),
    )


def training_batches(streamed):
    """The `InteractionBatches` of the training rows."""
    config, source = streamed.config, streamed.source
    data = config["data"]
    user, item = data["user"], data["item"]
    item_index = pd.Index(streamed.items[item])
    probability = (streamed.item_counts / streamed.num_train).astype(np.float32)

    def load(group):
        table = source.read(group, [user, item, data["time"]])
        train, _ = _masks(source, group, table, config, streamed.bounds)
        table = table.filter(pa.array(train))
        position = item_index.get_indexer(table.column(item).to_pandas())
        x = {
            user: streamed.preprocessor.transform_column(
                user, table.column(user).to_pandas()
            )
        }
        for name, values in streamed.item_inputs.items():
            x[name] = values[position]
        x[SAMPLING_PROBABILITY] = probability[position]
        return x

    return InteractionBatches(
        load,
        streamed.group_rows,
        config["train"]["batch_size"],
        seed=config["train"]["seed"],
    )


def eval_users(train_users, test_users, seed):
    """Up to `EVAL_USERS` users with train and test rows, by the seed."""
    known = np.intersect1d(train_users, test_users)
    rng = np.random.default_rng(seed)
    if len(known) > EVAL_USERS:
        known = np.sort(rng.choice(known, EVAL_USERS, replace=False))
    return known


def _cap_per_user(test_users, test_items, seed):
    """At most `MAX_TEST_PER_USER` rows per user, drawn with the seed."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(test_users))
    order = shuffled[np.argsort(test_users[shuffled], kind="stable")]
    test_users, test_items = test_users[order], test_items[order]
    starts = np.searchsorted(test_users, test_users, side="left")
    keep = np.arange(len(test_users)) - starts < MAX_TEST_PER_USER
    return test_users[keep], test_items[keep]


def scan_seen(streamed, evaluated, progress=True):
    """The `seen` pass: users' training items and evaluation test rows.

    Returns:
        `(seen_indptr, seen_items, test_users, test_items)`: the CSR of
        catalog rows per user (in `streamed.users` order) and the test
        interactions of the users in `evaluated`.
    """
    config, source = streamed.config, streamed.source
    data = config["data"]
    user, item = data["user"], data["item"]
    user_index = pd.Index(streamed.users)
    item_index = pd.Index(streamed.items[item])
    indptr = np.r_[0, np.cumsum(streamed.user_counts)].astype(np.int64)
    seen = np.empty(indptr[-1], np.int32)
    fill = indptr[:-1].copy()
    test_users, test_items = [], []
    for group in progress_bar(
        range(source.num_groups), desc="seen", disable=not progress
    ):
        table = source.read(group, [user, item, data["time"]])
        train, test = _masks(source, group, table, config, streamed.bounds)
        users = table.column(user).to_numpy()
        items = table.column(item).to_numpy()
        rows = user_index.get_indexer(users[train])
        cols = item_index.get_indexer(items[train])
        # Counting sort: each user's rows go to the next free slots of
        # their block, in file order.
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
        starts = np.searchsorted(rows, rows, side="left")
        seen[fill[rows] + np.arange(len(rows)) - starts] = cols
        fill += np.bincount(rows, minlength=len(fill))
        chosen = test & np.isin(users, evaluated)
        test_users.append(users[chosen])
        test_items.append(items[chosen])
    test_users, test_items = _cap_per_user(
        np.concatenate(test_users),
        np.concatenate(test_items),
        config["train"]["seed"],
    )
    indptr, seen = distinct_per_user(indptr, seen)
    return indptr, seen, test_users, test_items


def embed_streamed(
    model: keras.Model,
    streamed: StreamedData,
    seen_indptr: np.ndarray,
    seen_items: np.ndarray,
) -> dict[str, np.ndarray]:
    """The arrays of the bundle: catalog and training users embedded.

    Args:
        model: the trained `TwoTower`.
        streamed: the run's `StreamedData`.
        seen_indptr, seen_items: the users' training items (`scan_seen`).

    Returns:
        dict of numpy arrays, keyed as `recsys.bundles.two_tower.ARRAYS`.
    """
    user = streamed.config["data"]["user"]
    users = pd.Series(streamed.users)
    return bundle_arrays(
        model,
        item_ids=streamed.items[streamed.config["data"]["item"]].to_numpy(),
        item_inputs=streamed.item_inputs,
        item_popularity=(streamed.item_counts / streamed.num_train).astype(
            np.float32
        ),
        user_ids=streamed.users,
        user_inputs={user: streamed.preprocessor.transform_column(user, users)},
        seen_indptr=seen_indptr,
        seen_items=seen_items,
    )


def _top_rows(bundle, users, k, rows):
    """Each user's exact top `k` among catalog `rows` (seen items kept)."""
    out = []
    for start in range(0, len(users), 64):
        scores = bundle.score(users[start : start + 64])[:, rows]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out.append(rows[top])  # a view would keep all of `scores` alive
    return np.concatenate(out)


def truth_metrics(bundle, generator, users, item_ids, popularity):
    """Recall@100 against the generator's likeliest items, and cluster share.

    Items the generator never wrote (added by `recsys index`) have no
    ground truth: both rankings are over the generator's items only.

    Args:
        bundle: the (in-memory) `Bundle`.
        generator: the `SyntheticInteractions` that wrote the data.
        users: int array of evaluation users.
        item_ids: catalog item ids.
        popularity: training counts of the catalog items.

    Returns:
        dict with `model` and `baseline_popularity`, each holding
        `recall@100_vs_truth` and `cluster_precision@100`.
    """
    ids = item_ids.astype(np.int64)
    known = np.flatnonzero((ids >= 0) & (ids < generator.num_items))
    k = min(TRUTH_K, len(known))
    truth = generator.true_top_items(users, k)
    item_clusters = np.full(len(ids), -1, np.int64)
    item_clusters[known] = generator.item_clusters()[ids[known]]
    user_clusters = generator.user_clusters()[users.astype(np.int64)]
    popular = known[np.argsort(-popularity[known], kind="stable")[:k]]
    rankings = {
        "model": _top_rows(bundle, users, k, known),
        "baseline_popularity": np.broadcast_to(popular, (len(users), k)),
    }
    result = {}
    for name, rows in rankings.items():
        found = item_ids[rows]
        hits = (found[:, :, None] == truth[:, None, :]).any(axis=2)
        result[name] = {
            f"recall@{k}_vs_truth": float(hits.mean()),
            f"cluster_precision@{k}": float(
                (item_clusters[rows] == user_clusters[:, None]).mean()
            ),
        }
    return result


def evaluation_metrics(
    bundle: Bundle,
    config: dict,
    evaluated: np.ndarray,
    test_users: np.ndarray,
    test_items: np.ndarray,
) -> dict[str, dict]:
    """HR@k of `bundle` and of popularity, and the ground truth if known.

    Args:
        bundle: `Bundle` (written or in memory).
        config: the run config.
        evaluated: ids of the evaluation users.
        test_users, test_items: their test interactions.

    Returns:
        dict with the split's name, `"baseline_popularity"`, `"split"`
        (the evaluated rows' `repeat_share`, and the `sample` they come
        from: its `users` and `max_rows_per_user`) and, for data written
        by `recsys synth`, `"ground_truth"`.
    """
    item_ids = bundle.item_ids
    rows = bundle.user_rows(evaluated)
    train_users = np.repeat(evaluated, np.diff(bundle.seen_indptr)[rows])
    train_items = item_ids[
        np.concatenate([bundle.seen(r) for r in rows])
        if len(rows)
        else np.zeros(0, np.int64)
    ]
    popularity = bundle.item_popularity
    split = config["evaluate"]["split"]
    metrics: dict[str, dict] = evaluate_beside_popularity(
        bundle.score,
        popularity,
        split=split,
        candidates=item_ids,
        ks=tuple(config["evaluate"]["ks"]),
        test_users=test_users,
        test_items=test_items,
        train_users=train_users,
        train_items=train_items,
        # Ranks are computed on (test rows x catalog) arrays: 8 users of at
        # most 10 rows over 200k items stay under 100 MB.
        users_per_batch=8,
    )
    metrics[split]["num_users"] = int(len(evaluated))
    # The seen pass holds each evaluated user's training items: the share
    # of their held-out rows repeating one, as the in-memory kind reports
    # it (`recsys train` prints its note from `REPEATS_NOTED` up).
    metrics["split"] = {
        "repeat_share": repeat_share(
            pd.DataFrame({"user": train_users, "item": train_items}),
            pd.DataFrame({"user": test_users, "item": test_items}),
            user="user",
            item="item",
        ),
        # HR@k is on a sample, not on every held-out row.
        "sample": {
            "users": int(len(evaluated)),
            "max_rows_per_user": MAX_TEST_PER_USER,
        },
    }
    # EASE and item-kNN read the whole training matrix, which a streamed
    # run never holds: they are reported as skipped.
    asked = config["evaluate"].get("baselines", [])
    others = [name for name in asked if name != "popularity"]
    if others:
        metrics["baselines"] = {
            name: {
                "skipped": "streamed shards (data.path) never hold the "
                "training matrix in memory"
            }
            for name in others
        }
    generator = SyntheticInteractions.from_directory(config["data"]["path"])
    if generator is not None:
        metrics["ground_truth"] = truth_metrics(
            bundle, generator, evaluated, item_ids, popularity
        )
    return metrics


def evaluate_streamed(bundle, progress=True):
    """What `recsys evaluate` runs for a bundle trained on `data.path`.

    Reads the shards twice (the users with test rows, then the test rows of
    the evaluation users) and scores them as training did.

    Args:
        bundle: a `Bundle` whose config has `data.path`.
        progress: bool. Show progress bars.

    Returns:
        dict of metrics, as `evaluation_metrics`.
    """
    config = bundle.config
    data = config["data"]
    source = open_source(config)
    bounds = split_bounds(source, config)
    counter = ValueCounter()
    columns = [data["user"], data["item"], data["time"]]
    groups = range(source.num_groups)
    for group in progress_bar(groups, desc="test users", disable=not progress):
        table = source.read(group, columns)
        _, test = _masks(source, group, table, config, bounds)
        counter.update(table.column(data["user"]).filter(pa.array(test)))
    test_users = _ids_as_stored(
        counter.result()[0].to_numpy(zero_copy_only=False), bundle.user_ids
    )
    evaluated = eval_users(bundle.user_ids, test_users, config["train"]["seed"])
    users, items = [], []
    for group in progress_bar(groups, desc="test rows", disable=not progress):
        table = source.read(group, columns)
        _, test = _masks(source, group, table, config, bounds)
        ids = _ids_as_stored(
            table.column(data["user"]).to_numpy(), bundle.user_ids
        )
        chosen = test & np.isin(ids, evaluated)
        users.append(ids[chosen])
        items.append(
            _ids_as_stored(
                table.column(data["item"]).to_numpy()[chosen], bundle.item_ids
            )
        )
    test_users, test_items = _cap_per_user(
        np.concatenate(users), np.concatenate(items), config["train"]["seed"]
    )
    metrics = evaluation_metrics(
        bundle, config, evaluated, test_users, test_items
    )
    # The split as training stored it, its share and sample recomputed.
    metrics["split"] = {**bundle.metrics.get("split", {}), **metrics["split"]}
    return metrics


def _ids_as_stored(ids, stored):
    """Ids read from the shards in the type of the bundle's `stored` ids:
    canonical strings where the bundle stores strings (uint64 ids above
    int64, which `recsys.bundles.two_tower` keeps as their decimal
    strings)."""
    if stored.dtype.kind == "U" and ids.dtype.kind in "iu":
        return np.asarray(canonical_strings(pd.Series(ids)), dtype=str)
    return ids
