"""ScaNN's saved files, checked before ScaNN reads any of them.

ScaNN's own loader trusts its directory: `load_searcher` unpickles
`scann_docids.pkl` whenever it exists, follows any `asset_path`, and its
C++ code indexes arrays without bounds checks (a short `dataset.npy` or a
token past the last leaf crashes the process). So a saved searcher is a
closed list of files (`SCANN_FILES`), each parsed and checked here against
the index's count, dimension and options, then copied into a private
temporary directory with an assets file written here, and only that
directory is handed to ScaNN.
"""

import math
import os
import re
import shutil
from typing import Any

import numpy as np

from recsys.index.scann_builder import scann_builder
from recsys.index.scann_modules import scann_module
from recsys.index.scann_modules import scann_ops
from recsys.storage.files import BundleError
from recsys.storage.files import BundleFiles
from recsys.storage.files import load_npy
from recsys.storage.files import private_dir

SCANN_DIR = "scann"
ASSETS = "scann_assets.pbtxt"
CONFIG = "scann_config.pb"
# ScaNN asset type -> the one file name our writer gives it.
ASSET_FILES = {
    "AH_CENTERS": "ah_codebook.pb",
    "PARTITIONER": "serialized_partitioner.pb",
    "TOKENIZATION_NPY": "datapoint_to_token.npy",
    "AH_DATASET_NPY": "hashed_dataset.npy",
    "AH_DATASET_SOAR_NPY": "hashed_dataset_soar.npy",
    "DATASET_NPY": "dataset.npy",
}
REQUIRED_ASSETS = ("AH_CENTERS", "PARTITIONER", "TOKENIZATION_NPY")
# Every file a saved searcher (tree + AH, optional SOAR and float reorder)
# holds.
SCANN_FILES = (ASSETS, CONFIG, *ASSET_FILES.values())
_ASSET = re.compile(
    r"\s*assets\s*\{\s*asset_type:\s*([A-Z0-9_]+)\s*"
    r'asset_path:\s*"([^"\\]*)"\s*\}'
)


def parse_assets(text: str, where: str) -> dict[str, str]:
    """`{asset_type: file name}` of a `scann_assets.pbtxt`, strictly.

    Only the entries our writer produces are accepted: known asset types,
    each once, each at its plain file name inside `scann/` (never a path
    out of it, such as `/etc/passwd` or `../../x`).

    Raises:
        BundleError: naming the file and the offending entry.
    """
    assets, position = {}, 0
    while position < len(text.rstrip()):
        match = _ASSET.match(text, position)
        if match is None:
            raise BundleError(
                f"{where} is not a list of ScaNN assets: unexpected text at "
                f"character {position}: {text[position : position + 40]!r}"
            )
        kind, path = match.groups()
        if ASSET_FILES.get(kind) != path or kind in assets:
            raise BundleError(
                f"{where} lists asset {kind} at {path!r}; a bundle's ScaNN "
                f"assets are plain files inside {SCANN_DIR}/ named "
                f"{ASSET_FILES}, each once. Refusing to load it."
            )
        assets[kind] = path
        position = match.end()
    missing = [kind for kind in REQUIRED_ASSETS if kind not in assets]
    if missing:
        raise BundleError(f"{where} lacks the ScaNN assets {missing}.")
    return assets


def expected_config(
    embeddings: np.ndarray, options: dict[str, Any], random_init: bool = False
) -> Any:
    """The `ScannConfig` that `ScannIndex` builds for `options` (with
    `random_init`, as indexes saved before k-means++ were built)."""
    from google.protobuf import text_format

    scann_pb2 = scann_module("proto.scann_pb2")
    config = scann_pb2.ScannConfig()
    text_format.Parse(
        scann_builder(
            embeddings, options, random_init=random_init
        ).create_config(),
        config,
    )
    return config


