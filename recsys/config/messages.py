"""Pydantic's validation errors of a config, said as one `ConfigError`.

A config fails with one sentence that names the key, what it must be (the
valid keys or values) and what it was, as the hand-written checks before
pydantic did: "Unknown config keys in [train]: ['epoch']. Valid keys: [...]",
"train.optimizer must be one of ('adagrad', 'adam', 'sgd'). Received: 'lion'".
"""

import difflib
import typing
from typing import Any

import pydantic
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from recsys.errors import ConfigError

_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
}
_ITEM_NAMES = {
    "int_type": "integers",
    "float_type": "numbers",
    "bool_type": "booleans",
    "string_type": "strings",
}
_TABLE_TYPES = ("model_type", "model_attributes_type", "dict_type")
_RANGE_TYPES = (
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
)


def config_error(
    error: pydantic.ValidationError,
    config: dict,
    model: type[BaseModel],
    written: dict | None = None,
) -> ConfigError:
    """The `ConfigError` that says what is wrong first in `config`.

    Args:
        error: the `pydantic.ValidationError` of validating `config`.
        config: dict. The config as given.
        model: type. The `KindConfig` subclass it was validated against.
        written: dict or None. The tables as the user wrote them (before
            the defaults), for the fix of an unknown key.

    Returns:
        ConfigError. About the first section with an error; unknown keys
        before other errors, all of a section's unknown keys at once.
    """
    errors = error.errors()
    section = errors[0]["loc"][:1]
    errors = [e for e in errors if e["loc"][:1] == section]
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return ConfigError(_unknown_keys(unknown, written or {}, model))
    return ConfigError(_message(errors[0], config, model))


def _unknown_keys(
    errors: list[ErrorDetails], written: dict, model: type[BaseModel]
) -> str:
    names = sorted(str(e["loc"][-1]) for e in errors)
    loc = errors[0]["loc"]
    section = written.get(loc[0]) if len(loc) == 2 else None
    given = list(section) if isinstance(section, dict) else []
    if len(loc) == 1:
        kind = model.model_fields["model"].default.kind
        valid = sorted(model.model_fields)
        return (
            f"Unknown config sections for model.kind={kind!r}: {names}. "
            f"Valid sections: {valid}{did_you_mean(names, valid, given)}"
        )
    valid = sorted(_section(model, loc[0]).model_fields)
    return (
        f"Unknown config keys in [{'.'.join(map(str, loc[:-1]))}]: {names}. "
        f"Valid keys: {valid}{did_you_mean(names, valid, given)}"
    )


def did_you_mean(names: list[str], valid: list[str], given=()) -> str:
    """`". Fix: 'epoch' -> 'epochs'."` for the names close to a valid one.

    Args:
        names: list of str. Unknown names.
        valid: list of str. The valid names.
        given: the names the section already sets: the fix only where
            no other valid name is close.

    Returns:
        str. The sentence, after a period, or `""` when no name is
        close to a valid one.
    """
    fixes = []
    for name in names:
        close = difflib.get_close_matches(name, valid, n=3)
        # `itme` beside a `time` already set is `item` (difflib ranks
        # `time` first); `epoch` beside `epochs` is still `epochs`.
        close = [c for c in close if c not in given] or close
        if close:
            fixes.append(f"{name!r} -> {close[0]!r}")
    return f". Fix: {', '.join(fixes)}." if fixes else ""


