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
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from recsys.kinds.base import ModelKind


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
