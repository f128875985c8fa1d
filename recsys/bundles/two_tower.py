"""`Bundle`: a trained retrieval model as one self-describing directory.

Layout:
    manifest.json        versions, config, spec hash, metrics, index recall
    metrics.json         the run's metrics (also in the manifest)
    preprocessor.json    the fitted `features.Preprocessor`
    query_tower.keras    the query tower (loaded with `safe_mode=True`)
    candidate_tower.keras  the candidate tower, which embeds items added
                         later (`Bundle.add_items`); optional, as bundles
                         written before it existed lack it
    items.parquet        the catalog: item id and display columns
    item_ids.npy, item_embeddings.npy, item_popularity.npy
    user_ids.npy, user_embeddings.npy   precomputed queries of known users
    seen_indptr.npy, seen_items.npy     CSR of each user's training items
    ranked_*.npy         with model.second_stage: each known user's list
                         (`recsys.bundles.ranked_lists`); optional
    index/               the ScaNN or brute-force index over item embeddings

Everything is JSON, `.npy` (never pickled), Parquet or `.keras`. A bundle is
written into a temporary directory beside its destination and moved into
place with `os.replace`, so a crash never leaves a half-written bundle.

A bundle is a closed list of files: the manifest records the size and
sha256 of every other file, and loading (through `recsys.storage.files`)
refuses any file that is unlisted, a symlink or special file, too large or
changed, then checks every array's dtype, shape and values before Keras or
ScaNN sees it. Everything is read once, from one open directory handle, so
a directory swapped in while loading is never mixed in.
"""

import datetime
import functools
import hashlib
import json
import os
import re
import uuid
from typing import Any

import numpy as np
import pandas as pd

from recsys.bundles.ranked_lists import ARRAYS as RANKED_ARRAYS
from recsys.bundles.ranked_lists import RankedLists
from recsys.config.common import MAX_HISTORY
from recsys.errors import positive_int
from recsys.features import Preprocessor
from recsys.features import canonical_string
from recsys.features import canonical_strings
from recsys.index import BruteForceIndex
from recsys.index.base import Index
from recsys.index.builder import build_index_from_config
from recsys.index.builder import index_files
from recsys.index.builder import read_index
from recsys.index.recall import index_metrics
from recsys.names import HISTORY
from recsys.storage.atomic_write import recover_interrupted_write
from recsys.storage.atomic_write import write_atomically  # noqa: F401
from recsys.storage.files import BundleError
from recsys.storage.files import BundleFiles
from recsys.storage.files import file_digests
from recsys.storage.files import load_keras_bytes
from recsys.training.embed import MAX_EMBEDDING_NORM
from recsys.training.embed import norm_bound

# 2: the manifest lists every file's size and sha256 (`files`).
FORMAT_VERSION = 2
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

# The files every bundle kind holds; each kind's loader adds its own.
COMMON_FILES = (MANIFEST, "metrics.json", "preprocessor.json")
INDEX_DIR = "index"
TWO_TOWER_FILES = (
    *COMMON_FILES,
    "query_tower.keras",
    "items.parquet",
    *(f"{name}.npy" for name in ARRAYS),
)
# Optional: `Bundle.add_items` needs it; older bundles load without it.
CANDIDATE_TOWER = "candidate_tower.keras"
RANKED_FILES = tuple(f"{name}.npy" for name in RANKED_ARRAYS)


