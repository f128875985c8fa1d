"""Run configs: TOML files plus `--set key=value` overrides, validated.

`model.kind` picks the model a config trains: `"two_tower"` (retrieval, the
default), `"tabular"` or `"text"`. Each kind's config is a pydantic model
(`CONFIG_MODELS`: `recsys.config.two_tower`, `.tabular`, `.text`) whose
sections and keys, with their defaults and descriptions, are its JSON
Schema (`json_schema(kind)`, written to `docs/config/<kind>.schema.json`).
A config is validated once, at load: a typo or a wrong type fails with the
key, the valid keys or values, and what was received, instead of being
silently ignored.

`load_config` returns the validated config as a plain nested dict (what
bundle manifests store and hash); `typed_config` gives the typed object.
"""

import copy
import json
import os
import tomllib
import typing
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import Literal

import pydantic

from recsys.config.common import SUPPORTED_DISTRIBUTIONS
from recsys.config.common import SUPPORTED_OPTIMIZERS
from recsys.config.common import SUPPORTED_PRECISIONS
from recsys.config.common import SUPPORTED_SPLITS
from recsys.config.common import KindConfig
from recsys.config.features import check_feature_tables
from recsys.config.features import feature_specs_by_name
from recsys.config.messages import config_error
from recsys.config.messages import did_you_mean
from recsys.config.paths import config_file
from recsys.config.paths import resolve_data_paths
from recsys.config.tabular import TabularConfig
from recsys.config.text import TEXT_ARCHITECTURES
from recsys.config.text import TEXT_BASELINES
from recsys.config.text import TextConfig
from recsys.config.two_tower import TwoTowerConfig
from recsys.errors import ConfigError
from recsys.features.specs import FeatureSpec
from recsys.features.specs import feature_from_config
from recsys.kinds import KINDS
from recsys.kinds import config_model

__all__ = [
    "CONFIG_MODELS",
    "DEFAULT_CONFIG",
    "KIND_DEFAULTS",
    "SUPPORTED_DISTRIBUTIONS",
    "SUPPORTED_OPTIMIZERS",
    "SUPPORTED_PRECISIONS",
    "SUPPORTED_SPLITS",
    "TABULAR_CONFIG",
    "TEXT_ARCHITECTURES",
    "TEXT_BASELINES",
    "TEXT_CONFIG",
    "ConfigError",
    "KindConfig",
    "TabularConfig",
    "TextConfig",
    "TwoTowerConfig",
    "apply_override",
    "feature_specs",
    "json_schema",
    "load_config",
    "schema_text",
    "typed_config",
    "validate_config",
    "validate_features",
]

# `model.kind` -> its config model, read off the kinds registry (the one
# place that maps a kind to its code; `recsys.kinds` imports no Keras).
CONFIG_MODELS: dict[str, type[KindConfig]] = {
    kind: config_model(kind) for kind in KINDS
}

# Each kind's full default config as a plain dict (the models above are
# their definition).
KIND_DEFAULTS = {
    kind: model.defaults() for kind, model in CONFIG_MODELS.items()
}
DEFAULT_CONFIG = KIND_DEFAULTS["two_tower"]
TABULAR_CONFIG = KIND_DEFAULTS["tabular"]
TEXT_CONFIG = KIND_DEFAULTS["text"]


