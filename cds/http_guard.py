"""Limits on the request head that uvicorn's httptools protocol does not set.

uvicorn reads request lines and headers of any size, for as long as the client takes: one
connection can make it hold megabytes of header (memory), and a client that sends its head a
byte at a time keeps its connection forever (a slow-drip, "slowloris" client). This protocol is
uvicorn's own, plus two limits per request head:

- more than :data:`MAX_HEAD_BYTES` received and the headers not ended: answered 400 and
  closed (checked as each chunk arrives, before it is parsed, so a chunk that ends the head
  and starts the body is never counted against it);
- the head not complete :data:`HEAD_TIMEOUT_SECONDS` after the connection opened (or after the
  previous answer on a kept-alive connection): closed without an answer.

Bodies are not limited here: the routes cap them (``CDS_MAX_BODY_BYTES``), and a slow body
holds one waiting task, not a thread. A reverse proxy in front may set tighter limits.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEAD_TIMEOUT_SECONDS", "MAX_HEAD_BYTES", "GuardedHttpToolsProtocol"]

MAX_HEAD_BYTES = 64 * 1024  # a CDS Hooks client's JWT is about 1 KiB
HEAD_TIMEOUT_SECONDS = 20.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _in_head = True  # reading a request line and headers (or waiting for them)
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._head_bytes > MAX_HEAD_BYTES:  # earlier chunks, all of them head
                self._stop_head_timer()
                self.send_400_response("Request head too large.")
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its head was read already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()  # the next request on this connection

    def _await_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()
