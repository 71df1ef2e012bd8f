"""The served process: what `cds serve` (and a uvicorn factory) runs besides the app.

- :func:`served_app`: the app of a worker, built from the environment, with the long-lived heap
  frozen and the GC's youngest generation enlarged (:func:`freeze_long_lived_objects`);
  ``uvicorn --factory cds.server:served_app`` gets the same. `cds serve` also passes the
  header guard below as uvicorn's ``http`` protocol, which a factory cannot set.
- :class:`GuardedHttpToolsProtocol`: limits on the request head that uvicorn's httptools
  protocol does not set.

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
import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "HEAD_TIMEOUT_SECONDS",
    "MAX_HEAD_BYTES",
    "SERVE_GC_THRESHOLD",
    "GuardedHttpToolsProtocol",
    "freeze_long_lived_objects",
    "served_app",
]

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


SERVE_GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation


def freeze_long_lived_objects() -> None:
    """Keep what lives as long as the process (knowledge, app, modules) out of the cyclic GC,
    and let the youngest generation grow to 10,000 objects before it is collected.

    A large request allocates hundreds of thousands of objects, and every full collection it
    triggers would otherwise walk the whole knowledge base as well: without the freeze,
    collection took about as long as the rest of a large call. Parsed request bodies are
    acyclic and freed by reference counting, so collecting every 700 allocations (the default)
    only re-walks a body still being built: with 10,000, a 2.4 MB call took about 13 % less
    (median of four alternating runs; small calls unchanged).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(SERVE_GC_THRESHOLD, 10, 10)


def served_app() -> Any:
    """The app of one of several `cds serve` workers (a uvicorn factory)."""
    from cds.app import create_app
    from cds.settings import load_settings

    settings = load_settings()
    settings.refuse_unsafe_defaults()
    app = create_app(settings)
    freeze_long_lived_objects()
    return app