def _message(error: ErrorDetails, config: dict, model: type[BaseModel]) -> str:
    """One error as a sentence (every error type a config can have)."""
    kind, loc, received = error["type"], error["loc"], error["input"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError) or (
        kind == "value_error" and isinstance(cause, ValueError)
    ):
        # A validator of ours: its message names the keys and the fix.
        return str(cause)
    if len(loc) > 2 and isinstance(loc[-1], str):
        # A key of several types (`str | int | float`): pydantic names the
        # last one tried (`data.positive_min.str`); say them all.
        return _union_message(loc[:-1], config, model)
    item = bool(loc) and isinstance(loc[-1], int)
    key_loc = loc[:-1] if item else loc
    key = ".".join(map(str, key_loc))
    if item:
        received = _lookup(config, key_loc)
    if kind in _TABLE_TYPES and len(loc) == 1:
        return f"[{key}] must be a table. Received: {received!r}"
    if kind in _TYPE_NAMES and item:
        return (
            f"Config key '{key}' must be a list of {_ITEM_NAMES[kind]}. "
            f"Received: {received!r}"
        )
    if kind in _TYPE_NAMES:
        return (
            f"Config key '{key}' must be {_TYPE_NAMES[kind]}. "
            f"Received: {received!r}"
        )
    if kind == "finite_number":
        return (
            f"Config key '{key}' must be a finite number. "
            f"Received: {received!r}"
        )
    field = _field(model, key_loc)
    if kind == "literal_error":
        valid = typing.get_args(field.annotation)
        return f"{key} must be one of {valid}. Received: {received!r}"
    if kind in _RANGE_TYPES and item:
        (items,) = typing.get_args(field.annotation)
        bounds = _bounds(list(typing.get_args(items)[1:]))
        items = (
            "positive integers" if bounds == ">= 1" else f"integers {bounds}"
        )
        return f"{key} must be a list of {items}. Received: {received}"
    if kind in _RANGE_TYPES:
        return f"{key} must be {_bounds(field.metadata)}. Received: {received}"
    return f"Config key '{key}': {error['msg']}. Received: {received!r}"


_UNION_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a finite number",
    bool: "true or false",
}


def _union_message(loc: tuple, config: dict, model: type[BaseModel]) -> str:
    """The error of a key (or a list's item) that holds none of its types."""
    item = isinstance(loc[-1], int)
    key_loc = loc[:-1] if item else loc
    annotation = _field(model, key_loc).annotation
    if item:
        (annotation,) = typing.get_args(annotation)
    types = typing.get_args(annotation)
    if float in types:  # a float may be whole
        types = tuple(t for t in types if t is not int)
    names = dict.fromkeys(_union_name(t) for t in types)
    what = " or ".join(names)
    key = ".".join(map(str, key_loc))
    if item:
        return (
            f"Config key '{key}' must be a list of items each {what}. "
            f"Received: {_lookup(config, key_loc)!r}"
        )
    return (
        f"Config key '{key}' must be {what}. "
        f"Received: {_lookup(config, key_loc)!r}"
    )


def _union_name(kind: Any) -> str:
    """One type of a union as a config's reader says it: `a whole number
    >= 1` (`Annotated[int, Field(ge=1)]`), `"auto"` (`Literal["auto"]`)."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return " or ".join(
            f'"{v}"' if isinstance(v, str) else repr(v)
            for v in typing.get_args(kind)
        )
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(kind)
        return f"{_union_name(base)} {_bounds(metadata)}"
    return _UNION_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _section(model: type[BaseModel], name: Any) -> type[BaseModel]:
    """The model of a config model's section `name`."""
    return typing.cast(type[BaseModel], model.model_fields[name].annotation)


def _field(model: type[BaseModel], loc: tuple) -> FieldInfo:
    """The field at `loc`, `(section,)` or `(section, key)`."""
    if len(loc) == 1:
        return model.model_fields[loc[0]]
    return _section(model, loc[0]).model_fields[loc[1]]


def _lookup(config: dict, loc: tuple) -> Any:
    for name in loc:
        config = config[name]
    return config


def _bounds(metadata: list) -> str:
    """`">= 1"`, `"> 0"` or `"in [0, 1)"` from a field's constraints."""
    low: tuple[str, Any] | None = None
    high: tuple[str, Any] | None = None
    # `Field(ge=1)` inside `Annotated` holds its constraints as metadata.
    metadata = [m for x in metadata for m in getattr(x, "metadata", [x])]
    for item in metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if hasattr(item, kind):
                value = getattr(item, kind)
                if kind in ("ge", "gt"):
                    low = (kind, value)
                else:
                    high = (kind, value)
    if low and high:
        left = "[" if low[0] == "ge" else "("
        right = "]" if high[0] == "le" else ")"
        return f"in {left}{low[1]}, {high[1]}{right}"
    sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    kind, value = low or high or ("", None)
    return f"{sign[kind]} {value}"
