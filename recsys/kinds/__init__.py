"""Model kinds: the one place that maps `model.kind` to its code.

Each kind names, as "module:attribute" strings imported on first use, its
`ModelKind` (training, evaluation, summary), its config model and its
bundle class, so that loading a bundle or reading a config never imports
Keras or another kind's code. `recsys.config` and `recsys.load_bundle`
read this table too: a new kind is one entry here.

Example:

```python
import recsys

config = recsys.load_config("configs/movielens_liked.toml")
bundle, metrics = recsys.train(config, "artifacts/liked")
```
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from recsys.kinds.base import ModelKind
    from recsys.kinds.base import TrainResult


@dataclasses.dataclass(frozen=True)
class Registered:
    """Where a kind's code lives ("module:attribute")."""

    kind: str
    config: str
    bundle: str


KINDS = {
    "two_tower": Registered(
        config="recsys.config.two_tower:TwoTowerConfig",
        kind="recsys.kinds.two_tower:TwoTowerKind",
        bundle="recsys.bundles.two_tower:Bundle",
    ),
    "tabular": Registered(
        config="recsys.config.tabular:TabularConfig",
        kind="recsys.kinds.tabular:TabularKind",
        bundle="recsys.bundles.tabular:TabularBundle",
    ),
    "text": Registered(
        config="recsys.config.text:TextConfig",
        kind="recsys.kinds.text:TextKind",
        bundle="recsys.bundles.text:TextBundle",
    ),
}


def _resolve(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _registered(name: str) -> Registered:
    if name not in KINDS:
        raise ValueError(
            f"Unknown model kind {name!r}. Valid kinds: {tuple(KINDS)}."
        )
    return KINDS[name]


def get_kind(name: str) -> ModelKind:
    """The `ModelKind` registered as `name` (e.g. `"two_tower"`)."""
    return _resolve(_registered(name).kind)()


def config_model(name: str) -> type:
    """The pydantic config model of kind `name` (Keras-free)."""
    return _resolve(_registered(name).config)


def bundle_class(name: str) -> type:
    """The bundle class of kind `name`, imported without its training code."""
    return _resolve(_registered(name).bundle)


def train(
    config: dict,
    output: str | None = None,
    *,
    frame=None,
    progress: bool = True,
    write: bool = True,
) -> TrainResult:
    """Trains `config`'s model kind and writes its bundle to `output`.

    What `recsys train` runs, for every `model.kind`.

    Args:
        config: dict. A config as `recsys.load_config` returns it (a dict
            of sections written by hand, the typed config or a TOML path
            are validated the same way first).
        output: str. The bundle directory to write.
        frame: optional DataFrame of the whole table; defaults to the
            config's `data.source` (or its Parquet `data.path`).
        progress: bool. Show progress bars.
        write: bool. False trains and evaluates in memory only: no bundle,
            no checkpoints (`TrainResult.bundle` is None).

    Returns:
        `TrainResult` with `.bundle` (loaded back from disk), `.metrics`
        (also saved as `metrics.json`), `.model` and `.prepared`; it
        unpacks as `bundle, metrics = recsys.train(...)`.

    Example:

    ```python
    config = recsys.load_config("configs/movielens_two_tower.toml")
    result = recsys.train(config, write=False)
    result.metrics["test"]["hr@10"]
    ```
    """
    import pandas as pd

    config = _validated(config)
    if frame is not None and not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "recsys.train's frame= is the table as a pandas DataFrame. "
            f"Received: {type(frame).__name__} {str(frame)[:60]!r}. Fix: "
            "pass pandas.read_csv(...) (or .read_parquet), or leave frame "
            "out and name the file in data.source."
        )
    kind = get_kind(config["model"]["kind"])
    return kind.train(
        config, output, frame=frame, progress=progress, write=write
    )


def _validated(config):
    """`config` as `load_config` returns it, from what a notebook passes:
    that dict (validating it again changes nothing), a dict written by
    hand, the typed config (`typed=True`) or a TOML path."""
    from recsys.config import load_config

    if isinstance(config, str | os.PathLike):
        return load_config(config)
    if callable(getattr(config, "to_dict", None)):  # a typed config
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(
            "recsys.train takes a config: the dict (or typed config) "
            "recsys.load_config returns, or a TOML path. Received: "
            f"{type(config).__name__}."
        )
    return load_config(config)
