"""The `[features.<column>]` tables of a config: checked, kept as written.

A feature table's fields are those of its spec dataclass in
`recsys.features.specs` (`kind = "categorical"` -> `CategoricalFeature`, ...),
which stays the one definition of what a feature is: the tables are checked
by building their specs, and their JSON Schema is read off the dataclasses
(types, defaults, and the `Attributes:` of their docstrings). The tables
themselves are kept exactly as written, unset keys unset, so a config, its
bundle manifest and their hashes say what the user wrote.
"""

import dataclasses
import inspect
import json
import re
import types
import typing
from typing import Annotated
from typing import Any

import pydantic

from recsys.config.common import PLACEHOLDER
from recsys.config.common import placeholder_error
from recsys.errors import ConfigError
from recsys.features.specs import FEATURE_KINDS
from recsys.features.specs import feature_from_config


def table_header(name: str) -> str:
    """`[features.<name>]`, the name quoted where TOML needs it (a dot or a
    space in it): `[features."Tuna.hid"]`, as a config must write it."""
    bare = re.fullmatch(r"[A-Za-z0-9_-]+", str(name))  # TOML's bare keys
    # JSON's string escapes are TOML's (quotes, backslashes, newlines).
    key = name if bare else json.dumps(str(name), ensure_ascii=False)
    return f"[features.{key}]"


def check_feature_tables(tables: Any) -> dict:
    """Checks `[features.*]` tables by building their specs.

    Args:
        tables: dict. Feature name -> its table.

    Returns:
        dict. A copy of `tables`, in the same order.

    Raises:
        ConfigError: naming the table, for a non-table or a bad spec.
    """
    if not isinstance(tables, dict):
        raise ConfigError(f"[features] must be a table. Received: {tables!r}")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{table_header(name)} must be a table.")
        inner = [key for key, value in table.items() if isinstance(value, dict)]
        if "kind" not in table and inner:
            # `[features.Tuna.hid]` is a table `hid` inside feature `Tuna`.
            dotted = f"{name}.{inner[0]}"
            raise ConfigError(
                f"[features.{name}] holds tables ({inner}), not a feature's "
                f"keys: TOML reads [features.{dotted}] as a table inside "
                f"another. Fix: quote a column name that holds a dot, "
                f"{table_header(dotted)}."
            )
        try:
            feature_from_config({"name": name, **table})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{table_header(name)}: {error}") from None
    return {name: dict(table) for name, table in tables.items()}


def feature_specs_by_name(tables: dict) -> dict:
    """Feature name -> spec of checked `[features.*]` tables.

    Args:
        tables: dict. Tables that `check_feature_tables` accepted.

    Returns:
        dict. Name -> `recsys.features.specs.FeatureSpec`, in order.
    """
    return {
        name: feature_from_config({"name": name, **table})
        for name, table in tables.items()
    }


def _attribute_docs(cls: type) -> dict:
    """`Attributes:` entries of `cls` and its bases: name -> description."""
    docs = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        block = text.partition("Attributes:\n")[2].partition("\n\n")[0]
        # Entries read `name: type. meaning`, continued on indented lines.
        for match in re.finditer(
            r"^    (\w+): ([^\n]*(?:\n        [^\n]*)*)", block, re.M
        ):
            entry = " ".join(match.group(2).split())
            entry = entry.partition(". ")[2] or entry
            # A TOML table leaves a key out where Python passes `None`.
            entry = entry.replace(" Defaults to `None`.", "")
            entry = entry.replace("`None` applies", "left out applies")
            entry = entry.replace("this module", "recsys.features.specs")
            docs[match.group(1)] = entry
    return docs


def _json_type(annotation: Any) -> dict:
    """The JSON Schema of a spec field's annotation (`None` = unset)."""
    if isinstance(annotation, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _json_type(args[0])
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is list:
        return {"type": "array", "items": {"type": "number"}}
    return {"type": names[annotation]}


def feature_table_schema(kind: str) -> dict:
    """The JSON Schema of one kind of `[features.<column>]` table.

    Args:
        kind: str. A key of `recsys.features.specs.FEATURE_KINDS`.

    Returns:
        dict. An object schema with a `description` for every key.
    """
    cls = FEATURE_KINDS[kind]
    docs = _attribute_docs(cls)
    properties = {
        "kind": {"const": kind, "description": "The kind of feature."}
    }
    for field in dataclasses.fields(cls):
        if field.name == "name":
            continue  # the table's own name
        schema = _json_type(field.type)
        if field.default is not None:
            schema["default"] = field.default
        schema["description"] = docs[field.name]
        properties[field.name] = schema
    return {
        "title": cls.__name__,
        "description": (inspect.getdoc(cls) or "").partition("\n")[0],
        "type": "object",
        "properties": properties,
        "required": ["kind"],
        "additionalProperties": False,
    }


def features_schema() -> dict:
    """The JSON Schema of the `features` section: name -> one table."""
    return {
        "type": "object",
        "additionalProperties": {
            "oneOf": [feature_table_schema(kind) for kind in FEATURE_KINDS]
        },
    }


FeatureTables = Annotated[
    dict[str, dict[str, Any]],
    pydantic.PlainValidator(check_feature_tables),
    pydantic.WithJsonSchema(features_schema()),
]
"""The `features` section's type: checked tables, kept as written."""


def features_field() -> Any:
    """The `features` field of every kind's config, where it is declared."""
    return pydantic.Field(
        default_factory=dict,
        description=(
            "One table per input column, `[features.<column>]`: its `kind` "
            "and that kind's options (recsys.features.specs)."
        ),
    )


def missing_feature_table(
    key: str, name: str, declared, implicit: str = ""
) -> ConfigError:
    """The error of a config key naming a feature without its table;
    `implicit` says which tables the config would get without one."""
    if name == PLACEHOLDER:
        return placeholder_error(key)
    return ConfigError(
        f"{key} names '{name}', which has no {table_header(name)} table. "
        f"Declared features: {sorted(declared)}{implicit}. Fix: add it, e.g. "
        f'{table_header(name)} with kind = "categorical" (ids, categories) or '
        '"numeric" (recsys config-schema lists the kinds).'
    )