def _parse_value(text: str) -> Any:
    """Parses an override value as TOML (`3`, `true`, `[1, 2]`, `"x"`)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def _key_path(key: str, features: Any) -> list[str]:
    """The parts of an override's key: split at dots, a part quoted as in
    TOML kept whole (`features."price.heinz41".kind`); unquoted, a feature
    whose name holds dots is found by its whole name."""
    try:
        parsed: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:  # e.g. `features.ram MB.kind`
        path = key.split(".")
    else:
        path = []
        while isinstance(parsed, dict) and len(parsed) == 1:
            ((name, parsed),) = parsed.items()
            path.append(name)
    if len(path) > 3 and path[0] == "features" and isinstance(features, dict):
        # The longest run of parts that names a declared feature.
        for end in range(len(path) - 1, 2, -1):
            name = ".".join(path[1:end])
            if name in features:
                return ["features", name, *path[end:]]
    return path


def apply_override(config: dict, assignment: str) -> None:
    """Applies one `key.path=value` override to `config` in place.

    Args:
        config: dict. A config as returned by `load_config`.
        assignment: str. `section.key=value`; the value is read as TOML and
            falls back to a string (`--set data.source=ratings.csv`).
    """
    if "=" not in assignment:
        raise ConfigError(
            f"Override must look like key=value. Received: {assignment!r}"
        )
    key, text = assignment.split("=", 1)
    path = _key_path(key.strip(), config.get("features"))
    if len(path) < 2 or not all(path):
        raise ConfigError(
            "Override key must be section.key, e.g. train.epochs. "
            f"Received: {key!r}"
        )
    node = config
    for part in path[:-1]:
        if part not in node:
            if node is config.get("features"):
                node[part] = {}
            else:
                raise ConfigError(
                    f"Unknown config key '{key}': no section '{part}'. "
                    f"Valid sections here: {sorted(node)}"
                    f"{did_you_mean([part], sorted(node))}"
                )
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"Config key '{key}' does not name a table.")
    node[path[-1]] = _parse_value(text.strip())


@typing.overload
def load_config(
    path: str | os.PathLike | Mapping | None = None,
    overrides: Iterable[str] = (),
    *,
    typed: Literal[False] = False,
) -> dict: ...


@typing.overload
def load_config(
    path: str | os.PathLike | Mapping | None = None,
    overrides: Iterable[str] = (),
    *,
    typed: Literal[True],
) -> KindConfig: ...


def load_config(
    path: str | os.PathLike | Mapping | None = None,
    overrides: Iterable[str] = (),
    *,
    typed: bool = False,
) -> dict | KindConfig:
    """Reads a TOML config, applies overrides and validates the result.

    Args:
        path: str, dict or None. TOML file, or its tables as a dict
            (`{"data": {...}, "model": {...}}`, as in a notebook); `None`
            starts from the defaults. A relative `data.source` or
            `data.path` in a file is read from the file's directory (else,
            if it exists only there, from the working directory;
            `recsys.config.paths`), in a dict from the working directory.
        overrides: iterable of `key=value` strings. A relative
            `data.source` or `data.path` here is read from the working
            directory.
        typed: bool. Return the typed config (`TwoTowerConfig`,
            `TabularConfig` or `TextConfig`) instead of a dict. Defaults to
            `False`.

    Returns:
        dict. The full config, defaults filled in, section -> key -> value
        (what bundle manifests store), with absolute data paths; or the
        typed config.

    Raises:
        ConfigError: for a missing file, bad TOML, unknown keys or values of
            the wrong type.

    Example:

    ```python
    config = load_config("configs/movielens_two_tower.toml", ["train.epochs=1"])
    config["train"]["epochs"]  # 1
    config = load_config(
        {"data": {"source": "shop.csv", "user": "customer",
                  "item": "product", "time": "ts"}}
    )
    ```
    """
    given: dict = {}
    if isinstance(path, Mapping):
        given, path = _python_values(copy.deepcopy(dict(path))), None
    elif isinstance(path, str | os.PathLike):
        try:  # a shipped config by its name, as the CLI finds it
            path = config_file(os.fspath(path))
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
        given = _read_toml(path)
    elif path is not None:
        raise ConfigError(
            "The config must be a TOML file's path or a dict of its tables "
            f"({{'data': {{...}}, 'model': {{...}}}}). Received: {path!r}"
        )
    origin = "" if path is None else f" in {path}"
    # One "key=value" string is one override (not its characters).
    listed: list[Any] = (
        [overrides]
        if isinstance(overrides, str)
        # A dict, read as its keys alone, would name no value.
        else list(overrides.items())
        if isinstance(overrides, Mapping)
        else list(overrides)
    )
    for override in listed:
        if not isinstance(override, str):
            raise ConfigError(
                'Overrides must be "key=value" strings, as --set takes them, '
                "e.g. ['train.epochs=3']. Received: "
                f"{override!r}. Fix: write it as one string, or set the "
                "value in the config dict."
            )
    overrides = listed
    kind = _kind(given, overrides)
    defaults = KIND_DEFAULTS[kind]
    config = copy.deepcopy(defaults)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"Unknown config sections{origin} for model.kind={kind!r}: "
            f"{unknown}. Valid sections: {sorted(defaults)}"
            f"{did_you_mean(unknown, sorted(defaults))}"
        )
    for section, values in given.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}]{origin} must be a table.")
        config[section].update(copy.deepcopy(values))
    for assignment in overrides:
        apply_override(config, assignment)
    resolve_data_paths(config, path, overridden=_overridden_data(overrides))
    checked = typed_config(config, given)
    return checked if typed else checked.to_dict()


def _python_values(value):
    """`value` with numpy scalars as the Python values they hold, in its
    dicts and lists: a notebook's `np.int64(256)` (a `trials.csv` cell,
    an `np.arange` seed) is an integer to the config as `256` is."""
    import numpy as np

    if isinstance(value, dict):
        return {key: _python_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_python_values(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value


# A config is a few kilobytes; anything far larger is not one.
MAX_CONFIG_BYTES = 1 << 20


def _read_toml(path: str | os.PathLike) -> dict:
    """The TOML table in the regular file `path`; ConfigError otherwise."""
    if not os.path.exists(path):
        raise ConfigError(f"Config file not found: {path}")
    if not os.path.isfile(path):
        raise ConfigError(
            f"Config {path} is not a regular file. Fix: pass the path of a "
            "TOML file, e.g. configs/movielens_two_tower.toml."
        )
    try:
        # O_NONBLOCK: a FIFO swapped in after the check must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"Cannot read config {path}: {error.strerror}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config {path} is over {MAX_CONFIG_BYTES} bytes: not a config."
        )
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad's) was "Invalid
        # statement (at line 1, column 1)".
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"Config {path} is not UTF-8 text (byte {error.start}: "
            f"{error.reason}). Fix: save it as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _overridden_data(overrides: list[str]) -> set[str]:
    """The `[data]` keys that `--set data.KEY=...` overrides assign."""
    keys = (assignment.partition("=")[0].strip() for assignment in overrides)
    return {key[len("data.") :] for key in keys if key.startswith("data.")}


def _kind(given: dict, overrides: list[str]) -> str:
    """The model kind: the last `model.kind` override, else the file's."""
    model = given.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"[model] must be a table. Received: {model!r}")
    kind = model.get("kind", "two_tower")
    for assignment in overrides:
        key, _, text = assignment.partition("=")
        if key.strip() == "model.kind":
            kind = _parse_value(text.strip())
    return _check_kind(kind)


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in CONFIG_MODELS:
        raise ConfigError(
            f"model.kind must be one of {tuple(CONFIG_MODELS)}. "
            f"Received: {kind!r}"
        )
    return kind


