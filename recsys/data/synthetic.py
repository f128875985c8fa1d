"""Synthetic interactions at any scale, with a known ground truth.

Users and items follow Zipf laws (a few very active users, a few very popular
items), and every user and every item belongs to one of `num_clusters` latent
clusters. An interaction picks a user by activity; then, with probability
`affinity`, an item of the user's cluster (by popularity inside the
cluster), else any item (by global popularity). A model that learns the
clusters therefore beats popularity, and each user's most likely items are
known exactly (`true_top_items`): recall against them measures how much of
the structure a model recovered.

Rows are generated in chunks of `rows_per_group`, each written as one Parquet
row group, `rows_per_file` rows per shard, so the table is never held in
memory whole. Each chunk draws from its own random stream, seeded by
`(seed, chunk)`: the files depend only on the parameters.
"""

import dataclasses
import functools
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.logs import progress_bar
from recsys.storage.atomic_write import owned_output_dir

METADATA_FILE = "_synthetic.json"  # "_" keeps it out of pyarrow datasets
USER, ITEM, TIME, CATEGORY = "user_id", "item_id", "timestamp", "category"
START_TIME = 1_600_000_000  # 2020-09-13, seconds
TIME_SPAN = 365 * 24 * 3600


# The `recsys synth` flag of each field, for the error messages.
_FLAGS = {
    "num_users": "--users",
    "num_items": "--items",
    "num_interactions": "--interactions",
    "num_clusters": "--clusters",
    "seed": "--seed",
}


def _named(field):
    """`field` as the messages name it: "`num_users` (--users)"."""
    flag = _FLAGS.get(field)
    return f"`{field}` ({flag})" if flag else f"`{field}`"


