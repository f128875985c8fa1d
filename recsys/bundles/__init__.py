"""Bundles: what `recsys train` writes and everything else loads.

One directory per trained model: `manifest.json` (kind, config, versions,
file checksums), `metrics.json`, the preprocessor and the kind's model
files, written atomically. `load_bundle` opens a bundle of any kind.
"""

from __future__ import annotations

from typing import Any


def load_bundle(path: str) -> Any:
    """Loads a bundle of any model kind.

    Only the manifest is read before the kind's bundle class (and nothing
    of its training code) is imported.

    Args:
        path: str. The bundle directory.

    Returns:
        The kind's bundle object: `Bundle` (two-tower retrieval),
        `TabularBundle` or `TextBundle`.

    Raises:
        BundleError: if `path` is no bundle or of a kind this version of
            recsys does not know.

    Example:

    ```python
    bundle = load_bundle("artifacts/demo")
    ```
    """
    from recsys.bundles.two_tower import read_manifest
    from recsys.kinds import KINDS
    from recsys.kinds import bundle_class
    from recsys.storage.files import BundleError

    kind = read_manifest(path).get("kind", "two_tower")
    if kind not in KINDS:
        raise BundleError(
            f"{path} is a {kind!r} bundle; this recsys loads {tuple(KINDS)}."
        )
    cls: Any = bundle_class(kind)
    return cls.load(path)
