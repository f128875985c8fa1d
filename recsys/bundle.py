"""`Bundle`: a trained retrieval model as one self-describing directory.

Layout:
    manifest.json        versions, config, spec hash, metrics, index recall
    metrics.json         the run's metrics (also in the manifest)
    preprocessor.json    the fitted `features.Preprocessor`
    query_tower.keras    the query tower (loaded with `safe_mode=True`)
    items.parquet        the catalog: item id and display columns
    item_ids.npy, item_embeddings.npy, item_popularity.npy
    user_ids.npy, user_embeddings.npy   precomputed queries of known users
    seen_indptr.npy, seen_items.npy     CSR of each user's training items
    index/               the ScaNN or brute-force index over item embeddings

Everything is JSON, `.npy` (never pickled), Parquet or `.keras`. A bundle is
written into a temporary directory beside its destination and moved into
place with `os.replace`, so a crash never leaves a half-written bundle.
"""

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import uuid

import numpy as np
import pandas as pd

from features import Preprocessor
from features import canonical_string
from features import canonical_strings
from recsys.index import BruteForceIndex
from recsys.index import load_index

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = (
    "item_ids",
    "item_embeddings",
    "item_popularity",
    "user_ids",
    "user_embeddings",
    "seen_indptr",
    "seen_items",
)


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or incompatible."""


def spec_hash(config):
    """SHA-256 of the parts of a config that define the model's inputs."""
    keys = {k: config[k] for k in ("data", "features", "model")}
    text = json.dumps(keys, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _storable(ids):
    """Ids as a pickle-free array: integers stay int64, others become `U`."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.asarray(canonical_strings(pd.Series(ids)), dtype=str)


def _library_versions():
    from importlib import metadata

    versions = {}
    names = (
        "recsys",
        "keras",
        "keras-rs",
        "scann",
        "numpy",
        "jax",
        "tensorflow",
    )
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_atomically(path, fill):
    """Writes a bundle directory through a temporary directory.

    `fill(tmp)` writes every file into `tmp`; only if it returns is `tmp`
    moved to `path` with `os.replace`, so a crash (or an exception) never
    leaves a half-written bundle, and an existing bundle at `path` stays
    whole until the new one replaces it.

    Args:
        path: str. Destination directory. An existing bundle there is
            replaced; any other existing non-empty directory is refused.
        fill: callable taking the temporary directory's path.

    Returns:
        The absolute path of the bundle.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path) and os.listdir(path):
        if not os.path.isfile(os.path.join(path, MANIFEST)):
            raise BundleError(
                f"{path} exists and is not a recsys bundle; refusing to "
                "overwrite it. Fix: choose another --output directory."
            )
    elif os.path.exists(path) and not os.path.isdir(path):
        raise BundleError(f"{path} exists and is not a directory.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".bundle-tmp-", dir=parent)
    try:
        fill(tmp)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".bundle-old-", dir=parent)
            os.replace(path, os.path.join(old, "bundle"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_manifest(directory, *, kind, config, metrics, **extra):
    """Writes `manifest.json` and `metrics.json` into `directory`.

    Args:
        directory: str. The (temporary) bundle directory.
        kind: str. The model kind (`config["model"]["kind"]`).
        config: dict. The run config.
        metrics: dict. The run's metrics.
        **extra: more JSON-able manifest fields.

    Returns:
        dict. The manifest.
    """
    import keras

    now = datetime.datetime.now(datetime.UTC)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        # Unique per written bundle: the service reports it with every
        # answer, so a client can tell which model answered.
        "version": f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "created_at": now.isoformat(),
        "versions": _library_versions(),
        "backend": keras.backend.backend(),
        "spec_hash": spec_hash(config),
        "config": config,
        "metrics": metrics,
        **extra,
    }
    for name, payload in ((MANIFEST, manifest), ("metrics.json", metrics)):
        with open(os.path.join(directory, name), "w") as f:
            json.dump(payload, f, indent=2)
    return manifest


def read_manifest(path, kind=None):
    """Reads and checks a bundle's manifest.

    Args:
        path: str. The bundle directory.
        kind: str or None. The model kind the caller can load; None
            accepts any.

    Returns:
        dict. The manifest.

    Raises:
        BundleError: if the directory is not a bundle, the manifest is
            unreadable, of another format version or of another kind.
    """
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise BundleError(
            f"{path} is not a recsys bundle: {MANIFEST} not found."
        )
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"Cannot read {manifest_path}: {error}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} does not hold a JSON object.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format_version "
            f"{manifest.get('format_version')!r}; this recsys reads "
            f"format_version {FORMAT_VERSION}. Retrain the bundle."
        )
    found = manifest.get("kind", "two_tower")
    if kind is not None and found != kind:
        raise BundleError(
            f"{path} is a {found!r} bundle, not a {kind!r} bundle, which is "
            "what this command or class reads. (In Python, "
            "`recsys.load_bundle(path)` loads a bundle of any kind.)"
        )
    return manifest