def _check_array(array, where, dtype, shape, high=None):
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise BundleError(
            f"{where} must be {np.dtype(dtype)} of shape {shape}. Received: "
            f"dtype={array.dtype}, shape={array.shape}"
        )
    if (
        high is not None
        and array.size
        and (array.min() < 0 or array.max() >= high)
    ):
        raise BundleError(
            f"{where} must hold values in [0, {high}). Received values in "
            f"[{array.min()}, {array.max()}]"
        )


def _check_partitioner(data, where, num_leaves, dims):
    """Checks a k-means tree of one level; returns its number of leaves."""
    from google.protobuf.message import DecodeError

    partitioner_pb2 = scann_module("partitioning.partitioner_pb2")

    partitioner = partitioner_pb2.SerializedPartitioner()
    try:
        partitioner.ParseFromString(bytes(data))
    except DecodeError as error:
        raise BundleError(f"{where} is corrupt: {error}") from None
    root = partitioner.kmeans.kmeans_tree.root
    tokens = partitioner.n_tokens
    leaf_ids = sorted(child.leaf_id for child in root.children)
    if (
        not 1 <= tokens <= num_leaves
        or len(root.centers) != tokens
        or leaf_ids != list(range(tokens))
        or any(child.children for child in root.children)
        or any(len(c.dimension) != dims for c in root.centers)
        or not all(math.isfinite(v) for c in root.centers for v in c.dimension)
    ):
        raise BundleError(
            f"{where} is not a k-means partitioner of at most {num_leaves} "
            f"leaves of {dims} finite dims (n_tokens={tokens}, "
            f"{len(root.children)} leaves, ids {leaf_ids[:5]}...)."
        )
    return tokens


def _check_codebook(data, where, config, dims):
    """Checks the AH centers against the config's blocks; returns them."""
    from google.protobuf.message import DecodeError

    centers_pb2 = scann_module("proto.centers_pb2")

    hashing = config.hash.asymmetric_hash
    blocks = hashing.projection.num_blocks
    per_block = hashing.projection.num_dims_per_block
    clusters = hashing.num_clusters_per_block
    codebook = centers_pb2.CentersForAllSubspaces()
    try:
        codebook.ParseFromString(bytes(data))
    except DecodeError as error:
        raise BundleError(f"{where} is corrupt: {error}") from None
    widths = [
        min(per_block, dims - block * per_block) for block in range(blocks)
    ]
    found = [
        {len(center.feature_value_float) for center in subspace.center}
        for subspace in codebook.subspace_centers
    ]
    counts = [len(subspace.center) for subspace in codebook.subspace_centers]
    if (
        found != [{width} for width in widths]
        or counts != [clusters] * blocks
        or not all(
            math.isfinite(value)
            for subspace in codebook.subspace_centers
            for center in subspace.center
            for value in center.feature_value_float
        )
    ):
        raise BundleError(
            f"{where} does not hold {blocks} blocks of {clusters} finite "
            f"centers of widths {widths}."
        )
    return blocks, clusters


