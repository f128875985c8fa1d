"""`create_app`: the FastAPI app: one bundle, hot reload, an optional ranker."""

import asyncio
import contextlib
import functools
import logging
import os
import time

from fastapi import Depends
from fastapi import FastAPI
from fastapi import HTTPException
from fastapi.responses import JSONResponse

from serving.deps import require_token
from serving.metrics import ServiceMetrics
from serving.reranker import Reranker
from serving.routes import admin
from serving.routes import freeze_heap
from serving.routes import router
from serving.routes import swap_bundle
from serving.service import RetrievalService
from serving.settings import Settings

logger = logging.getLogger(__name__)


def resolve_bundle_path(path):
    """A bundle directory, or the directory named in a pointer file."""
    if os.path.isfile(path):
        with open(path, errors="replace") as f:
            target = f.readline(4096).strip()
        if not target:
            raise ValueError(f"Pointer file {path} is empty.")
        target = os.path.join(os.path.dirname(os.path.abspath(path)), target)
        if not os.path.isfile(os.path.join(target, "manifest.json")):
            raise ValueError(
                f"{path} is a file, so it is read as a pointer file; its first "
                f"line names {target!r}, which is not a recsys bundle. Fix: "
                "pass a bundle directory, or a file holding a bundle's path."
            )
        return target
    return path


def _fingerprint(path):
    """What changes when a new bundle lands at `path` (or its pointer)."""
    try:
        target = resolve_bundle_path(path)
        return target, os.stat(
            os.path.join(target, "manifest.json")
        ).st_mtime_ns
    except (OSError, ValueError):
        return None


class BodyTooLarge(HTTPException):
    def __init__(self, limit):
        super().__init__(
            413,
            detail=f"Request body over {limit} bytes (RECSYS_MAX_BODY_BYTES).",
        )


class ServiceMiddleware:
    """Caps request bodies and records metrics, as plain ASGI (no overhead
    of `BaseHTTPMiddleware` on the hot path)."""

    def __init__(self, app, max_body_bytes, metrics):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            error = BodyTooLarge(self.max_body_bytes)
            response = JSONResponse({"detail": error.detail}, status_code=413)
            await response(scope, receive, send_and_record)
        else:
            received = 0

            async def limited_receive():
                # Bodies sent without a length (chunked) are counted too.
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                return message

            await self.app(scope, limited_receive, send_and_record)
        route = scope.get("route")
        self.metrics.observe(
            route.path if route else "unmatched", status, started
        )


async def _watch(app, interval):
    """Reloads when the watched bundle directory or pointer file changes."""
    seen = _fingerprint(app.state.watch_path)
    while True:
        await asyncio.sleep(interval)
        current = _fingerprint(app.state.watch_path)
        if current is None or current == seen:
            continue
        seen = current
        try:
            result = await swap_bundle(app, current[0])
            logger.info(
                "Reloaded bundle %s (was %s)", result.bundle, result.previous
            )
        except HTTPException as error:
            logger.warning("Watched bundle refused: %s", error.detail)


def create_app(
    bundle_path, *, settings=None, service=None, watch=False, ranker=None
):
    """Builds the retrieval service app for the bundle at `bundle_path`.

    Args:
        bundle_path: str. A bundle directory, or a pointer file holding one
            bundle directory's path (relative to the file).
        settings: `serving.settings.Settings`; defaults to the environment.
        service: an already loaded `RetrievalService` (else loaded at
            startup).
        watch: bool. Reload when the bundle (or pointer) changes.
        ranker: optional second stage for `"rerank": true` requests: the
            directory of a binary or regression tabular bundle (loaded at
            startup), or a loaded `serving.reranker.Reranker`. Reloads of
            the retrieval bundle keep it. Defaults to `None` (such requests
            get a 422).

    Returns:
        A `FastAPI` app.

    Example:

    ```python
    app = create_app("artifacts/demo", ranker="artifacts/movielens_liked")
    # uvicorn.run(app, host="127.0.0.1", port=8000)
    ```
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if isinstance(ranker, (str, os.PathLike)):
            app.state.reranker = await asyncio.to_thread(
                Reranker.load, os.fspath(ranker)
            )
        if app.state.service is None:
            target = resolve_bundle_path(bundle_path)
            app.state.service = await asyncio.to_thread(
                functools.partial(
                    RetrievalService.load,
                    target,
                    **settings.service_options(),
                )
            )
        app.state.bundle_path = resolve_bundle_path(bundle_path)
        app.state.metrics.set_bundle(app.state.service.version)
        freeze_heap()
        watcher = None
        if watch:
            watcher = asyncio.create_task(_watch(app, settings.watch_interval))
        yield
        if watcher is not None:
            watcher.cancel()

    app = FastAPI(
        title="recsys retrieval service",
        description="Top-k candidate items from a recsys bundle.",
        lifespan=lifespan,
        dependencies=[Depends(require_token)] if settings.auth_all else [],
    )
    app.state.settings = settings
    app.state.service = service
    app.state.reranker = (
        None if isinstance(ranker, (str, os.PathLike)) else ranker
    )
    app.state.watch_path = bundle_path
    app.state.bundle_path = bundle_path
    app.state.reload_lock = asyncio.Lock()
    app.state.metrics = ServiceMetrics()
    app.include_router(router)
    app.include_router(admin)
    app.add_middleware(
        ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=app.state.metrics,
    )
    return app
