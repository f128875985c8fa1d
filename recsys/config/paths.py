"""Where the file paths of a config point: `data.source` and `data.path`.

A relative path in a config file is read from the config file's directory,
so a config and its table move together and `recsys train` works from any
working directory:

```
project/
  config.toml      [data] source = "data/ratings.csv"
  data/ratings.csv
```

For configs written when paths were read from the working directory, a
path that exists only there still works (the config's directory comes
first). A path given with `--set data.source=...` was typed in the working
directory and is read from there. Either way the loaded config holds the
absolute path, and so does every bundle trained from it: `recsys evaluate`
finds the table again from any directory. A leading `~` is the home
directory. Built-in table names (`"movielens"`, `"trump_tweets"`) and empty
values are not paths and stay as they are.
"""

import logging
import os
from collections.abc import Collection
from typing import TypeGuard

from recsys.data.sources import BUILTIN_SOURCES

logger = logging.getLogger(__name__)

# The `[data]` keys that hold file paths, in the kinds that have them.
PATH_KEYS = ("source", "path")
# Where the repository keeps the configs the package ships (`recsys.configs`).
SHIPPED_DIR = "configs"


def shipped_configs() -> dict[str, str]:
    """The example configs in `recsys.configs`: name -> file path."""
    from importlib.resources import files

    return {
        entry.name: str(entry)
        for entry in files("recsys.configs").iterdir()
        if entry.name.endswith(".toml")
    }


def config_file(config: str) -> str:
    """The config file a path or a name means.

    A path that exists is read as it is. Otherwise a bare name, or
    `configs/NAME` (the repository's spelling), with or without `.toml`,
    names an example config shipped in the package: `recsys train
    movielens_liked` and `load_config("configs/movielens_liked.toml")` work
    from any directory, a wheel install's included.

    Args:
        config: str. A TOML file's path, or a shipped config's name.

    Returns:
        str. The path of the config file.

    Raises:
        FileNotFoundError: naming the shipped configs.
    """
    if os.path.exists(config):
        return config
    shipped = shipped_configs()
    folder, base = os.path.split(config)
    if folder in ("", SHIPPED_DIR):
        base = base if base.endswith(".toml") else f"{base}.toml"
        if base in shipped:
            return shipped[base]
    raise FileNotFoundError(
        f"Config file not found: {config}. Fix: pass the path of a TOML "
        "config, or the name of one shipped with recsys: "
        f"{', '.join(sorted(shipped))}."
    )


def resolve_data_paths(
    config: dict,
    config_path: str | os.PathLike | None,
    *,
    overridden: Collection[str] = (),
) -> None:
    """Makes the `[data]` file paths of `config` absolute, in place.

    Args:
        config: dict. A config with its file values and overrides applied.
        config_path: str, path-like or None. The TOML file the config was
            read from; `None` when it was built from defaults only.
        overridden: collection of str. The `[data]` keys set by `--set`
            overrides: relative to the working directory.

    Example:

    ```python
    config = {"data": {"source": "ratings.csv"}}
    resolve_data_paths(config, "project/config.toml")
    config["data"]["source"]  # "/.../project/ratings.csv"
    ```
    """
    data = config.get("data")
    if not isinstance(data, dict):
        return
    base = None
    if config_path is not None:
        base = os.path.dirname(os.path.abspath(config_path))
    for key in PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.startswith("~"):
            data[key] = value = os.path.expanduser(value)
        if not _is_relative_path(value):
            continue
        if key in overridden or base is None:
            data[key] = os.path.abspath(value)
        else:
            data[key] = _beside_config(value, base, key)


def _is_relative_path(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and bool(value)
        and value not in BUILTIN_SOURCES
        and not os.path.isabs(value)
    )


def _beside_config(value: str, base: str, key: str) -> str:
    """`value` read from the config's directory, else from the cwd."""
    beside = os.path.abspath(os.path.join(base, value))
    if os.path.exists(beside) or not os.path.exists(value):
        # A path found nowhere is named as the rule reads it, so that the
        # "not found" error says where the table was looked for.
        return beside
    logger.info(
        "data.%s %r is not in the config's directory %s; reading it from "
        "the working directory (%s). Fix: make it relative to the config "
        "file, or absolute.",
        key,
        value,
        base,
        os.path.abspath(value),
    )
    return os.path.abspath(value)
