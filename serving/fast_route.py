"""`FastRetrieve`: `POST /v1/retrieve` without FastAPI's per-request work.

FastAPI's per-request work (routing through every route, dependency
solving, its body reading, telemetry checks) cost more than the service's
answer from the precomputed top-items table: a known user's request was
answered at 0.76 of the req/s of a FastAPI route doing nothing
(`benchmarks/RESULTS.md`). This ASGI middleware answers the hottest route
itself, when the request is plainly well formed: a `Content-Length` body
of `Content-Type: application/json` (any parameters) that `orjson` parses
and `RetrieveRequest` validates. It then calls the route's own function
(`recsys.serving.routes.retrieve`) after the app's dependencies, so
answers, refusals and metrics are the route's.

Every other request, and every body it does not take (a parse or
validation error, another content type, a chunked body), goes on to
FastAPI unchanged, with the body it read handed back: error bodies stay
FastAPI's (422 with its `loc`s, bad JSON too: `json_invalid` at its
position), byte for byte.
"""

import re

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request

from recsys.serving.errors import http_error_handler
from recsys.serving.schemas import RetrieveRequest

PATH = "/v1/retrieve"
LONG_NUMBER = re.compile(rb"\d{19}")


class FastRetrieve:
    """Answers well-formed `POST /v1/retrieve` requests before FastAPI.

    Args:
        app: the next ASGI app (FastAPI's own stack).
        endpoint: the route's function, `endpoint(query, request)`.
        route: the route object (`/metrics` labels answers by its path).
        dependencies: async functions of the request run first, as the
            app's dependencies (e.g. `require_token`).

    Example:

    ```python
    app.add_middleware(FastRetrieve, endpoint=retrieve, route=route)
    ```
    """

    def __init__(self, app, endpoint, route, dependencies=()):
        if route.dependant.dependencies:
            # They would be skipped here: resolve them in `__call__` first.
            raise ValueError(
                f"FastRetrieve cannot answer {route.path}: the route has "
                "dependencies of its own."
            )
        self.app = app
        self.endpoint = endpoint
        self.route = route
        self.dependencies = tuple(dependencies)

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
        ):
            return await self.app(scope, receive, send)
        scope["route"] = self.route  # FastAPI sets it again if handed on
        if not _json_with_length(scope["headers"]):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        query = _parse(body)
        if query is None:
            return await self.app(scope, _replay(body, receive), send)
        request = Request(scope, receive)
        try:
            for dependency in self.dependencies:
                await dependency(request)
            response = await self.endpoint(query, request)
        except HTTPException as error:
            response = await http_error_handler(request, error)
        await response(scope, receive, send)


def _json_with_length(headers):
    """Whether the request says its body's length and that it is JSON (its
    first `Content-Type`, as FastAPI reads it)."""
    kind, length = None, False
    for name, value in headers:
        if name == b"content-type" and kind is None:
            kind = value.partition(b";")[0].strip().lower()
        elif name == b"content-length":
            length = True
    return length and kind == b"application/json"


def _parse(body):
    """The `RetrieveRequest` of `body`, or None for FastAPI to answer.

    FastAPI parses with `json.loads` and validates the result in Python
    mode, as here. `orjson` refuses some of what `json.loads` accepts
    (`NaN`, `1e400`, lone surrogates, a byte-order mark): those go to
    FastAPI. It reads integers past 64 bits as floats, where `json.loads`
    keeps them exact (an id of 20 digits would become another id): a body
    with 19 digits in a row goes to FastAPI too.
    """
    if LONG_NUMBER.search(body):
        return None
    try:
        return RetrieveRequest.model_validate(orjson.loads(body))
    except ValueError:  # orjson's JSONDecodeError, pydantic's ValidationError
        return None


async def _read_body(receive):
    """The whole request body (the app's middleware capped its length)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body, receive):
    """`receive` that gives `body` first, as one message."""
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