def validate_config(config: dict) -> dict:
    """Checks a whole config dict: keys, types, values, cross-references.

    Args:
        config: dict. A full config (every section), as `load_config`
            returns it.

    Returns:
        dict. The validated config, a new dict equal to `config`.

    Raises:
        ConfigError: naming the first wrong key, what it must be and what
            it was.
    """
    return typed_config(config).to_dict()


def typed_config(config: dict, written: dict | None = None) -> KindConfig:
    """The typed, validated config of a config dict.

    Args:
        config: dict. A config as `load_config` returns it (or as a bundle's
            manifest stores it); sections or keys left out take their
            defaults.
        written: dict or None. The tables as the user wrote them, before
            the defaults: a typo's fix is not a key they already set.

    Returns:
        The `TwoTowerConfig`, `TabularConfig` or `TextConfig` of its
        `model.kind`.

    Raises:
        ConfigError: as `validate_config`.

    Example:

    ```python
    config = typed_config(load_config("configs/movielens_rating.toml"))
    config.train.learning_rate  # 0.001
    ```
    """
    model = config.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"[model] must be a table. Received: {model!r}")
    cls = CONFIG_MODELS[_check_kind(model.get("kind", "two_tower"))]
    try:
        return cls.model_validate(config)
    except pydantic.ValidationError as error:
        raise config_error(error, config, cls, written or {}) from None


def validate_features(config: dict) -> dict:
    """The `[features.*]` tables as specs by name; raises `ConfigError`.

    Args:
        config: dict. A config (only its `features` section is read).

    Returns:
        dict. Feature name -> `recsys.features.specs.FeatureSpec`.
    """
    return feature_specs_by_name(check_feature_tables(config["features"]))


def feature_specs(config: dict | KindConfig) -> list[FeatureSpec]:
    """The feature specs of a validated config, in declaration order.

    Args:
        config: dict or `KindConfig`. A validated config.

    Returns:
        list of `recsys.features.specs.FeatureSpec`.
    """
    if isinstance(config, KindConfig):
        return config.feature_specs()
    return [
        feature_from_config({"name": name, **spec})
        for name, spec in config["features"].items()
    ]


def json_schema(kind: str) -> dict:
    """The JSON Schema of a kind's config: every key, its type, default and
    description.

    Args:
        kind: str. A `model.kind`, a key of `CONFIG_MODELS`.

    Returns:
        dict. The schema (`docs/config/<kind>.schema.json` holds it).
    """
    model = CONFIG_MODELS[_check_kind(kind)]
    schema = model.model_json_schema()
    schema["title"] = f"recsys config, model.kind = {kind!r}"
    schema["description"] = (
        f"{(model.__doc__ or '').strip().splitlines()[0]} Generated from "
        f"{model.__module__}.{model.__name__} (`python -m recsys.config`)."
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text(kind: str) -> str:
    """`json_schema(kind)` as the text of its file in `docs/config/`."""
    return json.dumps(json_schema(kind), indent=2) + "\n"
