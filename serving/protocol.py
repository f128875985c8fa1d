"""`bounded_protocol`: uvicorn's httptools protocol with a bounded head.

uvicorn's httptools protocol (the fast one) takes request heads of any size
and waits forever for a head or body that never completes: one client
streaming a header line for minutes held a worker at 94% CPU, and a
request whose body never came held its connection for good. This subclass
adds, per connection:

- a cap on the request line plus headers (`RECSYS_MAX_HEADER_BYTES`): past
  it the client gets 431 and the connection is closed;
- a deadline for the head (`RECSYS_HEADER_TIMEOUT`, from the connection or
  the request's first byte) and for the body once the head is in
  (`RECSYS_BODY_TIMEOUT`): past it, 408 and close;
- on a worker that a reload retires (`server_state.draining`), a
  `Connection: close` answer to each request, so that its client moves to
  a new worker between requests.

A request whose bytes all arrive in one read (the common case) arms no
timer and costs a few attribute reads and writes, and a sum over its
parsed headers: the hot path keeps httptools' speed (h11 would bound the
head by itself, but parses in Python).
"""

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD, _BODY = "head", "body"


def _response(status, reason, message):
    body = (
        b'{"detail":[{"loc":[],"msg":"'
        + message
        + b'","type":"'
        + reason.lower().replace(b" ", b"_")
        + b'"}]}'
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 16 << 10
    header_timeout = 10.0
    body_timeout = 10.0

    def connection_made(self, transport):
        super().connection_made(transport)
        self._reading = _HEAD  # a new connection owes a request head
        self._refused = False
        self._head_bytes = 0
        self._restarted = False
        self._phase_started = self.loop.time()
        self._deadline = None
        self._arm()

    def connection_lost(self, exc):
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data):
        self._restarted = False
        super().data_received(data)
        if self._reading is None or self.transport.is_closing():
            return
        if self._reading is _HEAD:
            # A chunk that also ended the previous request is not counted
            # (the head is measured once complete, in on_headers_complete).
            if not self._restarted:
                self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()
                return
        if self._deadline is None:
            self._arm()

    def on_message_begin(self):
        super().on_message_begin()
        if self._reading is None:  # not the connection's first request
            self._reading = _HEAD
            self._phase_started = self.loop.time()

    def on_headers_complete(self):
        # A head that arrives in one read with the rest of its request is
        # handed to the app within that read, before `data_received`
        # counts it: so the parsed head is measured here too.
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_header_bytes:
            self._refuse_head()
        if self._refused:
            return  # the connection is closing: no app call
        super().on_headers_complete()
        self._reading = _BODY
        self._phase_started = self.loop.time()
        # A worker retired by a reload (`recsys.serving.server`): the
        # client reconnects after this answer, to a new worker.
        draining = getattr(self.server_state, "draining", False)
        if draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_body(self, body):
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self):
        if self._refused:
            return
        super().on_message_complete()
        self._reading = None
        self._head_bytes = 0
        self._restarted = True

    def on_response_complete(self):
        super().on_response_complete()
        # Between requests the keep-alive timeout (not ours) applies.
        if self._reading is None:
            self._disarm()

    # -- deadlines ---------------------------------------------------------

    def _arm(self):
        timeout = (
            self.header_timeout if self._reading is _HEAD else self.body_timeout
        )
        delay = max(0.0, self._phase_started + timeout - self.loop.time())
        self._deadline = self.loop.call_later(delay, self._check_deadline)

    def _disarm(self):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _check_deadline(self):
        self._deadline = None
        if self._reading is None or self.transport.is_closing():
            return
        timeout = (
            self.header_timeout if self._reading is _HEAD else self.body_timeout
        )
        if self.loop.time() < self._phase_started + timeout:
            self._arm()  # the request moved on to its next phase
            return
        self._refuse(
            408,
            b"Request Timeout",
            b"Request %s not received within %g s (RECSYS_%s_TIMEOUT)."
            % (
                b"head" if self._reading is _HEAD else b"body",
                timeout,
                b"HEADER" if self._reading is _HEAD else b"BODY",
            ),
        )

    def _refuse_head(self):
        self._refuse(
            431,
            b"Request Header Fields Too Large",
            b"Request line and headers over %d bytes "
            b"(RECSYS_MAX_HEADER_BYTES)." % self.max_header_bytes,
        )

    def _refuse(self, status, reason, message):
        self._disarm()
        self._refused = True
        head = self._reading is _HEAD
        self._reading = None
        cycle = self.cycle
        # A refused head's `cycle` is the connection's previous request's
        # (or None): answered in full, the refusal may follow it (a kept-
        # alive connection's second request was closed without a word).
        # A refused body's is its own: unanswered, the refusal answers it.
        if cycle is None or (
            cycle.response_complete if head else not cycle.response_started
        ):
            self.transport.write(_response(status, reason, message))
        if cycle is not None and not cycle.response_complete:
            # The app waiting on the body reads `http.disconnect`, and
            # whatever it sends later is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def bounded_protocol(max_header_bytes, header_timeout, body_timeout):
    """An httptools protocol class for `uvicorn.run(http=...)`.

    Args:
        max_header_bytes: int. Most bytes of a request line plus headers.
        header_timeout: float. Seconds to receive a request head.
        body_timeout: float. Seconds to receive a body once its head is in.

    Returns:
        A subclass of uvicorn's `HttpToolsProtocol`.

    Example:

    ```python
    protocol = bounded_protocol(16384, header_timeout=10, body_timeout=10)
    uvicorn.run(app, http=protocol)
    ```
    """
    return type(
        "BoundedHttpToolsProtocol",
        (_BoundedHttpToolsProtocol,),
        {
            "max_header_bytes": int(max_header_bytes),
            "header_timeout": float(header_timeout),
            "body_timeout": float(body_timeout),
        },
    )
