"""`bounded_protocol`, fed bytes as the event loop hands them over."""

import asyncio

import uvicorn
from uvicorn.server import ServerState

from recsys.serving.protocol import bounded_protocol


class _Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self):
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name, default=None):
        addresses = {"sockname": ("127.0.0.1", 8000), "peername": ("::1", 1)}
        return addresses.get(name, default)

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def _serve_one_read(data, max_header_bytes=16384):
    """What a connection answers to `data` arriving in one read, and the
    paths the app was called for."""
    called = []

    async def app(scope, receive, send):
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        protocol_class = bounded_protocol(max_header_bytes, 10, 10)
        config = uvicorn.Config(app, http=protocol_class, lifespan="off")
        protocol = protocol_class(
            config=config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(data)
        await asyncio.sleep(0.05)  # the app's task, if one started
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    return transport.written, transport.closed, called


def test_a_head_over_the_cap_is_refused_when_it_comes_in_one_read():
    # The whole request in one read was parsed and handed to the app
    # before the head was counted: 200 for a 60,000-byte header.
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n\r\n"
    written, closed, called = _serve_one_read(head % (b"a" * 60_000))
    assert written.startswith(b"HTTP/1.1 431 ")
    assert b"RECSYS_MAX_HEADER_BYTES" in written
    assert closed and called == []
    # A pipelined request behind it is not answered either.
    written, closed, called = _serve_one_read(
        head % (b"a" * 20_000) + head % b"short"
    )
    assert written.startswith(b"HTTP/1.1 431 ") and called == []
    written, closed, called = _serve_one_read(head % (b"a" * 10_000))
    assert written.startswith(b"HTTP/1.1 200 ") and called == ["/healthz"]
