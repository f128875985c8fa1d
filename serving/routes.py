"""The HTTP API: retrieval, similar items, health, metrics and reload."""

import asyncio
import functools
import logging

import numpy as np
import orjson
from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Query
from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.responses import PlainTextResponse
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from recsys.serving.bundle_paths import OutsideRoot
from recsys.serving.bundle_paths import resolve_bundle_path
from recsys.serving.bundle_paths import resolve_under_root
from recsys.serving.deps import RerankerDep
from recsys.serving.deps import ServiceDep
from recsys.serving.deps import SettingsDep
from recsys.serving.deps import current_service
from recsys.serving.deps import require_admin
from recsys.serving.errors import error_detail
from recsys.serving.schemas import BatchRequest
from recsys.serving.schemas import BatchResponse
from recsys.serving.schemas import Error
from recsys.serving.schemas import Health
from recsys.serving.schemas import Ready
from recsys.serving.schemas import ReloadRequest
from recsys.serving.schemas import ReloadResponse
from recsys.serving.schemas import ReloadStarted
from recsys.serving.schemas import RetrieveRequest
from recsys.serving.schemas import RetrieveResponse
from recsys.serving.service import QueryError
from recsys.serving.service import RetrievalService
from recsys.serving.service import TowerUnavailable

logger = logging.getLogger(__name__)

# Handlers return the JSON they built: FastAPI would otherwise validate the
# response model a second time. `response_model` still documents it.
JSON = "application/json"

# Every route documents the one error body (`recsys.serving.errors`); 500 is the
# catch-all of `recsys.serving.app.ServiceMiddleware`.
ERRORS = {500: {"model": Error, "description": "Internal error"}}
NO_BUNDLE = {"model": Error, "description": "No bundle is loaded yet"}
BODY_ERRORS = {
    400: {"model": Error, "description": "Body is not UTF-8 JSON"},
    413: {"model": Error, "description": "Body over RECSYS_MAX_BODY_BYTES"},
    422: {"model": Error, "description": "Invalid request"},
    503: {
        "model": Error,
        "description": "No bundle is loaded yet, or (a query with "
        "`features`) its query tower failed to load",
    },
}
router = APIRouter(responses=ERRORS)
admin = APIRouter(
    prefix="/admin",
    dependencies=[Depends(require_admin)],
    responses={
        **ERRORS,
        401: {"model": Error, "description": "Missing or wrong token"},
        403: {"model": Error, "description": "No RECSYS_API_TOKEN is set"},
    },
)

# Answers from the precomputed top-items table are a row slice, answered
# at once; a query that embeds features or searches the index (up to
# RECSYS_MAX_K items) joins a micro-batch (`RetrievalService.batcher`):
# one query tower call and one index search for the requests of the same
# window (on the event loop when that is quick, see `MicroBatcher`). Each
# `exclude` id costs a lookup, so long lists go to the batch too.
INLINE_MAX_EXCLUDE = 64


def _invalid(message, loc):
    return HTTPException(422, detail=error_detail(422, message, loc))


def _refused(error, loc=("body",)):
    """A 422 for a `QueryError`, at the field it names under `loc`."""
    return _invalid(str(error), (*loc, *error.loc))


def _unavailable(error):
    """A 503 for a `TowerUnavailable`: the server's fault, not the query's."""
    return HTTPException(503, detail=error_detail(503, str(error)))


def _check_limits(query, settings, loc=("body",)):
    if query.k > settings.max_k:
        raise _invalid(
            f"`k` must be at most {settings.max_k} "
            f"(RECSYS_MAX_K). Received: k={query.k}",
            (*loc, "k"),
        )
    if len(query.exclude) > settings.max_exclude:
        raise _invalid(
            f"`exclude` holds {len(query.exclude)} ids; at most "
            f"{settings.max_exclude} (RECSYS_MAX_EXCLUDE) are allowed.",
            (*loc, "exclude"),
        )


def _inline(query, service):
    """Whether `query` is answered cheaply enough to stay on the loop."""
    table = service.top_items
    return (
        table is not None
        and query.features is None
        and query.user_id is not None
        and query.exclude_seen
        and query.k <= table.depth
        and len(query.exclude) <= INLINE_MAX_EXCLUDE
    )


def _wants_rerank(query):
    return (
        query.rerank or query.candidates is not None or query.blend is not None
    )


