"""`serve`: this process becomes the retrieval server (`recsys serve`).

The one place that owns the process: it loads the bundle before binding
the port and its query tower before answering (a bundle whose tower does
not load is refused, not served with 503s; the top-items table is built
in the background), moves what each load allocated out of the garbage
collector's scans (`gc.freeze`), and runs uvicorn: in this process, or
with `workers > 1` in that many forked processes sharing the loaded
bundle (`recsys.serving.workers`), whose query tower a helper process
loads and converts before they fork (a tower that fails there, or a
helper that dies, refuses the bundle: at a reload the old workers serve
on). The app
factory (`recsys.serving.app.create_app`) and the service change no global
state, so tests and embedding applications can use them freely.
"""

import asyncio
import errno
import functools
import gc
import logging
import os
import signal
import socket
import sys

from fastapi import HTTPException
from threadpoolctl import threadpool_limits

from recsys.index import ScannIndex
from recsys.serving.app import create_app
from recsys.serving.bundle_paths import bundle_fingerprint
from recsys.serving.bundle_paths import recover_watched_bundle
from recsys.serving.bundle_paths import resolve_bundle_path
from recsys.serving.metrics import shared_by_workers
from recsys.serving.protocol import bounded_protocol
from recsys.serving.reranker import Reranker
from recsys.serving.routes import swap_bundle
from recsys.serving.service import RetrievalService
from recsys.serving.settings import load_settings
from recsys.serving.shared_model import describe_error
from recsys.serving.shared_ranker import SharedRanker
from recsys.serving.shared_tower import SharedTower
from recsys.serving.workers import RETIRE_SIGNAL
from recsys.serving.workers import STARTUP_FAILURE
from recsys.serving.workers import block_worker_signals
from recsys.serving.workers import notify_ready
from recsys.serving.workers import run_workers
from recsys.serving.workers import stop_requested
from recsys.storage.files import BundleError

logger = logging.getLogger(__name__)

# What `/admin/reload` answers (409) when several workers serve: each is
# its own process, and no swap reaches them all at once.
RELOAD_REFUSED = (
    "/admin/reload takes no `path` with --workers {workers}: every worker "
    "reloads the bundle or pointer file the server started with. Fix: "
    "point that pointer file at the new bundle, then POST /admin/reload "
    "without a path (or `kill -HUP {pid}`)."
)