def spec_hash(config):
    """SHA-256 of the parts of a config that define the model's inputs."""
    keys = {k: config[k] for k in ("data", "features", "model")}
    text = json.dumps(keys, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _storable(ids):
    """Ids as a pickle-free array, kept exactly.

    Integers that fit int64 stay int64. Strings, and unsigned ids above
    2**63 - 1 (Parquet uint64), become `U` strings in their canonical
    spelling: an int64 cast would wrap those to negative numbers.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind == "i" or (
        ids.dtype.kind == "u"
        and (not ids.size or ids.max() <= np.iinfo(np.int64).max)
    ):
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


def write_manifest(directory, *, kind, config, metrics, **extra):
    """Writes `manifest.json` and `metrics.json` into `directory`.

    Call it last: the manifest lists the size and sha256 of every file
    already in `directory` (`files`), which loading checks.

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
        "version": new_version(now),
        "created_at": now.isoformat(),
        "versions": _library_versions(),
        "backend": keras.backend.backend(),
        "spec_hash": spec_hash(config),
        "config": config,
        "metrics": metrics,
        **extra,
    }
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    manifest["files"] = file_digests(directory, exclude=(MANIFEST,))
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def new_version(now=None):
    """A unique bundle version string: UTC time and a random suffix."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# What the loaders and the service read from a manifest, by key path, and
# the type each must have: a hand-edited manifest fails here with one line,
# not later with a TypeError (or a 3.6 TiB history buffer).
_MANIFEST_TYPES = {
    ("format_version",): int,
    ("kind",): str,
    ("version",): str,
    ("config",): dict,
    ("metrics",): dict,
    ("config", "data"): dict,
    ("config", "model"): dict,
    ("config", "data", "user"): str,
    ("config", "data", "item"): str,
    ("config", "data", "display"): str,
    ("config", "data", "label"): str,
    ("config", "data", "text"): str,
    ("config", "model", "kind"): str,
    ("config", "model", "task"): str,
    ("config", "model", "query_features"): list,
    ("config", "model", "candidate_features"): list,
    ("config", "model", "history_length"): int,
}


# Every kind's bundle holds these.
_REQUIRED = (("config",), ("config", "data"), ("config", "model"))


def _wrong_type(value, expected):
    if isinstance(value, bool) or not isinstance(value, expected):
        return True
    return expected is list and not all(isinstance(v, str) for v in value)


def _entry(manifest, keys):
    """`manifest[k1][k2]...`, or None where a key or a table is absent."""
    value = manifest
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _check_manifest_types(path, manifest):
    """Raises `BundleError` naming the first manifest entry of a wrong type
    (entries that are absent are the loaders' business, but for
    `_REQUIRED`)."""
    for keys, expected in _MANIFEST_TYPES.items():
        value = _entry(manifest, keys)
        if (value is not None or keys in _REQUIRED) and _wrong_type(
            value, expected
        ):
            what = {
                list: "a list of strings",
                dict: "a JSON object",
                str: "a string",
                int: "an integer",
            }[expected]
            # "Received: '2'" for "2" reads as the number 2 at a glance.
            text = "the string " if isinstance(value, str) else ""
            raise BundleError(
                f"{path}/{MANIFEST}: {'.'.join(keys)} must be {what}. "
                f"Received: {text}{str(value)[:80]!r}. Fix: retrain the "
                "bundle."
            )
    history = _entry(manifest, ("config", "model", "history_length"))
    if history is not None and not 0 <= history <= MAX_HISTORY:
        raise BundleError(
            f"{path}/{MANIFEST}: config.model.history_length must be 0 to "
            f"{MAX_HISTORY}. Received: {history}. Fix: retrain the bundle."
        )
    version = manifest.get("version")
    if version is not None and not _VERSION.fullmatch(version):
        raise BundleError(
            f"{path}/{MANIFEST}: version must be 1 to {MAX_VERSION} visible "
            "ASCII characters (no spaces or control characters), as "
            "training writes it (e.g. '20261130T181436Z-bf0cf337'). "
            f"Received: {len(version):,} characters, starting "
            f"{ascii(version[:40])}. Fix: retrain the bundle, or give it a "
            "short version."
        )


# The service answers every request with the bundle's version and logs it:
# a 5 MB version made a 5 KB batch request answer 1.28 GB, and newlines or
# terminal escapes in it forged log lines. `new_version` writes 25
# characters ("20261130T181436Z-bf0cf337"); a version renamed by hand to
# any short word of visible ASCII ("v2.1", "prod-2026-12") loads too.
MAX_VERSION = 64
_VERSION = re.compile(rf"[!-~]{{1,{MAX_VERSION}}}")

# Config keys each kind's loaders and the service read (the towers'
# inputs, the id columns, the task): a bundle's config must hold them as
# written. Other keys absent from an older bundle's config (keys added
# since) take their defaults.
_CONFIG_KEYS = {
    "two_tower": (
        ("data", "user"),
        ("data", "item"),
        ("model", "query_features"),
        ("model", "candidate_features"),
        ("model", "history_length"),
    ),
    "tabular": (("data", "user"), ("data", "item"), ("model", "task")),
    "text": (("data", "text"),),
}


def _known_keys(config, model):
    """`config` without the sections and keys that the config `model` (a
    `KindConfig` subclass) does not define: keys of an older recsys, which
    nothing reads (`features` is kept whole: its tables are checked)."""
    known = {}
    for section, value in config.items():
        field = model.model_fields.get(section)
        if field is None:
            continue
        keys = getattr(field.annotation, "model_fields", None)
        if section != "features" and isinstance(value, dict) and keys:
            value = {k: v for k, v in value.items() if k in keys}
        known[section] = value
    return known


def _checked_config(path, manifest, kind):
    """The manifest's config, validated as a `kind` config (as training
    validated it) with the defaults of keys an older bundle lacks.

    Raises:
        BundleError: naming the first key that is missing (of
            `_CONFIG_KEYS`), of the wrong type or value; one line.
    """
    from recsys.config import typed_config
    from recsys.errors import ConfigError
    from recsys.kinds import config_model

    config = manifest["config"]
    written = _entry(manifest, ("config", "model", "kind"))
    if written is not None and written != kind:
        raise BundleError(
            f"{path}/{MANIFEST}: config.model.kind is {written[:40]!r} in a "
            f"{kind!r} bundle. Fix: retrain the bundle."
        )
    for keys in _CONFIG_KEYS.get(kind, ()):
        if _entry(config, keys) is None:
            raise BundleError(
                f"{path}/{MANIFEST}: config.{'.'.join(keys)} is missing, "
                f"and loading a {kind!r} bundle reads it. Fix: retrain the "
                "bundle."
            )
    known = _known_keys(config, config_model(kind))
    known["model"] = {**known.get("model", {}), "kind": kind}
    try:
        return typed_config(known).to_dict()
    except (ConfigError, ValueError, TypeError) as error:
        # What is wrong, without the fix for a config file: retraining is.
        message = " ".join(str(error).split()).split(" Fix: ")[0]
        raise BundleError(
            f"{path}/{MANIFEST}: its config is not a valid {kind!r} config: "
            f"{message.rstrip('.')}. Fix: retrain the bundle."
        ) from None


def _check_manifest(path, manifest, kind):
    """Checks a manifest; its `config` becomes the validated config."""
    _check_manifest_types(path, manifest)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format_version "
            f"{manifest.get('format_version')!r}; this recsys reads "
            f"format_version {FORMAT_VERSION} (bundles that list the sha256 "
            "of every file). Fix: retrain it with this recsys, `recsys train "
            'CONFIG` (the settings it was trained with are under "config" '
            f"in {path}/{MANIFEST})."
        )
    found = manifest.get("kind", "two_tower")
    if kind is not None and found != kind:
        raise BundleError(
            f"{path} is a {found!r} bundle, not a {kind!r} bundle, which is "
            "what this command or class reads. (In Python, "
            "`recsys.load_bundle(path)` loads a bundle of any kind.)"
        )
    from recsys.kinds import KINDS

    if found in KINDS:  # else `load_bundle` names the kinds it knows
        manifest["config"] = _checked_config(path, manifest, found)


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
    recover_interrupted_write(path)  # a swap a kill cut short
    files, manifest = BundleFiles.open(path, MANIFEST)
    files.close()
    _check_manifest(path, manifest, kind)
    return manifest


def open_bundle(path, kind, allowed, required):
    """Opens a bundle directory once and checks its closed list of files.

    Args:
        path: str. The bundle directory.
        kind: str. The model kind the caller loads.
        allowed: collection of relative paths this kind may hold.
        required: collection of relative paths it must hold.

    Returns:
        `(files, manifest)`: an open `recsys.storage.files.BundleFiles`
        (close it, or use it in a `with` block) and the manifest.

    Raises:
        BundleError: naming what is missing, unexpected or incompatible.
    """
    recover_interrupted_write(path)  # a swap a kill cut short
    files, manifest = BundleFiles.open(path, MANIFEST)
    try:
        # Hashed as written: the check fills in newer keys' defaults.
        hashed = _spec_hash_matches(manifest)
        _check_manifest(path, manifest, kind)
        files.check_files(manifest.get("files"), allowed, required)
        _check_unedited(files, manifest, hashed)
    except BaseException:
        files.close()
        raise
    return files, manifest


def _spec_hash_matches(manifest):
    """Whether the manifest's config hashes to its `spec_hash` (None: a
    manifest without one)."""
    if not isinstance(manifest, dict) or "spec_hash" not in manifest:
        return None
    try:
        return spec_hash(manifest["config"]) == manifest["spec_hash"]
    except (KeyError, TypeError, ValueError):
        return False


def _check_unedited(files, manifest, hashed):
    """Raises `BundleError` where the manifest was edited after training.

    The manifest is the one file without a checksum (it holds them), so
    what it repeats is compared instead: its metrics with `metrics.json`,
    its config's data, features and model with its `spec_hash` (`hashed`:
    `_spec_hash_matches` of the manifest as read). (An edited AUC was
    printed by `recsys evaluate` as the bundle's own.)
    """
    where = f"{files.path}/{MANIFEST}"
    fix = "Fix: retrain the bundle, or restore its manifest."
    if "metrics" in manifest:
        stored = json.dumps(files.json("metrics.json"), sort_keys=True)
        if json.dumps(manifest["metrics"], sort_keys=True) != stored:
            raise BundleError(
                f"{where}: its metrics differ from metrics.json, whose "
                f"checksum matches: the manifest was edited. {fix}"
            )
    if hashed is False:
        raise BundleError(
            f"{where}: its config's data, features or model differ from "
            f"those it was trained with (spec_hash): the manifest was "
            f"edited. {fix}"
        )


def read_preprocessor(files):
    """The checked `preprocessor.json` of an open bundle."""
    try:
        return Preprocessor.from_config(files.json("preprocessor.json"))
    except BundleError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BundleError(
            f"{files.path}/preprocessor.json is corrupt: {error!r}"
        ) from None


def _check_numbers_filled(path, preprocessor):
    """Towers read no NaN: numeric features must fill empty cells."""
    kept = [
        f.name
        for f in preprocessor.features
        if getattr(f, "missing", "mean") != "mean"
    ]
    if kept:
        raise BundleError(
            f"{path}/preprocessor.json keeps the empty cells of numeric "
            f'features {kept} as NaN (missing = "indicator"), which a '
            "two-tower model does not read."
        )


def _check_ids(ids, where, count):
    if ids.dtype not in (np.int64,) and ids.dtype.kind != "U":
        raise BundleError(
            f"{where} must hold int64 or unicode ids. Received: "
            f"dtype={ids.dtype}"
        )
    if ids.shape != (count,):
        raise BundleError(
            f"{where} must have shape ({count},) (the manifest's count). "
            f"Received: shape={ids.shape}"
        )
    if ids.dtype == np.int64:
        # Distinct integers have distinct canonical strings: check the
        # integers (a rising array at once, else a hash table).
        rising = bool((ids[1:] > ids[:-1]).all())
        unique = rising or len(pd.unique(ids)) == count
    else:
        try:
            spelled = canonical_strings(pd.Series(ids))
        except UnicodeError as error:  # a lone surrogate: no UTF-8 text
            raise BundleError(
                f"{where} holds an id that is not valid text ({error}). "
                "Fix: retrain the bundle."
            ) from None
        unique = len(pd.unique(spelled)) == count
    if not unique:
        raise BundleError(
            f"{where} holds duplicate ids: each id must appear once. Fix: "
            "retrain the bundle."
        )


def _id_strings(ids):
    """The canonical strings of `ids` (`canonical_strings`), as a list.

    Integer and unicode ids (what bundles store) are spelled without
    pandas, 20x faster: an integer's decimal digits, a string itself.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return list(map(str, ids.tolist()))
    if ids.dtype.kind == "U":
        return ids.tolist()
    return canonical_strings(pd.Series(ids)).tolist()


# A whole number as text with a fraction of zeros ("6.0"): how a table
# whose id column has an empty cell (so floats) spells the id 6, which
# training reads as "6".
_WHOLE_NUMBER = re.compile(r"^(-?\d+)\.0*$")


def whole_number(key):
    """`key` without its zero fraction ("6.0" -> "6"), else None."""
    match = _WHOLE_NUMBER.match(key)
    return match.group(1) if match else None


def _rows_of(index, ids):
    """Rows of `ids` in `index` (-1 where absent), an id spelled "6.0"
    found as "6" where only that is there."""
    keys = canonical_strings(pd.Series(ids))
    rows = index.get_indexer(keys)
    absent = np.flatnonzero(rows < 0)
    wholes = [
        whole_number(k) if isinstance(k, str) else None for k in keys[absent]
    ]
    rows[absent] = index.get_indexer(wholes)
    return rows


def _same_array(a, b):
    """`np.array_equal`, at once when both view the same memory (files
    with one digest are kept once: `BundleFiles.read`)."""
    if (
        a.shape == b.shape
        and a.dtype == b.dtype
        and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    ):
        return True
    return np.array_equal(a, b)


def check_arrays(path, arrays, manifest):
    """Checks a two-tower bundle's arrays against each other and the manifest.

    Raises:
        BundleError: naming the file, what was expected and what was found.
    """

    def where(name):
        return os.path.join(path, f"{name}.npy")

    num_items, num_users = manifest.get("num_items"), manifest.get("num_users")
    if not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**63
        for n in (num_items, num_users)
    ):
        raise BundleError(
            f"{path}/{MANIFEST} lacks num_items / num_users (integers of 0 "
            f"or more). Received: {str(num_items)[:40]!r} / "
            f"{str(num_users)[:40]!r}. Fix: retrain the bundle."
        )
    _check_ids(arrays["item_ids"], where("item_ids"), num_items)
    _check_ids(arrays["user_ids"], where("user_ids"), num_users)
    items = arrays["item_embeddings"]
    if items.dtype != np.float32 or items.ndim != 2 or 0 in items.shape:
        raise BundleError(
            f"{where('item_embeddings')} must be float32 of shape "
            f"({num_items}, dim). Received: {items.dtype} {items.shape}"
        )
    shapes = {
        "item_embeddings": (np.float32, (num_items, items.shape[1])),
        "user_embeddings": (np.float32, (num_users, items.shape[1])),
        "item_popularity": (np.float32, (num_items,)),
        "seen_indptr": (np.int64, (num_users + 1,)),
    }
    for name, (dtype, shape) in shapes.items():
        array = arrays[name]
        if array.dtype != dtype or array.shape != shape:
            raise BundleError(
                f"{where(name)} must be {np.dtype(dtype)} of shape {shape}. "
                f"Received: dtype={array.dtype}, shape={array.shape}"
            )
    for name in ("item_embeddings", "user_embeddings", "item_popularity"):
        if not np.isfinite(arrays[name]).all():
            raise BundleError(f"{where(name)} holds NaN or inf values.")
    for name in ("item_embeddings", "user_embeddings"):
        norm = norm_bound(arrays[name])
        if norm > MAX_EMBEDDING_NORM:
            raise BundleError(
                f"{where(name)} holds vectors of norm up to {norm:.3g}, over "
                f"the {MAX_EMBEDDING_NORM:.0e} limit: their dot products "
                "(the scores) would overflow float32 to inf or NaN. A trained "
                "model's vectors have norms of tens to hundreds. Fix: retrain "
                "the bundle."
            )
    if (arrays["item_popularity"] < 0).any():
        raise BundleError(f"{where('item_popularity')} holds negative values.")
    seen, indptr = arrays["seen_items"], arrays["seen_indptr"]
    # The streamed trainer writes int32 rows (half the memory at 100M
    # interactions); both index a catalog of at most 2**31 items.
    if seen.dtype not in (np.int32, np.int64) or seen.ndim != 1:
        raise BundleError(
            f"{where('seen_items')} must be 1-D int32 or int64. Received: "
            f"{seen.dtype} {seen.shape}"
        )
    if indptr[0] != 0 or indptr[-1] != len(seen):
        raise BundleError(
            f"{where('seen_indptr')} must rise from 0 to {len(seen)} (the "
            f"length of seen_items.npy). Received: starts at {indptr[0]}, "
            f"ends at {indptr[-1]}."
        )
    # Both ends can be right and a middle entry still fall (rows swapped by
    # hand): name where, or "starts at 0, ends at N" explains nothing.
    falls = np.flatnonzero(np.diff(indptr) < 0)
    if len(falls):
        at = int(falls[0])
        raise BundleError(
            f"{where('seen_indptr')} must never fall (user i's seen items "
            "are seen_items.npy[indptr[i]:indptr[i + 1]]). Received: "
            f"{indptr[at]} at position {at}, then {indptr[at + 1]}"
            + (f" ({len(falls):,} falls in all)" if len(falls) > 1 else "")
            + ". Fix: retrain the bundle."
        )
    if len(seen) and (seen.min() < 0 or seen.max() >= num_items):
        raise BundleError(
            f"{where('seen_items')} must hold catalog rows in "
            f"[0, {num_items}). Received: [{seen.min()}, {seen.max()}]"
        )


