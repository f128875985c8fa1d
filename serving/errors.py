"""One error shape for every 4xx and 5xx answer, and its handlers.

Every error body is `{"detail": [{"loc": [...], "msg": "...", "type":
"..."}]}`: the shape of FastAPI's validation errors (`schemas.Error`
documents it), so a client reads one shape whatever went wrong. Bodies are
rendered from JSON-safe values only: a request holding `NaN`, `Infinity` or
`1e309` gets a 422 that says so, never a 500 from the error renderer.
"""

import logging
import math

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)

# Error `type`s of the errors this service raises itself (validation errors
# keep pydantic's types).
HTTP_ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    422: "value_error",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}


def error_detail(status, message, loc=()):
    """The `detail` list of an error body with one entry.

    Args:
        status: int. The HTTP status (it picks the entry's `type`).
        message: str. What went wrong, and the fix.
        loc: tuple. Where in the request (e.g. `("body", "k")`).

    Returns:
        A list holding one `{"loc", "msg", "type"}` dict.
    """
    kind = HTTP_ERROR_TYPES.get(status, "http_error")
    return [{"loc": list(loc), "msg": message, "type": kind}]


def error_response(status, message, loc=(), headers=None):
    """A JSON error response in the service's one error shape."""
    return JSONResponse(
        {"detail": error_detail(status, message, loc)},
        status_code=status,
        headers=headers,
    )


# Levels of a value an error body shows (deeper ones are "..."): each level
# is a Python call, and a request's 900-deep list is no reason for a 500.
MAX_DEPTH = 32
# Characters of a string and items of a list or object a validation error
# echoes of the request's input (the rest is "..."): a 900 KB id was echoed
# whole in its 422.
MAX_SHOWN_CHARS = 200
MAX_SHOWN_ITEMS = 20


def shown_input(value, depth=0):
    """A request's value as an error echoes it: `json_safe`, cut at
    `MAX_SHOWN_CHARS` characters and `MAX_SHOWN_ITEMS` items."""
    if isinstance(value, bytes):  # a body that is no JSON
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and len(value) > MAX_SHOWN_CHARS:
        return json_safe(value[:MAX_SHOWN_CHARS] + "...")
    if isinstance(value, dict) and depth < MAX_DEPTH:
        items = list(value.items())
        shown = {
            shown_input(str(k), depth + 1): shown_input(v, depth + 1)
            for k, v in items[:MAX_SHOWN_ITEMS]
        }
        return (
            shown if len(items) <= MAX_SHOWN_ITEMS else {**shown, "...": "..."}
        )
    if isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
        cut = [shown_input(v, depth + 1) for v in value[:MAX_SHOWN_ITEMS]]
        return cut if len(value) <= MAX_SHOWN_ITEMS else [*cut, "..."]
    return json_safe(value, depth)


def json_safe(value, depth=0):
    """`value` with everything JSON cannot hold spelled as a string.

    Non-finite floats become `"nan"`, `"inf"` or `"-inf"`; bytes are
    decoded; a string's lone UTF-16 surrogates (which JSON can spell but
    UTF-8 cannot encode) become their escapes; objects JSON does not know
    (exceptions in a validation error's `ctx`, for one) become their
    `str`; containers deeper than `MAX_DEPTH` become `"..."`.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {
            json_safe(str(k)): json_safe(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json_safe(str(value))


async def http_error_handler(request, error):
    """Starlette and route `HTTPException`s, in the one error shape."""
    detail = error.detail
    if not isinstance(detail, list):
        message = _unparsed_body(error) or str(detail)
        detail = error_detail(error.status_code, message)
    return JSONResponse(
        {"detail": json_safe(detail)},
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


def _unparsed_body(error):
    """What FastAPI's 400 "There was an error parsing the body" hides: the
    error `json.loads` raised, told with its fix (None for any other)."""
    if error.status_code != 400:
        return None
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"The body is not UTF-8: byte {cause.object[cause.start]:#04x} "
            f"at position {cause.start} is not valid {cause.encoding}. Fix: "
            "send the JSON encoded as UTF-8."
        )
    if isinstance(cause, RecursionError):
        return (
            "The body's JSON is nested too deeply to parse. Fix: send a "
            "request as `/openapi.json` describes it (ids and features are "
            "at most one list deep)."
        )
    if isinstance(cause, ValueError) and "digits" in str(cause):
        # Python's limit on the digits of an int it parses (4,300).
        return (
            "The body holds a number of more than 4,300 digits, longer than "
            "any id. Fix: send ids of fewer digits (or as strings)."
        )
    return None


class ValueAt(ValueError):
    """A validator's refusal of one value inside its field (a feature, a
    list's item): its error's `loc` goes on to `keys`, and `input` is that
    value, not the whole field.

    Args:
        message: str. What is wrong, and the fix.
        value: the value refused.
        *keys: where in the field (feature names, list positions; None is
            skipped).
    """

    def __init__(self, message, value, *keys):
        super().__init__(message)
        self.value = value
        self.keys = [k for k in keys if k is not None]


def _at_value(item):
    """A pydantic error item placed at its `ValueAt`'s value."""
    cause = (item.get("ctx") or {}).get("error")
    if not isinstance(cause, ValueAt):
        return item
    rest = {k: v for k, v in item.items() if k != "ctx"}
    loc = [*item.get("loc", ()), *cause.keys]
    return {**rest, "loc": loc, "msg": str(cause), "input": cause.value}