def _check_rerank(query, settings, reranker, loc=("body",)):
    """422s for a query that asks for reranking this server cannot do."""
    if not query.rerank:
        raise _invalid(
            '`candidates` and `blend` apply only with "rerank": true. '
            f"Received: candidates={query.candidates}, blend={query.blend}",
            (*loc, "rerank"),
        )
    if reranker is None:
        raise _invalid(
            '"rerank": true needs a ranker, and this server has none. '
            "Fix: start it with `recsys serve BUNDLE --ranker RANKER_BUNDLE` "
            "(a binary or regression tabular bundle), or drop `rerank`.",
            (*loc, "rerank"),
        )
    if query.user_id is None:
        raise _invalid(
            "`rerank` needs a `user_id`: the ranker scores (user, "
            "item) pairs. Received: user_id=None",
            (*loc, "user_id"),
        )
    if query.candidates is None:
        return
    if query.candidates > settings.max_k:
        raise _invalid(
            f"`candidates` must be at most {settings.max_k} "
            f"(RECSYS_MAX_K). Received: candidates={query.candidates}",
            (*loc, "candidates"),
        )
    if query.candidates < query.k:
        # JSON Schema cannot say "at least `k`", so this is no error: the
        # ranker needs `k` candidates to return `k` items.
        query.candidates = query.k


def _items(ids, scores):
    """The answer's items: those of a finite score. A score is a float in
    the schema; a NaN or an infinity (vectors whose dot product overflows,
    from a tower's weights) would be written as `null`."""
    scores = np.asarray(scores)
    finite = np.isfinite(scores)
    if not finite.all():
        ids, scores = np.asarray(ids)[finite], scores[finite]
    return [
        {"id": str(i), "score": s}
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True)
    ]


def _body(ids, scores, fallback, version, reranked):
    return {
        "items": _items(ids, scores),
        "bundle": version,
        "fallback": fallback,
        "reranked": reranked,
    }


def _arguments(query):
    """`RetrievalService.retrieve`'s keyword arguments for one query."""
    return {
        "user_id": query.user_id,
        "features": query.features,
        "k": query.k,
        "exclude": query.exclude,
        "exclude_seen": query.exclude_seen,
    }


def _answer(query, service, loc=("body",)):
    """The `RetrieveResponse` of one query, as a JSON-able dict."""
    try:
        ids, scores, fallback = service.retrieve(**_arguments(query))
    except QueryError as error:
        raise _refused(error, loc) from None
    return _body(ids, scores, fallback, service.version, False)


def _bodies(queries, service):
    """The responses of queries answered together (`retrieve_many`)."""
    found = service.retrieve_many([_arguments(query) for query in queries])
    for i, answer in enumerate(found):
        if isinstance(answer, QueryError):
            raise _refused(answer, ("body", "queries", i))
    return [_body(*answer, service.version, False) for answer in found]


def _answers(queries, service, reranker):
    """The responses of queries some of which rerank (in one ranker call).

    Runs in a worker thread: the ranker's model call would otherwise hold
    the event loop (and its first call for a new input size compiles).
    """
    reranked = [i for i, query in enumerate(queries) if query.rerank]
    found = reranker.retrieve_many(
        service, [queries[i].model_dump() for i in reranked]
    )
    results = {}
    for i, answer in zip(reranked, found, strict=True):
        if isinstance(answer, QueryError):
            raise _refused(answer, ("body", "queries", i))
        if isinstance(answer, Exception):
            raise answer
        results[i] = _body(*answer, service.version, True)
    return [
        results[i]
        if i in results
        else _answer(query, service, ("body", "queries", i))
        for i, query in enumerate(queries)
    ]


def _json(body):
    # orjson writes this body in 2.6 us against 12.4 us for `json`: 5% of
    # a request served from the top-items table (benchmarks/RESULTS.md).
    return Response(orjson.dumps(body), media_type=JSON)


