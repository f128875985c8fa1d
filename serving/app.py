"""`create_app`: the FastAPI app: one bundle, hot reload, an optional ranker."""

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends
from fastapi import FastAPI
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from recsys.serving.batching import MicroBatcher
from recsys.serving.bundle_paths import bundle_fingerprint
from recsys.serving.bundle_paths import default_bundle_root
from recsys.serving.bundle_paths import recover_watched_bundle
from recsys.serving.bundle_paths import resolve_bundle_path
from recsys.serving.bundle_paths import watched_bundle
from recsys.serving.deps import require_token
from recsys.serving.errors import error_response
from recsys.serving.errors import install_error_handlers
from recsys.serving.fast_route import PATH
from recsys.serving.fast_route import FastRetrieve
from recsys.serving.metrics import ServiceMetrics
from recsys.serving.openapi import service_openapi
from recsys.serving.reranker import Reranker
from recsys.serving.routes import admin
from recsys.serving.routes import retrieve
from recsys.serving.routes import router
from recsys.serving.routes import swap_bundle
from recsys.serving.service import RetrievalService
from recsys.serving.settings import Settings

__all__ = ["create_app", "resolve_bundle_path"]

logger = logging.getLogger(__name__)


# FastAPI serves its own pages through plain Starlette routes, which leave
# `scope["route"]` unset: named by their path where they are on.
FASTAPI_PAGES = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)


def _route_label(scope, status):
    """The `route` label of a request's metrics: its route's path template
    (one label for every item id), else `"unmatched"`."""
    route = scope.get("route")
    if route is not None:
        return route.path
    path = scope.get("path")
    return path if path in FASTAPI_PAGES and status != 404 else "unmatched"


class ServiceMiddleware:
    """Caps request bodies, records metrics, turns crashes into 500s and
    answers HEAD as GET without the body.

    Plain ASGI (no overhead of `BaseHTTPMiddleware` on the hot path). Every
    answer is counted in `/metrics` by route and status, including 500s
    from unexpected exceptions: those are logged with their traceback and
    answered with a generic JSON body in the service's error shape.
    """

    def __init__(self, app, max_body_bytes, metrics):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = None
        # HEAD wherever GET is answered, as RFC 9110 asks (FastAPI's routes
        # answered 405: a HEAD health probe failed): the GET, its body
        # left out.
        head = scope.get("method") == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"0")
        try:
            if not length.isdigit() or int(length) > self.max_body_bytes:
                await self._too_large(scope, receive, send_and_record)
            else:
                await self.app(scope, self._limited(receive), send_and_record)
        except ClientDisconnect:
            status = status or 499  # nginx's "client closed request"
        except Exception:
            logger.exception(
                "Unexpected error answering %s %s",
                scope.get("method"),
                scope.get("path"),
            )
            if status is None:
                response = error_response(
                    500, "Internal error; the server log has the details."
                )
                await response(scope, receive, send_and_record)
            status = 500
        status = status or 500
        self.metrics.observe(_route_label(scope, status), status, started)

    def _limited(self, receive):
        received = 0

        async def limited_receive():
            # Bodies sent without a length (chunked) are counted too.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, detail=self._too_large_message())
            return message

        return limited_receive

    def _too_large_message(self):
        return (
            f"Request body over {self.max_body_bytes} bytes "
            "(RECSYS_MAX_BODY_BYTES)."
        )

    async def _too_large(self, scope, receive, send):
        response = error_response(413, self._too_large_message())
        await response(scope, receive, send)


def _load_tower_in_background(service: RetrievalService) -> threading.Thread:
    """Loads the query tower (and Keras) in a thread, while the app answers.

    Known and unknown users are answered without it; the first query with
    `features` waits for it.

    Returns:
        The loading thread.
    """

    def load():
        try:
            service.load_query_tower()
        except Exception:
            # Requests with features get a 503 (`TowerUnavailable`).
            logger.exception("Loading the query tower failed")

    thread = threading.Thread(target=load, name="query-tower", daemon=True)
    thread.start()
    return thread


