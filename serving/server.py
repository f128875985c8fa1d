"""`serve`: this process becomes the retrieval server (`recsys serve`).

The one place that owns the process: it loads the bundle before binding
the port, starts answering as soon as the index is ready (the query tower,
and Keras with it, load in the background), moves what each load
allocated out of the garbage collector's scans (`gc.freeze`), and runs
uvicorn. The app factory (`recsys.serving.app.create_app`) and the service
change no global state, so tests and embedding applications can use them
freely.
"""

import gc
import os

from recsys.serving.app import create_app
from recsys.serving.bundle_paths import resolve_bundle_path
from recsys.serving.protocol import bounded_protocol
from recsys.serving.reranker import Reranker
from recsys.serving.service import RetrievalService
from recsys.serving.settings import load_settings


def freeze_heap() -> None:
    """Moves the objects loaded so far out of the garbage collector's scans.

    A bundle holds large lookup tables of Python objects (the user id map);
    collecting over them paused requests for up to 250 ms at p99. Frozen
    objects are still freed by reference counting when a reload drops them.
    """
    gc.collect()
    gc.freeze()


def serve(
    bundle: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    ranker: str | None = None,
    watch: bool = False,
    log_level: str = "info",
) -> int:
    """Serves the bundle at `bundle` over HTTP until the process stops.

    Settings come from the `RECSYS_*` environment (`Settings`). Settings,
    the bundle and the ranker are loaded and checked before the port is
    bound, so a bad value or a broken bundle fails here.

    Args:
        bundle: str. A bundle directory, or a pointer file naming one.
        host: str. Interface to bind. Defaults to `"127.0.0.1"`.
        port: int. Port, 1-65535. Defaults to `8000`.
        ranker: str or None. A tabular bundle that reranks `"rerank": true`
            requests. Defaults to `None`.
        watch: bool. Reload when the bundle (or pointer) changes.
        log_level: str. uvicorn's log level. Defaults to `"info"`.

    Returns:
        int. The exit status, 0.

    Raises:
        ValueError: a bad port, setting, bundle (`BundleError`) or ranker.

    Example:

    ```python
    serve("artifacts/demo", port=8000)
    ```
    """
    import uvicorn

    if not 0 < port < 65536:
        raise ValueError(f"--port must be in 1..65535. Received: {port}")
    settings = load_settings()
    reranker = None
    if ranker:
        try:
            reranker = Reranker.load(ranker)
        except ValueError as error:  # BundleError is one
            raise ValueError(f"--ranker: {error.args[0]}") from None
    service = RetrievalService.load(
        resolve_bundle_path(bundle),
        load_tower=False,
        # Known users' top items are searched while the server answers
        # (through the index meanwhile): start-up in seconds on a big
        # bundle.
        precompute_in_background=True,
        **settings.service_options(),
    )
    app = create_app(
        bundle,
        settings=settings,
        service=service,
        watch=watch,
        ranker=reranker,
        after_load=freeze_heap,
    )
    reranking = f", reranked by {reranker.version}" if reranker else ""
    print(
        f"serving bundle {service.version}{reranking} on "
        f"http://{host}:{port} (API docs at /docs)"
    )
    if settings.api_token:
        print(f"/admin/* needs the token; reload root: {app.state.bundle_root}")
    else:
        print("/admin/* is off (403): set RECSYS_API_TOKEN to enable it")
    # httptools with a bounded head and read deadlines (serving/protocol.py).
    protocol = bounded_protocol(
        settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol)
    return 0