def write_bundle(
    path, *, config, metrics, preprocessor, query_tower, items, arrays, index
):
    """Writes a two-tower bundle directory atomically.

    Args:
        path: str. Destination directory. An existing bundle there is
            replaced; any other existing non-empty directory is refused.
        config: dict. The run config.
        metrics: dict. Written to `metrics.json` and the manifest.
        preprocessor: fitted `features.Preprocessor`.
        query_tower: Keras model, saved as `query_tower.keras`.
        items: DataFrame. The catalog columns to keep (`items.parquet`).
        arrays: dict. The arrays named in `ARRAYS`.
        index: a `recsys.index` index over `arrays["item_embeddings"]`.

    Returns:
        The absolute path of the bundle.
    """

    def fill(tmp):
        preprocessor.save(os.path.join(tmp, "preprocessor.json"))
        query_tower.save(os.path.join(tmp, "query_tower.keras"))
        items.to_parquet(os.path.join(tmp, "items.parquet"), index=False)
        for name in ARRAYS:
            array = arrays[name]
            if name in ("item_ids", "user_ids"):
                array = _storable(array)
            np.save(os.path.join(tmp, f"{name}.npy"), array, allow_pickle=False)
        index.save(os.path.join(tmp, "index"))
        write_manifest(
            tmp,
            kind="two_tower",
            config=config,
            metrics=metrics,
            num_items=int(len(arrays["item_ids"])),
            num_users=int(len(arrays["user_ids"])),
        )

    return write_atomically(path, fill)


def load_keras_model(path):
    """A model saved in a bundle, loaded with `safe_mode=True`."""
    import keras

    import recsys.models  # noqa: F401  (registers the classes)

    return keras.saving.load_model(path, safe_mode=True)


class ManifestProperties:
    """A loaded bundle's `config`, `metrics` and `version` (its manifest)."""

    @property
    def config(self):
        return self.manifest["config"]

    @property
    def metrics(self):
        return self.manifest["metrics"]

    @property
    def version(self):
        """The bundle's unique version string (from its manifest)."""
        return self.manifest.get("version", "unversioned")