async def _after_warm(app, service, tower, after_load) -> None:
    """Calls `after_load` again once the work started in the background at
    startup is done (the query tower, the top-items table), so what it
    allocated is frozen too: Keras' import alone left ~200k objects that
    each full collection scanned, pausing the 1M-item server ~100 ms twice
    in 8 s (`benchmarks/serve_load.py`, shape `deep`)."""
    while (tower is not None and tower.is_alive()) or (
        not service.top_items_done.is_set()
    ):
        await asyncio.sleep(0.5)
    if app.state.service is service:
        after_load()


async def _watch(app, interval):
    """Reloads when the watched bundle directory or pointer file changes."""
    path = app.state.watch_path
    # The files last loaded (or refused) from the path, by this watch or
    # a SIGHUP (`recsys.serving.server`): one new bundle was loaded twice,
    # once by each.
    app.state.watch_seen = bundle_fingerprint(path)
    # Why the path names no bundle, at the last poll and as last warned:
    # a pointer to a typo was ignored without a word. Warned on the
    # second poll in a row, not during a training's swap of the bundle.
    missing = warned = None
    while True:
        await asyncio.sleep(interval)
        current, why = watched_bundle(path)
        if current is None and await asyncio.to_thread(
            recover_watched_bundle, path
        ):
            current, why = watched_bundle(path)
        if current is None:
            if why == missing and why != warned:
                logger.warning(
                    "Watched path %s names no bundle now (%s); still "
                    "serving the bundle loaded.",
                    path,
                    why,
                )
                warned = why
            missing = why
            continue
        missing = warned = None
        if current == app.state.watch_seen:
            continue
        app.state.watch_seen = current
        try:
            result = await swap_bundle(app, current[0])
            logger.info(
                "Reloaded bundle %s (was %s)", result.bundle, result.previous
            )
        except HTTPException as error:  # swap_bundle's 422: the reason
            logger.warning("Watched bundle refused: %s", error.detail[0]["msg"])
        except Exception:
            # Anything else must not end the watch either: the next bundle
            # written there is loaded as ever.
            logger.exception("Watched bundle %s refused", current[0])


def _fast_rerank(app) -> bool:
    """Whether reranked batches run on the event loop: the numpy ranker
    on candidates from a service that answers quickly."""
    reranker = app.state.reranker
    service = getattr(app.state, "service", None)
    return (
        reranker is not None
        and reranker.kind == "numpy"
        and service is not None
        and service.answers_quickly
    )


