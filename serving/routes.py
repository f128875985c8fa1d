"""The HTTP API: retrieval, similar items, health, metrics and reload."""

import asyncio
import functools
import gc

import orjson
from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Query
from fastapi import Request
from fastapi.responses import Response

from recsys.bundle import BundleError
from serving.deps import ServiceDep
from serving.deps import SettingsDep
from serving.deps import current_service
from serving.deps import require_token
from serving.schemas import BatchRequest
from serving.schemas import BatchResponse
from serving.schemas import Item
from serving.schemas import ReloadRequest
from serving.schemas import ReloadResponse
from serving.schemas import RetrieveRequest
from serving.schemas import RetrieveResponse
from serving.service import QueryError
from serving.service import RetrievalService

# Handlers return the JSON they built: FastAPI would otherwise validate the
# response model a second time. `response_model` still documents it.
JSON = "application/json"

router = APIRouter()
admin = APIRouter(prefix="/admin", dependencies=[Depends(require_token)])


def _check_limits(query, settings):
    if query.k > settings.max_k:
        raise HTTPException(
            422,
            detail=f"`k` must be at most {settings.max_k} "
            f"(RECSYS_MAX_K). Received: k={query.k}",
        )
    if len(query.exclude) > settings.max_exclude:
        raise HTTPException(
            422,
            detail=f"`exclude` holds {len(query.exclude)} ids; at most "
            f"{settings.max_exclude} (RECSYS_MAX_EXCLUDE) are allowed.",
        )


def _answer(query, service):
    """The `RetrieveResponse` of one query, as a JSON-able dict."""
    try:
        ids, scores, fallback = service.retrieve(
            user_id=query.user_id,
            features=query.features,
            k=query.k,
            exclude=query.exclude,
            exclude_seen=query.exclude_seen,
        )
    except QueryError as error:
        raise HTTPException(422, detail=str(error)) from None
    return {
        "items": [
            {"id": str(i), "score": s}
            for i, s in zip(ids.tolist(), scores.tolist(), strict=True)
        ],
        "bundle": service.version,
        "fallback": fallback,
    }


def _json(body):
    # orjson writes this body in 2.6 us against 12.4 us for `json`: 5% of
    # a request served from the top-items table (benchmarks/RESULTS.md).
    return Response(orjson.dumps(body), media_type=JSON)


@router.post("/v1/retrieve", response_model=RetrieveResponse)
async def retrieve(query: RetrieveRequest, request: Request):
    """Top-k items for one user (or one set of query features), best first.

    Unknown users without features get the most popular items
    (`"fallback": "popular"`). Items the user saw in training are excluded
    unless `exclude_seen` is false; ids in `exclude` never come back.
    """
    # The hottest route reads the app state itself: resolving two FastAPI
    # dependencies held it at 0.70 of the framework floor against 0.77-0.79
    # without (serve_load.py, 200k items, two runs each).
    service = current_service(request)
    _check_limits(query, request.app.state.settings)
    return _json(_answer(query, service))


@router.post("/v1/retrieve/batch", response_model=BatchResponse)
async def retrieve_batch(
    batch: BatchRequest, service: ServiceDep, settings: SettingsDep
):
    """Several retrieval queries in one call, answered by one bundle."""
    if len(batch.queries) > settings.max_batch:
        raise HTTPException(
            422,
            detail=f"A batch holds at most {settings.max_batch} queries "
            f"(RECSYS_MAX_BATCH). Received: {len(batch.queries)}",
        )
    for query in batch.queries:
        _check_limits(query, settings)
    results = [_answer(query, service) for query in batch.queries]
    return _json({"results": results, "bundle": service.version})


@router.get("/v1/items/{item_id}/similar", response_model=RetrieveResponse)
async def similar_items(
    item_id: str,
    service: ServiceDep,
    settings: SettingsDep,
    k: int = Query(10, ge=1),
):
    """The `k` items nearest to `item_id` in the candidate embedding space."""
    if k > settings.max_k:
        raise HTTPException(
            422, detail=f"`k` must be at most {settings.max_k}. Received: k={k}"
        )
    try:
        ids, scores = service.similar(item_id, k)
    except KeyError:
        raise HTTPException(
            404, detail=f"Unknown item id {item_id!r}."
        ) from None
    items = [
        Item(id=str(i), score=float(s))
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True)
    ]
    return RetrieveResponse(items=items, bundle=service.version)


@router.get("/healthz")
async def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    """Readiness: a bundle is loaded and can answer."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, detail="No bundle is loaded yet.")
    return {"status": "ready", "bundle": service.version}


@router.get("/metrics")
async def metrics(request: Request):
    """Prometheus metrics: requests by status, latency, bundle version."""
    return Response(
        request.app.state.metrics.render(),
        media_type="text/plain; version=0.0.4",
    )


@admin.post("/reload", response_model=ReloadResponse)
async def reload(request: Request, body: ReloadRequest | None = None):
    """Loads a bundle beside the current one and swaps it in atomically.

    A bundle that fails to load is refused with 422 and the current bundle
    keeps serving. Requests in flight finish on the bundle they started with.
    """
    path = (body.path if body else None) or request.app.state.bundle_path
    return await swap_bundle(request.app, path)


def freeze_heap():
    """Moves the objects loaded so far out of the garbage collector's scans.

    A bundle holds large lookup tables of Python objects (the user id map);
    collecting over them paused requests for up to 250 ms at p99.
    """
    gc.collect()
    gc.freeze()


async def swap_bundle(app, path):
    """Loads `path` off the event loop, then replaces the served bundle."""
    async with app.state.reload_lock:
        try:
            service = await asyncio.to_thread(
                functools.partial(
                    RetrievalService.load,
                    path,
                    **app.state.settings.service_options(),
                )
            )
        except (BundleError, OSError, ValueError, KeyError) as error:
            message = error.args[0] if error.args else str(error)
            raise HTTPException(
                422,
                detail=f"Bundle {path!r} refused, still serving "
                f"{app.state.service.version}: {message}",
            ) from None
        previous = app.state.service.version
        app.state.service = service
        freeze_heap()
        app.state.bundle_path = path
        app.state.metrics.set_bundle(service.version)
    return ReloadResponse(bundle=service.version, previous=previous, path=path)