def _save_tower(tower, path):
    """Saves a Keras model, or writes the checked bytes of a loaded one."""
    if isinstance(tower, (bytes, bytearray)):
        with open(path, "wb") as f:
            f.write(tower)
    else:
        tower.save(path)


def write_bundle(
    path,
    *,
    config,
    metrics,
    preprocessor,
    query_tower,
    items,
    arrays,
    index,
    candidate_tower=None,
    manifest_extra=None,
):
    """Writes a two-tower bundle directory atomically.

    Args:
        path: str. Destination directory. An existing bundle there is
            replaced; any other existing non-empty directory is refused.
        config: dict. The run config.
        metrics: dict. Written to `metrics.json` and the manifest.
        preprocessor: fitted `features.Preprocessor`.
        query_tower: Keras model, saved as `query_tower.keras`, or the
            bytes of a `.keras` file.
        items: DataFrame. The catalog columns to keep (`items.parquet`).
        arrays: dict. The arrays named in `ARRAYS`, and those of
            `RankedLists` for a run with a second stage.
        index: a `recsys.index` index over `arrays["item_embeddings"]`.
        candidate_tower: Keras model or `.keras` bytes, saved as
            `candidate_tower.keras` so that `Bundle.add_items` can embed
            new items; `None` writes a bundle without it.
        manifest_extra: dict or None. More manifest fields.

    Returns:
        The absolute path of the bundle.
    """

    item = ((config or {}).get("data") or {}).get("item")
    if (
        isinstance(item, str)
        and items is not None
        and item in items
        and items[item].dtype.kind == "u"
    ):
        # Unsigned ids as item_ids.npy stores them (past int64: as text),
        # so that `recsys index` merges new rows into one type.
        items = items.assign(**{item: _storable(items[item])})

    def fill(tmp):
        preprocessor.save(os.path.join(tmp, "preprocessor.json"))
        _save_tower(query_tower, os.path.join(tmp, "query_tower.keras"))
        if candidate_tower is not None:
            _save_tower(candidate_tower, os.path.join(tmp, CANDIDATE_TOWER))
        items.to_parquet(os.path.join(tmp, "items.parquet"), index=False)
        for name in (*ARRAYS, *(n for n in RANKED_ARRAYS if n in arrays)):
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
            **(manifest_extra or {}),
        )

    return write_atomically(path, fill, "two_tower")