def freeze_heap() -> None:
    """Moves the objects loaded so far out of the garbage collector's scans.

    A bundle holds large lookup tables of Python objects (the user id map);
    collecting over them paused requests for up to 250 ms at p99. Frozen
    objects are still freed by reference counting when a reload drops them,
    but not those in reference cycles (Keras layers): each reload kept
    ~12 MB of the bundle before it. So the heap is thawed and collected
    whole before it is frozen again (one longer collection a reload).
    """
    gc.unfreeze()
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
    workers: int = 1,
) -> int:
    """Serves the bundle at `bundle` over HTTP until the process stops.

    Settings come from the `RECSYS_*` environment (`Settings`). Settings,
    the bundle and the ranker are loaded and checked before the port is
    bound, and the query tower before the server answers, so a bad value
    or a broken bundle fails here.

    Args:
        bundle: str. A bundle directory, or a pointer file naming one.
        host: str. Interface to bind. Defaults to `"127.0.0.1"`.
        port: int. Port, 1-65535, or 0 for a free one (the banner names
            it). Defaults to `8000`.
        ranker: str or None. A tabular bundle that reranks `"rerank": true`
            requests. Defaults to `None`.
        watch: bool. Reload when the bundle (or pointer) changes.
        log_level: str or int. uvicorn's log level (`"critical"`,
            `"error"`, `"warning"`, `"info"`, `"debug"` or `"trace"`, or a
            `logging` level). Defaults to `"info"`.
        workers: int. Processes answering on the port, sharing the
            loaded bundle (forked from this one, which then supervises
            them). With more than one, `/admin/reload` without a path,
            SIGHUP or (with `watch`) a new bundle reloads every worker;
            with one, SIGHUP reloads as `/admin/reload` without a path
            does. Defaults to `1`.

    Returns:
        int. The exit status: 0 once stopped by a signal, 1 when a worker
        could not start or workers kept dying, 3 when the server (one
        worker) could not start.

    Raises:
        ValueError: a bad port, worker count, setting, bundle
            (`BundleError`: a query tower that does not load too) or
            ranker, or an address it cannot listen on.

    Example:

    ```python
    serve("artifacts/demo", port=8000)
    ```
    """
    from uvicorn.config import LOG_LEVELS

    if not 0 <= port < 65536:
        raise ValueError(
            f"--port must be in 0..65535 (0: a free one). Received: {port}"
        )
    if not host:
        # bind(("", port)) listens on every interface: an unset variable in
        # `--host "$HOST"` exposed the service.
        raise ValueError(
            "--host is empty. Fix: pass 127.0.0.1 (this machine only, the "
            "default) or 0.0.0.0 (every interface)."
        )
    if not isinstance(log_level, int) and log_level not in LOG_LEVELS:
        raise ValueError(
            f"--log-level must be one of {', '.join(LOG_LEVELS)}. "
            f"Received: {log_level!r}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"--workers must be a positive integer. Received: {workers!r}"
        )
    settings = load_settings()
    if workers > 1:
        return _serve_workers(
            bundle, host, port, ranker, log_level, workers, settings, watch
        )
    # A stop while the bundle and its query tower load (seconds) ends the
    # loading: a KeyboardInterrupt traceback from deep in Keras was what
    # Ctrl-C gave. Status 0, as a stop once the server answers (with
    # --workers, a stop then waits for the load, and exits 0).
    stops = {
        sig: signal.signal(sig, _stop_loading)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return _serve_one(
            bundle, host, port, ranker, log_level, settings, watch
        )
    except _Stopped:
        return 0
    finally:
        for sig, handler in stops.items():
            signal.signal(sig, handler)


class _Stopped(BaseException):
    """SIGINT or SIGTERM while a one-worker server loads. Not an
    `Exception`: no `except Exception` on the way may take it."""


def _stop_loading(sig, frame):
    raise _Stopped


def _serve_one(bundle, host, port, ranker, log_level, settings, watch):
    """`serve` in this process (one worker); its exit status."""
    import uvicorn

    # Until the server answers, a SIGHUP (its default action: exit) is
    # kept for then: the bundle loading may be the one it replaces.
    hangups: list[int] = []
    signal.signal(signal.SIGHUP, lambda sig, frame: hangups.append(sig))
    reranker = _load_ranker(Reranker.load, ranker) if ranker else None
    service = RetrievalService.load(
        resolve_bundle_path(bundle),
        load_tower=False,
        # Known users' top items are searched while the server answers
        # (through the index meanwhile): start-up in seconds on a big
        # bundle.
        precompute_in_background=True,
        **settings.service_options(),
        # A ranker of another table's ids is refused before anything else.
        check=reranker.check_retriever if reranker else None,
    )
    # Bound before the query tower's seconds: a taken port or a bad host
    # fails in one line, at once.
    sock = _bind(host, port)
    port = sock.getsockname()[1]  # the one picked, for port 0
    try:
        # The query tower (and Keras) before the banner and the first
        # answer: one that does not load refuses the bundle (exit 1), as a
        # reload refuses it (422), where it answered every query with
        # `features` 503. Connections wait in the backlog meanwhile.
        _load_tower(service)
        app = create_app(
            bundle,
            settings=settings,
            service=service,
            watch=watch,
            ranker=reranker,
            after_load=freeze_heap,
        )
    except BaseException:
        sock.close()
        raise
    reranking = f", reranked by {reranker.version}" if reranker else ""
    print(
        f"serving bundle {service.version}{reranking} on "
        f"http://{host}:{port} (API docs at /docs); SIGHUP to pid "
        f"{os.getpid()} reloads",
        file=sys.stderr,
    )
    if settings.api_token:
        print(
            f"/admin/* needs the token; reload root: {app.state.bundle_root}",
            file=sys.stderr,
        )
    else:
        print(
            "/admin/* is off (403): set RECSYS_API_TOKEN to enable it",
            file=sys.stderr,
        )
    # httptools with a bounded head and read deadlines (serving/protocol.py).
    protocol = bounded_protocol(
        settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    server = _reloading_server(
        uvicorn.Config(app, log_level=log_level, http=protocol), hangups
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else STARTUP_FAILURE


def _reloading_server(config, hangups):
    """A uvicorn server of one process that reloads its bundle on SIGHUP.

    uvicorn handles SIGINT and SIGTERM only: SIGHUP, which `--workers`
    (and gunicorn, nginx) take as "reload", ended the process by its
    default action, requests in flight dropped and nothing logged. Here it
    reloads as `/admin/reload` without a path does (the bundle or pointer
    file given at start, read again; one refused is logged, and the old
    bundle serves on). `hangups`: the SIGHUPs received before the server
    answered; if any, it reloads once it does. SIGINT and SIGTERM stop it,
    and `run` then returns (uvicorn raised them again).
    """
    import uvicorn

    app = config.app
    reloads: set[asyncio.Task] = set()

    class ReloadingServer(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if not self.started:
                return
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            if hangups:  # one reload reads the newest bundle
                self.reload()

        def handle_exit(self, sig, frame):
            # uvicorn records the stop signal and raises it again once it
            # has shut down: Ctrl-C then ended in a KeyboardInterrupt
            # traceback, SIGTERM in status 143, where a stop is this
            # server's normal end (0, as with --workers). Not recorded.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting
            self.should_exit = True

        def reload(self):
            if self.should_exit:
                return  # stopping: the bundle no longer matters
            task = asyncio.get_running_loop().create_task(_reload(app))
            reloads.add(task)  # the loop holds tasks weakly
            task.add_done_callback(reloads.discard)

    return ReloadingServer(config)


async def _reload(app):
    """`/admin/reload` without a path, for SIGHUP: logged, never raised.
    With `--watch`, the watch does not load the same files again."""
    if hasattr(app.state, "watch_seen"):
        app.state.watch_seen = bundle_fingerprint(app.state.start_path)
    try:
        result = await swap_bundle(app, app.state.start_path)
    except HTTPException as error:  # swap_bundle's 422: the reason
        logger.warning("SIGHUP: %s", error.detail[0]["msg"])
    except Exception:
        logger.exception("SIGHUP: the reload failed")
    else:
        logger.info(
            "SIGHUP: reloaded bundle %s (was %s)",
            result.bundle,
            result.previous,
        )


def _serve_workers(
    bundle, host, port, ranker, log_level, workers, settings, watch=False
):
    """`serve` with `workers` forked processes (`recsys.serving.workers`).

    SIGHUP reloads every worker (a new generation, then the old one
    stopped); with `watch`, so does a change of the bundle or pointer file.

    This process loads what every worker shares (the bundle's arrays, ids
    and ScaNN searcher; the ranker's tables and pair encoder) and starts
    no thread; helper processes convert the query tower and the ranker
    into shared memory (`SharedTower`, `SharedRanker`), and each worker
    starts its own threads (the top-items precompute). Tables built in a
    worker are its own memory. The workers fork once the helpers are done:
    a model that does not load, or a helper that dies (a native abort
    while Keras builds a hostile tower), refuses the bundle (at a reload
    the old workers serve on), and no worker waits for its tower.
    """
    # Before anything loads: a thread a library starts meanwhile would take
    # the supervisor's signals, and end it (`block_worker_signals`).
    block_worker_signals()
    import uvicorn

    class WorkerServer(uvicorn.Server):
        draining = False  # retired by a reload: hands its clients over

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:  # listening: a reload may stop the old ones
                signal.signal(RETIRE_SIGNAL, self.retire)
                notify_ready()

        def retire(self, sig, frame):
            # `RETIRE_SIGNAL` (a reload): stop, through `drain`.
            self.draining = self.should_exit = True

        def handle_exit(self, sig, frame):
            self.draining = False  # SIGTERM, SIGINT: stop now
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None):
            if self.draining:
                await self.drain()
            await super().shutdown(sockets=sockets)

        async def drain(self):
            """Hands this worker's clients over to the new workers.

            uvicorn's shutdown closes idle keep-alive connections, and
            accepted ones whose request it has not read, at once: a client
            sending on one got EPIPE or a reset (and POSTs are not
            retried). So first: stop accepting (the new workers accept on
            the shared socket), answer each connection's next request with
            `Connection: close` (`bounded_protocol`), and leave idle ones
            to the keep-alive timeout, which closes them between requests
            as it always does. Returns once no connection is left, or
            after that timeout.
            """
            for server in self.servers:
                server.close()
            self.server_state.draining = True
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.timeout_keep_alive + 1.0
            while (
                self.draining
                and self.server_state.connections
                and loop.time() < deadline
            ):
                await asyncio.sleep(0.1)

    # The ranker's tables here, its numpy model from a helper: no worker
    # imports Keras for it (unless numpy cannot evaluate the model). A
    # reload keeps it, as /admin/reload does.
    shared_ranker = None
    if ranker:
        shared_ranker = _load_ranker(SharedRanker.load, ranker)
        shared_ranker.fill_in_child()
    sockets: list[socket.socket] = []  # bound once the bundle has loaded
    generations: list[str] = []
    seen: list = [None]  # the files of the last load (`load_generation`)

    def load_generation():
        """Loads the bundle (again) and returns what its workers run."""
        # What `changed` compares with: a SIGHUP's generation was loaded
        # again by the watch's next poll.
        seen[0] = bundle_fingerprint(bundle)
        service = RetrievalService.load(
            resolve_bundle_path(bundle),
            load_tower=False,
            # At start each worker builds the top-items table while it
            # answers (first answer in seconds); on a reload the old
            # workers answer meanwhile, so it is built here, once, and
            # the new workers share it (no per-worker build under load).
            precompute_in_background=not generations,
            defer_precompute=True,
            **settings.service_options(),
            # A ranker of another table's ids: refused before the port is
            # bound (at a reload, the old workers serve on).
            check=shared_ranker.check_retriever if shared_ranker else None,
        )
        # ScaNN's query pool threads stayed in this process: workers search
        # on their calling thread (each worker is one core's worth already).
        if isinstance(service.index, ScannIndex):
            service.index.parallel = False
        if not sockets:  # a bundle that fails to load binds nothing
            sockets.append(_bind(host, port))
        sock = sockets[0]
        if shared_ranker is not None and not generations:
            # Its helper, forked at start, converted the model meanwhile.
            try:
                shared_ranker.join(stop=stop_requested)
            except BundleError as error:
                raise BundleError(f"--ranker: {error}") from None
        # One helper process loads the query tower and converts it into
        # memory every worker maps: no worker imports Keras (300-400 MB
        # each) for it. Waited for here: a tower that does not load (or a
        # helper that dies loading it) refuses the bundle, and the new
        # workers answer `features` at once, where they waited seconds
        # for the helper (for ever when it died).
        shared = SharedTower.for_bundle(service.bundle)
        if shared is not None:
            shared.fill_in_child(
                service.convert_tower, f"query tower of {service.bundle.path}"
            )
            shared.join(stop=stop_requested)
            if settings.fast_tower:
                service.shared_tower = shared
        app = create_app(
            bundle,
            settings=settings,
            service=service,
            ranker=shared_ranker.reranker if shared_ranker else None,
            after_load=freeze_heap,
        )
        app.state.reload_refused = RELOAD_REFUSED.format(
            workers=workers, pid=os.getpid()
        )
        # /admin/reload in a worker: a SIGHUP to this process, which
        # reloads every worker.
        app.state.reload_all = functools.partial(
            os.kill, os.getpid(), signal.SIGHUP
        )
        config = uvicorn.Config(
            app,
            log_level=log_level,
            http=bounded_protocol(
                settings.max_header_bytes,
                header_timeout=settings.header_timeout,
                body_timeout=settings.body_timeout,
            ),
        )
        if generations:
            logger.info(
                "Reloaded: bundle %s (was %s)", service.version, generations[-1]
            )
        else:
            _print_started(
                service.version,
                shared_ranker.bundle.version if shared_ranker else None,
                host,
                sock.getsockname()[1],  # the one picked, for port 0
                workers,
                settings,
            )
        generations.append(service.version)

        def run_worker(number):
            # One core's worth of work per worker: BLAS pool threads
            # inherited through fork made a reranked query take 37 ms
            # instead of 4.3.
            threadpool_limits(limits=1, user_api="blas")
            service.start_precompute()
            server = WorkerServer(config)
            server.run(sockets=[sock])
            return 0 if server.started else STARTUP_FAILURE

        return run_worker  # `run_workers` freezes the heap, then forks

    def close_sockets():
        for sock in sockets:
            sock.close()

    def changed():
        current = bundle_fingerprint(bundle)
        if current is None and recover_watched_bundle(bundle):
            current = bundle_fingerprint(bundle)
        if current is None or current == seen[0]:
            return False
        # One that fails to load is tried again once its files change.
        seen[0] = current
        return True

    # /metrics counts every worker's requests (`shared_by_workers`).
    with shared_by_workers():
        try:
            # Only `run_workers` holds a generation: a reload frees the
            # old one.
            return run_workers(
                workers,
                load=load_generation,
                changed=changed if watch else None,
                interval=settings.watch_interval,
                # Stopping workers close their copies of the socket: with
                # this one closed too, a new connection is refused at once
                # (it was accepted, then reset when the last worker ended).
                before_stop=close_sockets,
            )
        finally:
            close_sockets()


def _print_started(version, ranker, host, port, workers, settings):
    reranking = f", reranked by {ranker}" if ranker else ""
    print(
        f"serving bundle {version}{reranking} on "
        f"http://{host}:{port} with {workers} workers (API docs at /docs); "
        f"SIGHUP to pid {os.getpid()} reloads",
        file=sys.stderr,
    )
    if settings.api_token:
        print(
            "/admin/* needs the token; /admin/reload (without a path) "
            "reloads every worker, as SIGHUP does",
            file=sys.stderr,
        )
    else:
        print(
            "/admin/* is off (403): set RECSYS_API_TOKEN to enable it",
            file=sys.stderr,
        )


def _load_tower(service):
    """Loads `service`'s query tower; what it raises refuses the bundle.

    Raises:
        BundleError: the tower does not load (Keras refuses it, its inputs
            are not the bundle's, or it fails on an empty query).
    """
    try:
        service.load_query_tower()
    except BundleError:
        raise
    except Exception as error:
        raise BundleError(
            f"The query tower of {service.bundle.path} does not load: "
            f"{describe_error(error)}. Fix: retrain the bundle."
        ) from None


def _load_ranker(load, path):
    """`load(path)`, a refusal (`BundleError` is one) named as --ranker's."""
    try:
        return load(path)
    except ValueError as error:
        raise ValueError(f"--ranker: {error.args[0]}") from None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`, shared by forked workers.

    Raises:
        ValueError: the address is taken, or not one of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            fix = "pass another --port, or stop the server using it"
        elif error.errno == errno.EACCES:
            fix = "pass a --port above 1023"
        else:  # an unknown name, or an address of another machine
            fix = (
                "pass an address of this machine as --host (0.0.0.0 for "
                "every interface)"
            )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = error.strerror or str(error)
        raise ValueError(
            f"cannot listen on {address}: {reason[:1].lower()}{reason[1:]}. "
            f"Fix: {fix}."
        ) from None
    sock.set_inheritable(True)
    return sock