def load_checked_searcher(
    files: BundleFiles,
    prefix: str,
    embeddings: np.ndarray,
    options: dict[str, Any],
) -> Any:
    """A ScaNN searcher from checked copies of the files under `prefix`.

    Args:
        files: an open `recsys.storage.files.BundleFiles`.
        prefix: str. The `scann/` directory's relative path, with `/`.
        embeddings: float32 `(count, dims)`. The index's checked rows.
        options: dict. The index's resolved ScaNN options.

    Returns:
        A `scann_ops_pybind.ScannSearcher`.

    Raises:
        BundleError: naming the first file that is unlisted, malformed or
            inconsistent with the index.
    """
    count, dims = embeddings.shape
    where = files.path.rstrip("/") + "/" + prefix
    present = {
        name[len(prefix) :] for name in files.files if name.startswith(prefix)
    }
    for name in sorted(present - set(SCANN_FILES)):
        raise BundleError(
            f"{where}{name} is not a file of a ScaNN searcher; refusing to "
            "load it (ScaNN would unpickle or follow it)."
        )
    for name in (ASSETS, CONFIG):
        if name not in present:
            raise BundleError(f"Index file missing: {where}{name}")
    try:
        text = files.read(prefix + ASSETS).decode("ascii")
    except UnicodeDecodeError:
        raise BundleError(f"{where}{ASSETS} is not ASCII text.") from None
    assets = parse_assets(text, where + ASSETS)
    for name in sorted(present - {ASSETS, CONFIG} - set(assets.values())):
        raise BundleError(
            f"{where}{name} is not listed in {ASSETS}; refusing to load it."
        )
    for name in sorted(set(assets.values()) - present):
        raise BundleError(f"Index file missing: {where}{name}")
    checked = {}
    data = files.read(prefix + CONFIG)
    # Either k-means start: it shapes training only, not a search.
    for random_init in (False, True):
        config = expected_config(embeddings, options, random_init=random_init)
        if bytes(data) == config.SerializeToString():
            break
    else:
        raise BundleError(
            f"{where}{CONFIG} is not the ScaNN config of the options in "
            f"index.json ({options}). Refusing to load it."
        )
    checked[CONFIG] = data
    name = assets["PARTITIONER"]
    checked[name] = files.read(prefix + name)
    leaves = _check_partitioner(
        checked[name], where + name, options["num_leaves"], dims
    )
    name = assets["AH_CENTERS"]
    checked[name] = files.read(prefix + name)
    blocks, clusters = _check_codebook(
        checked[name], where + name, config, dims
    )
    # With SOAR every row has two leaves (tokens) and a second AH code.
    spilled = 2 if options["soar_lambda"] else 1
    arrays = {
        "TOKENIZATION_NPY": (np.int32, (spilled * count,), leaves),
        "AH_DATASET_NPY": (np.uint8, (count, blocks), clusters),
        "AH_DATASET_SOAR_NPY": (np.uint8, (count, blocks), clusters),
        "DATASET_NPY": (np.float32, (count, dims), None),
    }
    for kind, (dtype, shape, high) in arrays.items():
        if kind not in assets:
            continue
        name = assets[kind]
        checked[name] = files.read(prefix + name)
        array = load_npy(checked[name], where + name)
        if kind == "TOKENIZATION_NPY" and spilled == 2:
            _check_array(array, where + name, dtype, shape)
            # Interleaved: row i's leaf, then its SOAR leaf or -1 (none).
            spill = array[1::2] + 1
            _check_array(spill, where + name, dtype, (count,), high + 1)
            array, shape = array[::2], (count,)
        _check_array(array, where + name, dtype, shape, high)
        if kind == "DATASET_NPY" and not np.array_equal(array, embeddings):
            raise BundleError(
                f"{where}{name} differs from the index's embeddings.npy."
            )
    if options["reorder"] and "DATASET_NPY" not in assets:
        raise BundleError(f"Index file missing: {where}dataset.npy")
    if bool(options["soar_lambda"]) != ("AH_DATASET_SOAR_NPY" in assets):
        raise BundleError(
            f"{where}{ASSETS} does not match soar_lambda="
            f"{options['soar_lambda']} in index.json."
        )
    private = private_dir(
        "recsys-scann-", sum(len(data) for data in checked.values())
    )
    try:
        for name, data in checked.items():
            with open(os.path.join(private, name), "xb") as f:
                f.write(data)
        lines = [
            f'assets {{\n  asset_type: {kind}\n  asset_path: "{name}"\n}}\n'
            for kind, name in assets.items()
        ]
        with open(os.path.join(private, ASSETS), "x") as f:
            f.write("".join(lines))
        return scann_ops().load_searcher(private, assets_backcompat_shim=False)
    except (RuntimeError, ValueError) as error:
        raise BundleError(
            f"Corrupt ScaNN searcher in {where}: {error}"
        ) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