class Bundle(ManifestProperties):
    """A loaded bundle: recommends items for users from precomputed vectors.

    Use `Bundle.load(path)`; see the module docstring for the layout.

    Example:

    ```python
    bundle = Bundle.load("artifacts/movielens_two_tower")
    ids, scores = bundle.recommend([1, 42], k=10)
    ```
    """

    def __init__(self, path, manifest, preprocessor, items, arrays, index):
        self.path = path
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.items = items
        self.index = index
        for name in ARRAYS:
            setattr(self, name, arrays[name])
        self.exact_index = BruteForceIndex(self.item_embeddings)
        self._user_rows = pd.Index(canonical_strings(pd.Series(self.user_ids)))
        self._item_rows = pd.Index(canonical_strings(pd.Series(self.item_ids)))
        self._query_tower = None
        self._user_dict = None
        # Most popular first, ties by catalog order (ascending item id).
        self.popular_rows = np.argsort(-self.item_popularity, kind="stable")

    @classmethod
    def load(cls, path):
        """Loads a bundle directory written by `recsys train`.

        Args:
            path: str. The bundle directory.

        Returns:
            A `Bundle`.

        Raises:
            BundleError: if the directory is missing, incomplete or was
                written by an incompatible version.
        """
        manifest = read_manifest(path, kind="two_tower")
        try:
            arrays = {
                name: np.load(
                    os.path.join(path, f"{name}.npy"), allow_pickle=False
                )
                for name in ARRAYS
            }
            preprocessor = Preprocessor.load(
                os.path.join(path, "preprocessor.json")
            )
            items = pd.read_parquet(os.path.join(path, "items.parquet"))
            index = load_index(os.path.join(path, "index"))
        except (OSError, ValueError, KeyError) as error:
            raise BundleError(
                f"Bundle {path} is incomplete or corrupt: {error}"
            ) from None
        if len(arrays["item_ids"]) != len(index):
            raise BundleError(
                f"Bundle {path} is inconsistent: {len(arrays['item_ids'])} "
                f"item ids but an index of {len(index)} items."
            )
        return cls(path, manifest, preprocessor, items, arrays, index)

    # -- properties ------------------------------------------------------

    @property
    def query_tower(self):
        """The query tower, loaded on first use with `safe_mode=True`."""
        if self._query_tower is None:
            self._query_tower = load_keras_model(
                os.path.join(self.path, "query_tower.keras")
            )
        return self._query_tower

    # -- lookups -----------------------------------------------------------

    def user_row(self, user_id):
        """Row of one user (-1 if unseen): a dict lookup, for serving."""
        if self._user_dict is None:
            self._user_dict = {u: i for i, u in enumerate(self._user_rows)}
        return self._user_dict.get(canonical_string(user_id), -1)

    def user_rows(self, user_ids):
        """Row of each user in the bundle, -1 for users it has not seen."""
        return self._user_rows.get_indexer(
            canonical_strings(pd.Series(user_ids))
        )

    def item_rows(self, item_ids):
        """Row of each item in the catalog, -1 for unknown items."""
        return self._item_rows.get_indexer(
            canonical_strings(pd.Series(item_ids))
        )

    def seen(self, row):
        """Catalog rows of the training items of the user at `row`."""
        return self.seen_items[
            self.seen_indptr[row] : self.seen_indptr[row + 1]
        ]

    def score(self, user_ids):
        """Exact scores of every catalog item for each user.

        Unknown users score items by popularity (their share of training
        interactions).

        Returns:
            float32 array `(len(user_ids), num_items)`.
        """
        rows = self.user_rows(user_ids)
        scores = (
            self.user_embeddings[np.maximum(rows, 0)] @ self.item_embeddings.T
        )
        scores[rows < 0] = self.item_popularity
        return scores.astype(np.float32)

    # -- recommendations ---------------------------------------------------

    def recommend(self, user_ids, k=10, exclude_seen=True, exact=False):
        """Top-k items for each user, best first.

        Known users are scored by the dot product of their precomputed query
        vector and every item vector, through the index (`exact=False`) or by
        brute force (`exact=True`). Users the bundle has never seen get the
        most popular items, with scores equal to each item's share of the
        training interactions.

        Args:
            user_ids: list or array of user ids, in the data's own type (ints
                for MovieLens; `"42"` and `42` are the same user).
            k: int. Items per user, capped at the catalog size. Defaults to
                `10`.
            exclude_seen: bool. Drop each user's training items. Defaults to
                `True`.
            exact: bool. Use exact search instead of the index.

        Returns:
            `(ids, scores)`: arrays of shape `(len(user_ids), k)` holding
            original item ids and float32 scores. If fewer than `k` items are
            left, the rest is padded with id -1 (or "") and score -inf.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"`k` must be a positive integer. Received: k={k!r}"
            )
        if isinstance(user_ids, (str, bytes)) or np.ndim(user_ids) != 1:
            raise ValueError(
                "`user_ids` must be a 1-D list or array of user ids. "
                f"Received: {user_ids!r}"
            )
        k = min(int(k), len(self.item_ids))
        rows = self.user_rows(user_ids)
        known = rows >= 0
        ids = np.empty((len(rows), k), dtype=self.item_ids.dtype)
        scores = np.empty((len(rows), k), dtype=np.float32)
        if known.any():
            exclude = (
                [self.seen(row) for row in rows[known]]
                if exclude_seen
                else None
            )
            index = self.exact_index if exact else self.index
            positions, found = index.search(
                self.user_embeddings[rows[known]], k, exclude=exclude
            )
            ids[known], scores[known] = self._ids_at(positions), found
        if (~known).any():
            top = self.popular_rows[:k]
            top = np.r_[top, np.full(k - len(top), -1)].astype(np.int64)
            ids[~known] = self._ids_at(top)
            popularity = np.where(top >= 0, self.item_popularity[top], -np.inf)
            scores[~known] = popularity
        return ids, scores

    def _ids_at(self, positions):
        """Item ids at catalog rows; negative rows (padding) become -1 / ""."""
        positions = np.asarray(positions)
        ids = self.item_ids[np.maximum(positions, 0)]
        ids[positions < 0] = -1 if ids.dtype.kind in "iu" else ""
        return ids

    def similar_items(self, item_id, k=10):
        """The `k` items nearest to `item_id` by embedding (itself excluded).

        Returns:
            `(ids, scores)`, 1-D arrays of length `k`.
        """
        row = self.item_rows([item_id])[0]
        if row < 0:
            raise KeyError(f"Unknown item id {item_id!r}.")
        positions, scores = self.exact_index.search(
            self.item_embeddings[row][None, :], k, exclude=[np.array([row])]
        )
        return self._ids_at(positions[0]), scores[0]


# Model kind -> "module:Class" of its bundle; imported on use, so loading a
# bundle imports only what its kind needs.
BUNDLE_CLASSES = {
    "two_tower": "recsys.bundle:Bundle",
    "text": "recsys.text_bundle:TextBundle",
    "tabular": "recsys.tabular_bundle:TabularBundle",
}


def load_bundle(path):
    """Loads a bundle of any model kind.

    Args:
        path: str. The bundle directory.

    Returns:
        The kind's bundle object (`Bundle` for two-tower retrieval).

    Raises:
        BundleError: if `path` is no bundle or of a kind this version of
            recsys does not know.

    Example:

    ```python
    bundle = load_bundle("artifacts/demo")
    ```
    """
    import importlib

    kind = read_manifest(path).get("kind", "two_tower")
    if kind not in BUNDLE_CLASSES:
        raise BundleError(
            f"{path} is a {kind!r} bundle; this recsys loads "
            f"{tuple(BUNDLE_CLASSES)}."
        )
    module, name = BUNDLE_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), name).load(path)