def create_app(
    bundle_path: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    service: RetrievalService | None = None,
    watch: bool = False,
    ranker: str
    | os.PathLike[str]
    | Reranker
    | Callable[[], Reranker]
    | None = None,
    after_load: Callable[[], Any] | None = None,
) -> FastAPI:
    """Builds the retrieval service app for the bundle at `bundle_path`.

    `/admin/*` is closed unless `settings.api_token` is set (403 to
    everyone), and `/admin/reload` loads only bundles under
    `settings.bundle_root` (by default the directory holding
    `bundle_path`). A reload without a path reads `bundle_path` again.

    Args:
        bundle_path: str. A bundle directory, or a pointer file holding one
            bundle directory's path (relative to the file).
        settings: `serving.settings.Settings`; defaults to the environment.
        service: an already loaded `RetrievalService` (else loaded at
            startup).
        watch: bool. Reload when the bundle (or pointer) changes.
        ranker: optional second stage for `"rerank": true` requests: the
            directory of a binary or regression tabular bundle (loaded at
            startup), a loaded `recsys.serving.reranker.Reranker`, or a
            function returning one (called in a thread at startup). Reloads
            of the retrieval bundle keep it. Defaults to `None` (such requests
            get a 422). A ranker trained on another table's ids than the
            bundle's is refused (`Reranker.check_retriever`): here when
            both `service` and a `Reranker` are given, else at startup; a
            reload to a bundle it cannot rerank is refused (422).
        after_load: callable or None. Called with no arguments once the
            bundle is loaded at startup and after each reload, in the event
            loop. `recsys serve`, which owns its process, passes a function
            that moves the loaded objects out of the garbage collector's
            scans (`gc.freeze`); an app factory must not change that global
            state itself. Defaults to `None`.

    Returns:
        A `FastAPI` app.

    Example:

    ```python
    app = create_app("artifacts/demo", ranker="artifacts/movielens_liked")
    # uvicorn.run(app, host="127.0.0.1", port=8000)
    ```
    """
    settings = settings or Settings()
    if service is not None and isinstance(ranker, Reranker):
        # Refused here, before a server binds its port.
        ranker.check_retriever(service.bundle)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if isinstance(ranker, (str, os.PathLike)):
            app.state.reranker = await asyncio.to_thread(
                Reranker.load, os.fspath(ranker)
            )
        elif callable(ranker):
            app.state.reranker = await asyncio.to_thread(ranker)
        reranker = app.state.reranker
        if app.state.service is None:
            target = resolve_bundle_path(bundle_path)
            app.state.service = await asyncio.to_thread(
                functools.partial(
                    RetrievalService.load,
                    target,
                    load_tower=False,
                    precompute_in_background=True,
                    **settings.service_options(),
                    check=reranker.check_retriever if reranker else None,
                )
            )
        service = app.state.service
        if reranker is not None:  # a given service (checked once a pair)
            await asyncio.to_thread(reranker.check_retriever, service.bundle)
        tower = None
        if not service.tower_loaded:
            tower = _load_tower_in_background(service)
        app.state.metrics.set_bundle(service.version)
        tasks = []
        if after_load is not None:
            after_load()
            warm = _after_warm(app, service, tower, after_load)
            tasks.append(asyncio.create_task(warm))
        if watch:
            tasks.append(
                asyncio.create_task(_watch(app, settings.watch_interval))
            )
        # The ranker's numpy path keeps BLAS on one thread while it serves.
        reranker = app.state.reranker
        serving = reranker.serving() if reranker else contextlib.nullcontext()
        with serving:
            yield
        for task in tasks:
            task.cancel()

    # Under RECSYS_AUTH_ALL the document (the bundle's query features, the
    # limits) needs the token too, and the docs pages, which fetch it
    # without one, are off; FastAPI serves both outside its dependencies.
    shown = not settings.auth_all
    app = FastAPI(
        title="recsys retrieval service",
        description="Top-k candidate items from a recsys bundle.",
        lifespan=lifespan,
        dependencies=[Depends(require_token)] if settings.auth_all else [],
        openapi_url="/openapi.json" if shown else None,
        docs_url="/docs" if shown else None,
        redoc_url="/redoc" if shown else None,
    )
    if not shown:

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi_document() -> JSONResponse:
            return JSONResponse(app.openapi())

    app.state.settings = settings
    app.state.service = service
    app.state.reranker = ranker if isinstance(ranker, Reranker) else None
    # Concurrent `"rerank": true` requests share one ranker call, with the
    # retrieval batch's window and size (RECSYS_BATCH_WINDOW_MS, ...).
    app.state.rerank_batcher = MicroBatcher(
        lambda batch: app.state.reranker.rerank_many(batch),
        window=settings.batch_window_ms / 1000,
        max_size=settings.batch_max_size,
        inline=lambda: _fast_rerank(app),
    )
    app.state.watch_path = bundle_path
    app.state.after_load = after_load
    # What a reload without a path reads again: never a path a request gave.
    app.state.start_path = os.fspath(bundle_path)
    app.state.bundle_root = os.path.realpath(
        settings.bundle_root or default_bundle_root(bundle_path)
    )
    app.state.reload_lock = asyncio.Lock()
    app.state.metrics = ServiceMetrics()
    app.include_router(router)
    app.include_router(admin)
    install_error_handlers(app)
    # The hottest route skips FastAPI's per-request work when its body is
    # plainly well formed (`recsys.serving.fast_route`).
    app.add_middleware(
        FastRetrieve,
        endpoint=retrieve,
        route=next(r for r in router.routes if r.path == PATH),
        dependencies=[require_token] if settings.auth_all else [],
    )
    app.add_middleware(
        ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=app.state.metrics,
    )
    app.openapi = functools.partial(service_openapi, app)
    return app