def _checked_tower(tower, where, features, preprocessor, item):
    """`tower`, once its inputs are the bundle's: `features`, each table
    as large as its vocabulary (the history's: the item's).

    Raises:
        BundleError: for a tower of other inputs (another bundle's, or the
            other tower), which would fail or read out of its tables on
            every query.
    """
    # A `Tower` keeps its inputs as dicts (another model has none).
    inputs = list(getattr(tower, "inputs_config", None) or [])
    names = [spec.get("name") for spec in inputs]
    if sorted(map(str, names)) != sorted(features):
        raise BundleError(
            f"{where} reads inputs {names}; the bundle's config gives it "
            f"{features}. Fix: retrain the bundle."
        )
    for spec in inputs:
        feature = item if spec["name"] == HISTORY else spec["name"]
        if spec.get("type") != "embedding" or "num_hashes" in spec:
            continue
        try:
            rows = preprocessor.input_dim(feature)
        except (KeyError, ValueError) as error:  # not a table of its own
            raise BundleError(
                f"{where}: input '{spec['name']}' has no table in "
                f"preprocessor.json ({error}). Fix: retrain the bundle."
            ) from None
        if spec.get("input_dim") != rows:
            raise BundleError(
                f"{where}: input '{spec['name']}' has a table of "
                f"{spec.get('input_dim')} rows, and preprocessor.json gives "
                f"'{feature}' {rows} ids. Fix: retrain the bundle."
            )
    return tower