@router.post(
    "/v1/retrieve", response_model=RetrieveResponse, responses=BODY_ERRORS
)
async def retrieve(query: RetrieveRequest, request: Request):
    """Top-k items for one user (or one set of query features), best first.

    Unknown users without features get the most popular items
    (`"fallback": "popular"`). Items the user saw in training are excluded
    unless `exclude_seen` is false; ids in `exclude` never come back.

    With `"rerank": true` (a server started with `--ranker`), `candidates`
    items are retrieved so, then ordered by the ranker's score for
    `user_id` (or by `blend`), and the best `k` come back with that score
    and `"reranked": true`. An unknown user's candidates are the popular
    items, ordered as the ranker scores a user it has not seen.
    """
    # The hottest route reads the app state itself: resolving two FastAPI
    # dependencies held it at 0.70 of the framework floor against 0.77-0.79
    # without (serve_load.py, 200k items, two runs each).
    service = current_service(request)
    state = request.app.state
    _check_limits(query, state.settings)
    # Inlined `_wants_rerank`: a plain query pays three attribute reads.
    if query.rerank or query.candidates is not None or query.blend is not None:
        _check_rerank(query, state.settings, state.reranker)
        # Concurrent reranked requests share one ranker call
        # (RECSYS_BATCH_WINDOW_MS); a refused query fails alone.
        try:
            found = await state.rerank_batcher.submit(
                (service, query.model_dump())
            )
        except QueryError as error:
            raise _refused(error) from None
        except TowerUnavailable as error:
            raise _unavailable(error) from None
        return _json(_body(*found, service.version, True))
    if _inline(query, service):
        return _json(_answer(query, service))
    # Concurrent requests share one query tower call and one index search
    # (RECSYS_BATCH_WINDOW_MS); a refused query fails alone.
    try:
        found = await service.batcher.submit(_arguments(query))
    except QueryError as error:
        raise _refused(error) from None
    except TowerUnavailable as error:
        raise _unavailable(error) from None
    return _json(_body(*found, service.version, False))


@router.post(
    "/v1/retrieve/batch", response_model=BatchResponse, responses=BODY_ERRORS
)
async def retrieve_batch(
    batch: BatchRequest,
    service: ServiceDep,
    settings: SettingsDep,
    reranker: RerankerDep,
):
    """Several retrieval queries in one call, answered by one bundle.

    Queries with `"rerank": true` are reranked together, in one call of the
    ranker per distinct `blend`. The batch is answered in a worker thread,
    so a large one does not hold up other requests.
    """
    if len(batch.queries) > settings.max_batch:
        raise _invalid(
            f"A batch holds at most {settings.max_batch} queries "
            f"(RECSYS_MAX_BATCH). Received: {len(batch.queries)}",
            ("body", "queries"),
        )
    rerank = False
    for i, query in enumerate(batch.queries):
        loc = ("body", "queries", i)
        _check_limits(query, settings, loc)
        if _wants_rerank(query):
            _check_rerank(query, settings, reranker, loc)
            rerank = True
    try:
        if rerank:
            results = await run_in_threadpool(
                _answers, batch.queries, service, reranker
            )
        else:
            results = await run_in_threadpool(_bodies, batch.queries, service)
    except TowerUnavailable as error:
        raise _unavailable(error) from None
    return _json({"results": results, "bundle": service.version})


@router.get(
    # `:path`: an item id may hold "/" (sent as %2F, which the server
    # decodes before routing).
    "/v1/items/{item_id:path}/similar",
    response_model=RetrieveResponse,
    responses={
        404: {"model": Error, "description": "Unknown item id"},
        422: BODY_ERRORS[422],
        503: NO_BUNDLE,
    },
)
async def similar_items(
    item_id: str,
    service: ServiceDep,
    settings: SettingsDep,
    k: int = Query(10, ge=1, description="Number of items."),
):
    """The `k` items nearest to `item_id` in the candidate embedding space."""
    if k > settings.max_k:
        raise _invalid(
            f"`k` must be at most {settings.max_k} (RECSYS_MAX_K). "
            f"Received: k={k}",
            ("query", "k"),
        )
    try:
        ids, scores = await run_in_threadpool(service.similar, item_id, k)
    except KeyError:
        raise HTTPException(
            404,
            detail=error_detail(
                404, f"Unknown item id {item_id!r}.", ("path", "item_id")
            ),
        ) from None
    return _json(
        {
            "items": _items(ids, scores),
            "bundle": service.version,
            "fallback": None,
            "reranked": False,
        }
    )


@router.get("/healthz", response_model=Health)
async def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: NO_BUNDLE},
)
async def readyz(request: Request):
    """Readiness: a bundle is loaded and can answer.

    Known users are answered from the start. `query_tower` says whether
    queries with `features` are answered at once (`"numpy"` or `"keras"`:
    what evaluates the tower) or wait for it (`"loading"`); `top_items`
    whether known users' precomputed top items are `"ready"` (else their
    queries search the index: `"building"` or `"off"`).
    """
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, detail="No bundle is loaded yet.")
    reranker = request.app.state.reranker
    if service.tower_loaded:
        tower = service.tower_kind
    else:
        tower = "failed" if service.tower_error else "loading"
    if not service.top_items_done.is_set():
        table = "building"
    else:
        table = "off" if service.top_items is None else "ready"
    return {
        "status": "ready",
        "bundle": service.version,
        "ranker": None if reranker is None else reranker.version,
        "ranker_kind": None if reranker is None else reranker.kind,
        "query_tower": tower,
        "top_items": table,
    }


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request):
    """Prometheus metrics: requests by status, latency, bundle version."""
    # Off the event loop: with --workers it reads every worker's files,
    # which grow with each reload's workers (1,000 in 0.4 s).
    text = await asyncio.to_thread(request.app.state.metrics.render)
    return Response(text, media_type="text/plain; version=0.0.4")


