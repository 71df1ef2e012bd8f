"""The FHIR client's HTTP transport: httpx requests sent over aiohttp's connection pool.

A call without prefetch sends about ten FHIR queries at once. httpcore's connection pool (the
one under ``httpx.AsyncHTTPTransport``) re-examines every pooled connection, probing each idle
socket, whenever a request is queued or finished, so its CPU cost per query grows with the
number of queries in flight: measured on loopback, ten parallel queries cost the service about
2.5 ms of CPU each with httpcore and about 0.7 ms with aiohttp. The FHIR client still builds
httpx requests and reads httpx responses (tests hand them to ``httpx.MockTransport``
instead); only the bytes go through aiohttp.

The transport is deliberately narrow, because the FHIR client is its only user: it reads each
answer whole (FHIR JSON), never follows redirects, and turns aiohttp's failures into the httpx
exceptions the client already tells apart (a timeout, or a failure to connect or read).

It reads the body as it arrives and undoes a gzip or deflate Content-Encoding itself, counting
both the bytes received and the bytes they decompress to: an answer past ``max_body_bytes``
either way ends at that point with :class:`~cds.errors.FhirServerError` (``too-large``), so a
small gzip bomb cannot grow into gigabytes in memory (1 MB of zeros gzips to about 1 KB). A
body that trickles in forever is ended by the call's FHIR time budget (the caller's timeout).

aiohttp is imported in a background thread when the transport is made (at start-up), not
before: it is a tenth of a second of start-up that only calls without prefetch need. A call
that needs it sooner waits on the import lock until the import is done.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import TYPE_CHECKING

import httpx

from cds.body_limit import BodyLimit, BodyTooLarge, BodyUndecodable
from cds.errors import FhirServerError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["MAX_BODY_BYTES", "AiohttpTransport"]

MAX_BODY_BYTES = 64 * 1024 * 1024  # the largest FHIR answer read, sent or decompressed
_CHUNK = 64 * 1024


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one :class:`aiohttp.ClientSession`, opened on first use."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_seconds: float = 15.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._max_body_bytes = max_body_bytes
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        threading.Thread(target=importlib.import_module, args=("aiohttp",), daemon=True).start()

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        # Opened inside the running loop (aiohttp binds a session to its loop); certificates
        # are checked against the same bundle httpx would use.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_seconds,
            ssl=httpx.create_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, trust_env=False
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        session = self._session or self._open()
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
            connect=limits.get("pool"),
        )
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                status = answer.status
                content = await self._read(answer)
                # The body is decoded here: httpx must not decode it again.
                headers = [
                    (name, value)
                    for name, value in answer.raw_headers
                    if name.lower() not in (b"content-encoding", b"content-length")
                ]
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _read(self, answer: aiohttp.ClientResponse) -> bytes:
        try:
            limit = BodyLimit(answer.headers.get("Content-Encoding"), self._max_body_bytes)
            async for chunk in answer.content.iter_chunked(_CHUNK):
                limit.feed(chunk)
            return limit.body()
        except BodyTooLarge:
            raise FhirServerError(
                "the FHIR server's answer is too large", kind="too-large"
            ) from None
        except BodyUndecodable as exc:
            raise FhirServerError(f"the FHIR server's answer {exc}", kind="invalid-json") from None

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)  # lets aiohttp's transports finish closing
