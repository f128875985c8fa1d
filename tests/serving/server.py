"""HTTP test helpers: `running_server` (and `server_process`), a real
`recsys serve` process, and `post_concurrently`, requests sent at once to
an app in this process."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time

import httpx


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(*args, **kwargs):
    """`recsys serve *args` on a free loopback port, until the block ends.

    Yields the server's base URL once `/readyz` answers 200
    (`server_process` takes the same arguments).
    """
    with server_process(*args, **kwargs) as (_, url):
        yield url


@contextlib.contextmanager
def server_process(*args, log_path, env=None, code=None):
    """`running_server` that yields `(process, url)`: a test may stop it.

    A server that exits before `/readyz` answers 200 fails the test with
    its log; one still running when the block ends gets SIGTERM. `code`:
    Python run instead of `-m recsys.cli` (it patches the server, then
    calls `recsys.cli.main(sys.argv[1:])`). Its stdout is dropped: the
    banner and the log go to `log_path`.
    """
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            *(["-c", code] if code else ["-m", "recsys.cli"]),
            "serve",
            *args,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if process.poll() is not None:
                log.close()
                raise AssertionError(log_path.read_text())
        else:
            raise AssertionError("the server did not become ready")
        try:
            yield process, url
        except BaseException:
            # Shown with the failure: whether the server still runs, and
            # what it logged.
            log.flush()
            sys.stderr.write(
                f"server exit code: {process.poll()}\n{log_path.read_text()}"
            )
            raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def post_concurrently(app, queries):
    """The responses of `POST /v1/retrieve` for each query, sent at once."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            return await asyncio.gather(
                *(client.post("/v1/retrieve", json=q) for q in queries)
            )

    return asyncio.run(main())