@admin.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        403: {
            "model": Error,
            "description": "No RECSYS_API_TOKEN is set, or `path` is not "
            "under the bundle root",
        },
        400: BODY_ERRORS[400],
        202: {
            "model": ReloadStarted,
            "description": "Several worker processes serve: a reload of "
            "every worker started (new workers, then the old ones stopped)",
        },
        409: {
            "model": Error,
            "description": "A `path` with several worker processes: only "
            "the bundle or pointer file the server started with reloads",
        },
        413: BODY_ERRORS[413],
        422: {"model": Error, "description": "Bundle refused"},
    },
)
async def reload(request: Request, body: ReloadRequest | None = None):
    """Loads a bundle beside the current one and swaps it in atomically.

    `path` must lie under the bundle root (RECSYS_BUNDLE_ROOT, by default
    the directory holding the bundle or pointer file the server started
    with), after symlinks and `..` are resolved; a relative `path` is
    taken from the root. Without `path`, the bundle or pointer file the
    server started with is read again.

    A bundle that fails to load is refused with 422 and the current bundle
    keeps serving. Requests in flight finish on the bundle they started with.
    The ranker (`--ranker`) is not reloaded: it reranks the new bundle's
    candidates, and a bundle of other ids than the ranker's is refused
    with 422 (`Reranker.check_retriever`). With several workers (`recsys
    serve --workers N`) no swap in one process reaches the others: without
    `path`, the answer is 202 and the server reloads every worker as SIGHUP
    does (new workers on the bundle or pointer read again, then the old
    ones stopped; a bundle that fails to load, or that the ranker refuses,
    is logged and the old workers serve on); with `path`, 409.
    """
    state = request.app.state
    refused = getattr(state, "reload_refused", None)
    if refused:
        if body is None or body.path is None:
            state.reload_all()
            return JSONResponse(
                ReloadStarted(
                    status="reloading",
                    bundle=state.service.version,
                    path=state.start_path,
                ).model_dump(),
                status_code=202,
            )
        raise HTTPException(409, detail=refused)
    if body is None or body.path is None:
        return await swap_bundle(request.app, state.start_path)
    try:
        path = resolve_under_root(body.path, state.bundle_root)
    except OutsideRoot as error:
        raise HTTPException(
            403, detail=error_detail(403, str(error), ("body", "path"))
        ) from None
    except (OSError, ValueError) as error:
        raise _invalid(
            f"Bundle refused, still serving {state.service.version}: {error}",
            ("body", "path"),
        ) from None
    return await swap_bundle(request.app, path)


def _reason(error):
    """Why a bundle was refused: the message of a check that refused it,
    or an unexpected error's type and text (logged with its traceback)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])  # str(KeyError) adds quotes
    if isinstance(error, (OSError, ValueError)):  # BundleError included
        return str(error)
    logger.warning("Bundle refused by an unexpected error", exc_info=error)
    return f"{type(error).__name__}: {error}"


async def swap_bundle(app, path):
    """Loads `path` off the event loop, then replaces the served bundle.

    Args:
        app: the service's app.
        path: str. A bundle directory, or a pointer file naming one.
    """
    async with app.state.reload_lock:
        try:
            path = resolve_bundle_path(path)
            reranker = app.state.reranker
            service = await asyncio.to_thread(
                functools.partial(
                    RetrievalService.load,
                    path,
                    **app.state.settings.service_options(),
                    # The kept ranker must know the new bundle's ids:
                    # checked before the top-items table is built.
                    check=reranker.check_retriever if reranker else None,
                )
            )
        except Exception as error:
            # Whatever a bad bundle raises refuses it, checked or not (a
            # manifest of the wrong types raises TypeError, one nested too
            # deep RecursionError): the old bundle keeps serving.
            message = _reason(error)
            raise _invalid(
                f"Bundle {path!r} refused, still serving "
                f"{app.state.service.version}: {message}",
                ("body", "path"),
            ) from None
        old = app.state.service
        previous = old.version
        app.state.service = service
        old.close()
        if app.state.after_load is not None:
            app.state.after_load()
        app.state.metrics.set_bundle(service.version)
        if app.openapi_schema is not None:
            app.openapi_schema = None  # the document names its features
    return ReloadResponse(bundle=service.version, previous=previous, path=path)