def _check_user_list(user_ids):
    """Raises `ValueError` unless `user_ids` is a 1-D list or array (a pair
    `[[1, 42]]` would be read as one unknown user) without missing ids."""
    if isinstance(user_ids, (str, bytes)) or np.ndim(user_ids) != 1:
        raise ValueError(
            "`user_ids` must be a 1-D list or array of user ids. "
            f"Received: {str(user_ids)[:80]!r}. Fix: pass [user] for one."
        )
    # A missing id (a failed join upstream) would get the most popular
    # items as an unknown user does, hiding the join's failure.
    missing = np.flatnonzero(pd.isna(np.asarray(user_ids, dtype=object)))
    if len(missing):
        raise ValueError(
            f"`user_ids` holds {len(missing):,} missing id(s) (None, NaN or "
            f"NA) at position(s) {missing[:5].tolist()}. Fix: drop or fill "
            "them before recommending (a missing id often comes from a "
            "failed join)."
        )


class ManifestProperties:
    """A loaded bundle's `config`, `metrics` and `version` (its manifest)."""

    manifest: dict[str, Any]

    @property
    def config(self) -> Any:
        return self.manifest["config"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]

    @property
    def version(self) -> str:
        """The bundle's unique version string (from its manifest)."""
        return self.manifest.get("version", "unversioned")

    def __repr__(self) -> str:
        kind = self.manifest.get("kind", "two_tower")
        path = getattr(self, "path", None)
        return f"{type(self).__name__}({kind}, {path!r}, {self.version})"