async def validation_error_handler(request, error):
    """Request validation errors as 422, whatever values the request held."""
    detail = [
        {
            key: shown_input(value) if key == "input" else json_safe(value)
            for key, value in _at_value(item).items()
            if key in ("loc", "msg", "type", "input", "ctx")
        }
        for item in error.errors()
    ]
    detail = _merged_id_branches(detail)
    for item in detail:
        if item["loc"] == ["body"] and item["type"] == "missing":
            item["msg"] = (
                f"The body is empty: send a JSON object, e.g. {EXAMPLE_BODY}."
            )
        elif item["type"] == "json_invalid":
            # pydantic's "JSON decode error", at a loc of the character.
            said = (item.get("ctx") or {}).get("error", "")
            item["msg"] = (
                f"The body is not valid JSON ({said}, at character "
                f"{item['loc'][-1]}). Fix: send one JSON object, e.g. "
                f"{EXAMPLE_BODY}."
            )
        elif item["type"] == "extra_forbidden":
            item["msg"] = _unknown_field(request, item["loc"])
        elif item["loc"] == ["body"] and item["type"] in NOT_AN_OBJECT:
            item["msg"] = (
                "The body must be a JSON object, e.g. "
                f"{EXAMPLE_BODY}. Received: {_json_kind(item.get('input'))}."
            )
    kind = request.headers.get("content-type", "")
    if not _json_type(kind):
        # FastAPI reads a body as JSON only when it says so; `curl -d`
        # says form data, `requests.post(url, data=...)` nothing, and
        # pydantic's message does not tell.
        said = (
            f"This request's Content-Type: {kind!r}"
            if kind
            else "This request has no Content-Type"
        )
        for item in detail:
            if item["loc"] == ["body"] and item["type"] in NOT_AN_OBJECT:
                item["msg"] = (
                    "The body must be a JSON object sent with Content-Type: "
                    f"application/json. {said}; with curl, add -H "
                    "'Content-Type: application/json' (or send the body "
                    "with --json); with requests or httpx, pass the object "
                    "as json=, not data=."
                )
    return JSONResponse({"detail": detail}, status_code=422)


def _merged_id_branches(detail):
    """One error per id that is neither a string nor a whole number.

    Pydantic reports each branch of `Id` (`str | int`) apart, under locs
    that end in the branch's name (`"str"`, `"function-before[_integral(),
    int]"`): a validator's name, and two messages for one value.
    """
    merged, index = [], {}
    for item in detail:
        *where, branch = item["loc"] or [""]
        if branch == "str" or (isinstance(branch, str) and "int]" in branch):
            key = tuple(where)
            if key in index:
                continue
            index[key] = len(merged)
            item = {
                **item,
                "loc": where,
                "msg": "Input should be an id: a string or a whole number",
                "type": "id_type",
            }
        merged.append(item)
    return merged


EXAMPLE_BODY = '{"user_id": "42", "k": 10}'


def _json_kind(value):
    """What a JSON value is, in words (`null`, a list, ...)."""
    if value is None:
        return "null"
    names = {list: "a list", str: "a string", bool: "a boolean"}
    return next(
        (name for kind, name in names.items() if isinstance(value, kind)),
        "a number",
    )


def _unknown_field(request, loc):
    """The message for a body field the route does not take: the fields
    it does, and the nearest one (`userId`: `user_id`). Pydantic's "Extra
    inputs are not permitted" listed none."""
    import difflib
    import typing

    import pydantic

    route = request.scope.get("route")
    body = getattr(route, "body_field", None)
    model = body.field_info.annotation if body is not None else None
    for key in loc[1:-1]:  # from the body down to the field's object
        if not isinstance(key, str) or model is None:
            continue
        field = model.model_fields.get(key)
        kinds = [field.annotation] if field is not None else []
        model = None
        while kinds:  # the model inside list[...] or X | None
            kind = kinds.pop()
            if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
                model = kind
                break
            kinds += typing.get_args(kind)
    name = loc[-1]
    if model is None:
        return f"Unknown field {name!r}."
    fields = [f.alias or key for key, f in model.model_fields.items()]
    near = difflib.get_close_matches(str(name), fields, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return f"Unknown field {name!r}.{hint} The fields taken: {fields}."


# Validation error types of a body that is not a JSON object at all.
NOT_AN_OBJECT = ("model_attributes_type", "dict_type", "model_type")


def _json_type(content_type):
    """Whether FastAPI reads a body of `content_type` as JSON."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def install_error_handlers(app):
    """Registers the handlers above on `app`."""
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