def _zipf_weights(n, exponent, rng):
    """Zipf weights `1 / rank ** exponent`, ranks shuffled over the ids."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return weights[rng.permutation(n)]


def _balanced_clusters(n, num_clusters, rng):
    """Cluster of each id: a shuffled round robin, so no cluster is empty."""
    return (rng.permutation(n) % num_clusters).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class SyntheticInteractions:
    """A Zipf interaction generator with latent user and item clusters.

    Attributes:
        num_users: int. Distinct user ids (`0 .. num_users - 1`).
        num_items: int. Distinct item ids (`0 .. num_items - 1`).
        num_interactions: int. Rows to generate.
        num_clusters: int. Latent clusters. Defaults to `50`.
        affinity: float. Probability that an interaction stays in the
            user's cluster. Defaults to `0.8`.
        user_exponent, item_exponent: float. Zipf exponents of user activity
            and item popularity. Default to `1.0`.
        seed: int. Defaults to `0`.
        rows_per_group: int. Rows per generated chunk and Parquet row group.
            Defaults to `65536`.
        rows_per_file: int. Rows per Parquet shard. Defaults to `1048576`.

    Columns written: `user_id`, `item_id` (int64), `timestamp` (int64
    seconds, uniform over one year) and `category` (int64, the item's
    cluster divided by 5: a coarse, partly informative item attribute).

    Example:

    ```python
    data = SyntheticInteractions(500_000, 200_000, 10_000_000)
    data.write("data/synthetic_10m")
    data.true_top_items([0, 1], k=100)  # each user's 100 likeliest items
    ```
    """

    num_users: int
    num_items: int
    num_interactions: int
    num_clusters: int = 50
    affinity: float = 0.8
    user_exponent: float = 1.0
    item_exponent: float = 1.0
    seed: int = 0
    rows_per_group: int = 65_536
    rows_per_file: int = 1_048_576

    def __post_init__(self):
        # Each message names the field and its `recsys synth` flag.
        for name in (
            "num_users",
            "num_items",
            "num_interactions",
            "num_clusters",
            "rows_per_group",
            "rows_per_file",
            "seed",
        ):
            value = getattr(self, name)
            least = 0 if name == "seed" else 1  # numpy seeds are >= 0
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or value < least:
                wanted = "non-negative" if least == 0 else "positive"
                raise ValueError(
                    f"{_named(name)} must be a {wanted} integer. "
                    f"Received: {value!r}"
                )
        if self.num_clusters > min(self.num_users, self.num_items):
            raise ValueError(
                f"{_named('num_clusters')} must not exceed the number of "
                f"users or items: every cluster needs one of each. Received: "
                f"{self.num_clusters} clusters, {self.num_users} users, "
                f"{self.num_items} items. Fix: lower {_named('num_clusters')}"
                f" to at most {min(self.num_users, self.num_items)}, or raise "
                f"{_named('num_users')} and {_named('num_items')}."
            )
        if not 0.0 <= self.affinity <= 1.0:
            raise ValueError(
                "`affinity` must be in [0, 1]. "
                f"Received: affinity={self.affinity!r}"
            )
        if self.rows_per_file % self.rows_per_group:
            raise ValueError(
                "`rows_per_file` must be a multiple of `rows_per_group`. "
                f"Received: rows_per_file={self.rows_per_file}, "
                f"rows_per_group={self.rows_per_group}"
            )

    # -- the latent structure (cheap to recompute from the seed) -----------

    @functools.cached_property
    def _latent(self):
        rng = np.random.default_rng([self.seed, 0])
        return {
            "activity": _zipf_weights(self.num_users, self.user_exponent, rng),
            "popularity": _zipf_weights(
                self.num_items, self.item_exponent, rng
            ),
            "user_clusters": _balanced_clusters(
                self.num_users, self.num_clusters, rng
            ),
            "item_clusters": _balanced_clusters(
                self.num_items, self.num_clusters, rng
            ),
        }

    def user_clusters(self):
        """The latent cluster of each user id (int64 array)."""
        return self._latent["user_clusters"]

    def item_clusters(self):
        """The latent cluster of each item id (int64 array)."""
        return self._latent["item_clusters"]

    def item_probabilities(self, cluster):
        """`p(item | user)` for users of `cluster`: the generator's truth."""
        s = self._latent
        popularity = s["popularity"]
        inside = s["item_clusters"] == cluster
        p = (1 - self.affinity) * popularity / popularity.sum()
        inside_mass = popularity[inside].sum()
        p[inside] += self.affinity * popularity[inside] / inside_mass
        return p

    def true_top_items(self, user_ids, k=100):
        """Each user's `k` most likely items under the generator.

        Args:
            user_ids: array-like of user ids.
            k: int. Items per user. Defaults to `100`.

        Returns:
            int64 array `(len(user_ids), k)`, most likely first (ties by
            ascending item id).
        """
        clusters = self.user_clusters()[np.asarray(user_ids, np.int64)]
        k = min(k, self.num_items)
        top = {}
        for cluster in np.unique(clusters):
            p = self.item_probabilities(cluster)
            top[cluster] = np.lexsort((np.arange(len(p)), -p))[:k]
        return np.stack([top[c] for c in clusters]).astype(np.int64)

    # -- rows --------------------------------------------------------------

    def num_chunks(self):
        return -(-self.num_interactions // self.rows_per_group)

    def chunks(self):
        """Yields the rows as pyarrow Tables of at most `rows_per_group`."""
        s = self._latent
        user_cdf = np.cumsum(s["activity"])
        item_cdf = np.cumsum(s["popularity"])
        # Items ordered by cluster: one cumulative sum whose slice per
        # cluster samples that cluster's items by popularity.
        by_cluster = np.argsort(s["item_clusters"], kind="stable")
        cluster_cdf = np.cumsum(s["popularity"][by_cluster])
        ends = np.cumsum(np.bincount(s["item_clusters"]))
        starts = ends - np.bincount(s["item_clusters"])
        low = np.where(starts > 0, cluster_cdf[np.maximum(starts - 1, 0)], 0)
        high = cluster_cdf[ends - 1]
        for chunk in range(self.num_chunks()):
            rng = np.random.default_rng([self.seed, 1, chunk])
            n = min(
                self.rows_per_group,
                self.num_interactions - chunk * self.rows_per_group,
            )
            users = np.searchsorted(
                user_cdf, rng.random(n) * user_cdf[-1], side="right"
            )
            users = np.minimum(users, self.num_users - 1)
            anywhere = np.searchsorted(
                item_cdf, rng.random(n) * item_cdf[-1], side="right"
            )
            anywhere = np.minimum(anywhere, self.num_items - 1)
            cluster = s["user_clusters"][users]
            width = high[cluster] - low[cluster]
            target = low[cluster] + rng.random(n) * width
            position = np.searchsorted(cluster_cdf, target, side="right")
            position = np.clip(position, starts[cluster], ends[cluster] - 1)
            inside = rng.random(n) < self.affinity
            items = np.where(inside, by_cluster[position], anywhere)
            times = START_TIME + rng.integers(0, TIME_SPAN, n)
            yield pa.table(
                {
                    USER: pa.array(users, pa.int64()),
                    ITEM: pa.array(items, pa.int64()),
                    TIME: pa.array(times, pa.int64()),
                    CATEGORY: pa.array(
                        s["item_clusters"][items] // 5, pa.int64()
                    ),
                }
            )

    # -- files -------------------------------------------------------------

    def write(self, directory, progress=True):
        """Writes the rows as Parquet shards plus `_synthetic.json`.

        The shards are written into a temporary directory beside
        `directory` and moved into place when complete.

        Args:
            directory: str. Output directory; must not exist or be empty.
            progress: bool. Show a progress bar.

        Returns:
            The list of shard paths.
        """
        directory = os.path.abspath(directory)
        if os.path.exists(directory) and (
            not os.path.isdir(directory) or os.listdir(directory)
        ):
            raise FileExistsError(
                f"{directory} exists and is not an empty directory. Fix: "
                "choose a new output directory or delete this one."
            )
        groups_per_file = self.rows_per_file // self.rows_per_group
        bar = progress_bar(
            total=self.num_interactions,
            desc="synth",
            unit=" rows",
            unit_scale=True,
            disable=not progress,
        )
        names, writer = [], None
        # A marked temporary directory, renamed into place when complete;
        # an exception (or a SIGTERM the CLI turns into one) removes it,
        # and the next write removes one a SIGKILL left.
        try:
            with owned_output_dir(directory, ".synth-tmp-", "synth-tmp") as tmp:
                try:
                    for chunk, table in enumerate(self.chunks()):
                        if chunk % groups_per_file == 0:
                            if writer is not None:
                                writer.close()
                            names.append(f"part-{len(names):05d}.parquet")
                            writer = pq.ParquetWriter(
                                os.path.join(tmp, names[-1]), table.schema
                            )
                        writer.write_table(
                            table, row_group_size=self.rows_per_group
                        )
                        bar.update(len(table))
                finally:
                    if writer is not None:
                        writer.close()
                with open(os.path.join(tmp, METADATA_FILE), "w") as f:
                    json.dump(
                        {
                            "generator": "SyntheticInteractions",
                            **self.get_config(),
                        },
                        f,
                        indent=2,
                    )
        finally:
            bar.close()
        return [os.path.join(directory, name) for name in names]

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_directory(cls, directory):
        """The generator that wrote `directory`, or None if it was not one."""
        path = os.path.join(directory, METADATA_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            config = json.load(f)
        config.pop("generator", None)
        return cls(**config)