class Bundle(ManifestProperties):
    """A loaded bundle: recommends items for users from precomputed vectors.

    Use `Bundle.load(path)`; see the module docstring for the layout.

    Example:

    ```python
    bundle = Bundle.load("artifacts/movielens_two_tower")
    ids, scores = bundle.recommend([1, 42], k=10)
    ```
    """

    # Set from `arrays` (the names in `ARRAYS`), checked by `check_arrays`.
    item_ids: np.ndarray
    item_embeddings: np.ndarray
    item_popularity: np.ndarray
    user_ids: np.ndarray
    user_embeddings: np.ndarray
    seen_indptr: np.ndarray
    seen_items: np.ndarray

    def __init__(
        self,
        path: str | None,
        manifest: dict[str, Any],
        preprocessor: Preprocessor,
        items: pd.DataFrame,
        arrays: dict[str, np.ndarray],
        index: Index,
        query_tower_bytes: bytes | bytearray | None = None,
        candidate_tower_bytes: bytes | bytearray | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.items = items
        self.index = index
        for name in ARRAYS:
            setattr(self, name, arrays[name])
        # The second stage's lists (`model.second_stage`), or None.
        self.ranked = RankedLists.from_arrays(arrays)
        # The checked bytes read at load: the tower is built from these on
        # first use, never from a file reopened later.
        self._query_tower_bytes = query_tower_bytes
        self._query_tower: Any = None
        self._candidate_tower_bytes = candidate_tower_bytes
        self._candidate_tower: Any = None
        self._user_dict: dict[str, int] | None = None

    # Built on first use, not at load: seconds on a 1M-item bundle that a
    # server would otherwise spend before its first answer.

    @functools.cached_property
    def exact_index(self) -> BruteForceIndex:
        """Exact (brute-force) search over the item embeddings."""
        return BruteForceIndex(self.item_embeddings)

    @functools.cached_property
    def popular_rows(self) -> np.ndarray:
        """Catalog rows, most popular first, ties by row (ascending id)."""
        return np.argsort(-self.item_popularity, kind="stable")

    @functools.cached_property
    def _user_rows(self) -> pd.Index:
        return pd.Index(_id_strings(self.user_ids), dtype=object)

    @functools.cached_property
    def _item_rows(self) -> pd.Index:
        return pd.Index(_id_strings(self.item_ids), dtype=object)

    @classmethod
    def load(cls, path: str) -> "Bundle":
        """Loads a bundle directory written by `recsys train`.

        Args:
            path: str. The bundle directory.

        Returns:
            A `Bundle`.

        Raises:
            BundleError: if the directory is missing, incomplete or was
                written by an incompatible version.
        """
        index_allowed, _ = index_files("scann")
        allowed = {
            *TWO_TOWER_FILES,
            CANDIDATE_TOWER,
            *RANKED_FILES,
            *(f"{INDEX_DIR}/{name}" for name in index_allowed),
        }
        required = {*TWO_TOWER_FILES, f"{INDEX_DIR}/index.json"}
        files, manifest = open_bundle(path, "two_tower", allowed, required)
        with files:
            # Every listed file is read: all at once, two at a time.
            files.prefetch(list(files.files))
            files.read("metrics.json")  # checked, though read on demand
            arrays = {name: files.npy(f"{name}.npy") for name in ARRAYS}
            check_arrays(path, arrays, manifest)
            listed = [n for n in RANKED_FILES if n in manifest.get("files", ())]
            if listed and len(listed) < len(RANKED_FILES):
                raise BundleError(
                    f"Bundle {path} holds {listed} but not all of "
                    f"{list(RANKED_FILES)} (the second stage's lists). Fix: "
                    "retrain the bundle."
                )
            if listed:
                for name in RANKED_ARRAYS:
                    arrays[name] = files.npy(f"{name}.npy")
                RankedLists.from_arrays(arrays).check(
                    path,
                    manifest["num_users"],
                    manifest["num_items"],
                    (arrays["seen_indptr"], arrays["seen_items"]),
                )
            preprocessor = read_preprocessor(files)
            _check_numbers_filled(path, preprocessor)
            items = files.parquet("items.parquet")
            query_tower_bytes = files.read("query_tower.keras")
            candidate_tower_bytes = None
            if CANDIDATE_TOWER in manifest.get("files", ()):
                candidate_tower_bytes = files.read(CANDIDATE_TOWER)
            index = read_index(files, f"{INDEX_DIR}/")
        embeddings = arrays["item_embeddings"]
        if len(items) != len(embeddings):
            raise BundleError(
                f"{path}/items.parquet has {len(items)} rows for "
                f"{len(embeddings)} items."
            )
        item = manifest["config"]["data"].get("item")
        if item not in items.columns:
            raise BundleError(
                f"{path}/items.parquet lacks the item column '{item}' "
                f"(config.data.item); it holds {list(items.columns)[:10]}. "
                "Fix: retrain the bundle."
            )
        if not (
            _same_array(index.embeddings, embeddings)
            and np.array_equal(index.ids, np.arange(len(embeddings)))
        ):
            raise BundleError(
                f"Bundle {path} is inconsistent: {INDEX_DIR}/ does not index "
                "item_embeddings.npy by catalog row."
            )
        index.embeddings = embeddings  # equal: keep one copy in memory
        return cls(
            path,
            manifest,
            preprocessor,
            items,
            arrays,
            index,
            query_tower_bytes,
            candidate_tower_bytes,
        )

    # -- properties ------------------------------------------------------

    @property
    def query_tower(self) -> Any:
        """The query tower, loaded on first use with `safe_mode=True`."""
        if self._query_tower is None:
            if self._query_tower_bytes is None:
                raise BundleError(
                    "This bundle was built without a query tower."
                )
            model = self.config["model"]
            where = os.path.join(str(self.path), "query_tower.keras")
            self._query_tower = _checked_tower(
                load_keras_bytes(self._query_tower_bytes, where),
                where,
                model["query_features"]
                + ([HISTORY] if model["history_length"] else []),
                self.preprocessor,
                self.config["data"]["item"],
            )
        return self._query_tower

    @property
    def candidate_tower(self) -> Any:
        """The candidate tower, loaded on first use with `safe_mode=True`.

        Raises:
            BundleError: for a bundle written without
                `candidate_tower.keras` (before `recsys index` existed).
        """
        if self._candidate_tower is None:
            if self._candidate_tower_bytes is None:
                raise BundleError(
                    f"Bundle {self.path} has no {CANDIDATE_TOWER}: it was "
                    "written before bundles kept the candidate tower, so "
                    "new items cannot be embedded without retraining. Fix: "
                    "retrain it once (`recsys train CONFIG --output "
                    "BUNDLE`); later items can then be added with "
                    "`recsys index BUNDLE --items FILE`."
                )
            where = os.path.join(str(self.path), CANDIDATE_TOWER)
            self._candidate_tower = _checked_tower(
                load_keras_bytes(self._candidate_tower_bytes, where),
                where,
                self.config["model"]["candidate_features"],
                self.preprocessor,
                self.config["data"]["item"],
            )
        return self._candidate_tower

    # -- new items and writing ---------------------------------------------

    def add_items(self, frame: pd.DataFrame) -> "Bundle":
        """A new bundle whose catalog also holds the items of `frame`.

        Each row's item is embedded by the bundle's candidate tower from
        its candidate features (`model.candidate_features`), through the
        bundle's fitted preprocessor: an id the model never saw falls to
        the preprocessor's out-of-vocabulary (or hashed) id, and its
        content features, such as genres, still place it. New ids join
        the catalog with popularity 0, in id order (the catalog stays
        sorted, as evaluation needs); ids already in the catalog are
        re-embedded from the new features and keep their popularity.
        Users and their vectors are unchanged (their seen items are
        renumbered with the rows), and the index is rebuilt with the
        bundle's `[index]` config, tuned on the users' query vectors as
        training tunes it. Nothing is written: call `save`.

        Args:
            frame: DataFrame. One row per item, holding the item id column
                (`data.item`), every candidate feature column and, when
                present, the display column (`data.display`).

        Returns:
            A new, unwritten `Bundle` (`path` is `None`). Its manifest's
            `item_updates` records how many items were added and updated.

        Raises:
            BundleError: if the bundle has no `candidate_tower.keras`.
            ValueError: for an empty frame, a missing column, null or
                duplicate ids, or ids of another type than the catalog's.

        Example:

        ```python
        bundle = Bundle.load("artifacts/movielens_two_tower")
        new = pd.DataFrame(
            {"movieId": [200001], "genres": ["Comedy|Drama"], "year": [2024]}
        )
        bundle.add_items(new).save("artifacts/movielens_two_tower")
        ```
        """
        from recsys.bundles.new_items import merge_items

        merged = merge_items(self, frame, self.candidate_tower)
        arrays = self._arrays()
        arrays.update(merged.arrays)
        if self.ranked is not None:
            # Listed items keep their place; other items (the new ones
            # too) stay below each list.
            ranked = self.ranked.renumbered(
                merged.row_of,
                arrays["user_embeddings"],
                arrays["item_embeddings"],
            )
            arrays.update(ranked.arrays())
        # Tuned on the users' query vectors, as training tunes it: tuned on
        # item vectors, MovieLens searched 6 of 181 leaves instead of 18
        # (recall@10 against exact search 0.82, not 0.96).
        index = build_index_from_config(
            arrays["item_embeddings"],
            self.config["index"],
            progress=False,
            queries=arrays["user_embeddings"],
            seen=(arrays["seen_indptr"], arrays["seen_items"]),
        )
        # The training run's metrics but for the index, rebuilt here.
        metrics = {
            **self.manifest.get("metrics", {}),
            "index": index_metrics(
                index,
                arrays["user_embeddings"],
                (arrays["seen_indptr"], arrays["seen_items"]),
            ),
        }
        # No `files`: that list describes the directory it was read from.
        manifest = {
            **{k: v for k, v in self.manifest.items() if k != "files"},
            "metrics": metrics,
            "version": new_version(),
            "num_items": int(len(arrays["item_ids"])),
            "item_updates": [
                *self.manifest.get("item_updates", []),
                merged.note,
            ],
        }
        bundle = Bundle(
            None,
            manifest,
            self.preprocessor,
            merged.items,
            arrays,
            index,
            self._query_tower_bytes,
            self._candidate_tower_bytes,
        )
        # Already built from the same bytes: share, don't load twice.
        bundle._query_tower = self._query_tower
        bundle._candidate_tower = self._candidate_tower
        return bundle

    def save(self, path: str) -> str:
        """Writes this bundle to `path`, atomically.

        An existing bundle at `path` (this bundle's own directory too) is
        replaced in one rename, so a service watching it (`recsys serve
        --watch`) reloads a whole bundle. The manifest keeps the config,
        the metrics of the training run (measured on the catalog at
        training time; the index's, of the index it holds), `item_updates`
        and its `version` (`add_items` gave
        the updated bundle a new one; a plain copy keeps the original's).

        Args:
            path: str. The bundle directory.

        Returns:
            str. The absolute path of the bundle.

        Raises:
            BundleError: if the bundle holds no query tower (an in-memory
                bundle of a training run), or `path` holds something else.
        """
        if self._query_tower_bytes is None:
            raise BundleError(
                "This bundle holds no query_tower.keras bytes (it was built "
                "in memory, not loaded), so it cannot be saved. Fix: write "
                "bundles with `recsys train`, then load them."
            )
        # The version `add_items` gave it: what the service will report.
        extra = {"version": self.version}
        if "item_updates" in self.manifest:
            extra["item_updates"] = self.manifest["item_updates"]
        return write_bundle(
            path,
            config=self.config,
            metrics=self.metrics,
            preprocessor=self.preprocessor,
            query_tower=self._query_tower_bytes,
            candidate_tower=self._candidate_tower_bytes,
            items=self.items,
            arrays=self._arrays(),
            index=self.index,
            manifest_extra=extra,
        )

    def _arrays(self):
        """Every array this bundle writes, by name."""
        arrays = {name: getattr(self, name) for name in ARRAYS}
        if self.ranked is not None:
            arrays.update(self.ranked.arrays())
        return arrays

    # -- lookups -----------------------------------------------------------

    def user_row(self, user_id):
        """Row of one user (-1 if unseen): a dict lookup, for serving."""
        if self._user_dict is None:
            ids = _id_strings(self.user_ids)
            self._user_dict = dict(zip(ids, range(len(ids)), strict=True))
        key = canonical_string(user_id)
        row = self._user_dict.get(key, -1)
        if row < 0 and isinstance(key, str):
            row = self._user_dict.get(whole_number(key), -1)
        return row

    def user_rows(self, user_ids):
        """Row of each user in the bundle, -1 for users it has not seen."""
        return _rows_of(self._user_rows, user_ids)

    def item_rows(self, item_ids):
        """Row of each item in the catalog, -1 for unknown items."""
        return _rows_of(self._item_rows, item_ids)

    def seen(self, row):
        """Catalog rows of the training items of the user at `row`."""
        return self.seen_items[
            self.seen_indptr[row] : self.seen_indptr[row + 1]
        ]

    def score(self, user_ids, *, ranked=True):
        """Exact scores of every catalog item for each user.

        Unknown users score items by popularity (their share of training
        interactions). With a second stage (`model.second_stage`), a known
        user's listed items score the list's scores and every other item
        the model's score plus the user's offset, below the list
        (`recsys.bundles.ranked_lists`): the order `recommend` answers in.

        Args:
            user_ids: list or array of user ids, as `recommend` takes them.
            ranked: bool. `False` scores by the model alone (the first
                stage), lists or not. Defaults to `True`.

        Returns:
            float32 array `(len(user_ids), num_items)`.
        """
        _check_user_list(user_ids)
        rows = self.user_rows(user_ids)
        queries = self.user_embeddings[np.maximum(rows, 0)]
        scores = queries @ self.item_embeddings.T
        # Identical item vectors tie, as in exact search (ties by id).
        self.exact_index.identical.equalize(scores, queries)
        if ranked and self.ranked is not None and (rows >= 0).any():
            known = np.flatnonzero(rows >= 0)
            part = scores[known]
            self.ranked.apply(rows[known], part)
            scores[known] = part
        scores[rows < 0] = self.item_popularity
        return scores.astype(np.float32)

    # -- recommendations ---------------------------------------------------

    def recommend(self, user_ids, k=10, exclude_seen=True, exact=False):
        """Top-k items for each user, best first.

        Known users are scored by the dot product of their precomputed query
        vector and every item vector, through the index (`exact=False`) or by
        brute force (`exact=True`). Users the bundle has never seen get the
        most popular items, with scores equal to each item's share of the
        training interactions. With a second stage (`model.second_stage`),
        a known user's list comes first, then the index's answer beyond it
        (`score` gives the same order).

        Args:
            user_ids: list or array of user ids, in the data's own type (ints
                for MovieLens; `"42"`, `42` and `"42.0"` are the same user).
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
        k = positive_int(k, "k")
        _check_user_list(user_ids)
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
            # A k as large as the catalog asks for all of it: exhaustively.
            whole = k >= len(self.item_ids)
            index = self.exact_index if exact or whole else self.index
            if self.ranked is None:
                positions, found = index.search(
                    self.user_embeddings[rows[known]], k, exclude=exclude
                )
            else:
                positions, found = self._after_lists(
                    rows[known], k, exclude, index
                )
            ids[known], scores[known] = self._ids_at(positions), found
        if (~known).any():
            top = self.popular_rows[:k]
            top = np.r_[top, np.full(k - len(top), -1)].astype(np.int64)
            ids[~known] = self._ids_at(top)
            popularity = np.where(top >= 0, self.item_popularity[top], -np.inf)
            scores[~known] = popularity
        return ids, scores

    def _after_lists(self, rows, k, exclude, index):
        """`(positions, scores)` of known users with a second stage: each
        one's list, then the index's best items off it (model + offset)."""
        ranked: RankedLists = self.ranked
        positions = np.full((len(rows), k), -1, np.int64)
        scores = np.full((len(rows), k), -np.inf, np.float32)
        for j, row in enumerate(rows):
            listed, listed_scores = ranked.of(row)
            top = min(len(listed), k)
            positions[j, :top], scores[j, :top] = (
                listed[:top],
                listed_scores[:top],
            )
        lengths = ranked.indptr[rows + 1] - ranked.indptr[rows]
        short = np.flatnonzero(lengths < k)
        if not len(short):
            return positions, scores
        banned = [
            np.concatenate(
                [ranked.of(rows[j])[0], exclude[j] if exclude else []]
            ).astype(np.int64)
            for j in short
        ]
        found, found_scores = index.search(
            self.user_embeddings[rows[short]], k, exclude=banned
        )
        for at, user in enumerate(short):
            start = int(lengths[user])
            more = found[at, : k - start]
            positions[user, start:] = more
            scores[user, start:] = np.where(
                more >= 0,
                found_scores[at, : k - start] + ranked.offsets[rows[user]],
                -np.inf,
            )
        return positions, scores

    def _ids_at(self, positions):
        """Item ids at catalog rows; negative rows (padding) become -1 / ""."""
        positions = np.asarray(positions)
        ids = self.item_ids[np.maximum(positions, 0)]
        ids[positions < 0] = -1 if ids.dtype.kind in "iu" else ""
        return ids

    def similar_items(self, item_id, k=10):
        """The `k` items nearest to `item_id` by embedding (itself excluded).

        Args:
            item_id: an item id of the catalog.
            k: int. Items returned, capped at the catalog's other items.
                Defaults to `10`.

        Returns:
            `(ids, scores)`, 1-D arrays of length `k` (or of every other
            item, for a `k` as large as the catalog).
        """
        k = positive_int(k, "k")
        row = self.item_rows([item_id])[0]
        if row < 0:
            raise KeyError(f"Unknown item id {item_id!r}.")
        k = min(int(k), len(self.item_ids) - 1)
        if k == 0:  # a catalog of one item
            return self.item_ids[:0], np.zeros(0, np.float32)
        positions, scores = self.exact_index.search(
            self.item_embeddings[row][None, :], k, exclude=[np.array([row])]
        )
        return self._ids_at(positions[0]), scores[0]
