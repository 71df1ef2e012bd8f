"""The FHIR client's aiohttp transport, against raw HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from cds.fhir.transport import AiohttpTransport

Answer = Callable[[bytes], Awaitable[bytes | None]]


async def _serve(answer: Answer) -> tuple[asyncio.Server, str, list[bytes]]:
    """A loopback server that reads each request head and writes what ``answer`` gives."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                reply = await answer(head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", heads


def _response(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _client(timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=10), timeout=httpx.Timeout(timeout)
    )


def test_answers_come_back_whole_with_headers_and_encoding_undone() -> None:
    body = b'{"resourceType":"Bundle","entry":[]}'

    async def answer(head: bytes) -> bytes:
        if b"/gz" in head.split(b"\r\n")[0]:
            zipped = gzip.compress(body)
            return _response("200 OK", zipped, "Content-Encoding: gzip", "X-Seen: 1")
        return _response("200 OK", body, "Content-Type: application/fhir+json")

    async def run() -> tuple[httpx.Response, httpx.Response, list[bytes]]:
        server, base, heads = await _serve(answer)
        async with server, _client() as client:
            plain = await client.get(f"{base}/Condition?patient=1", headers={"Authorization": "x"})
            zipped = await client.get(f"{base}/gz")
            return plain, zipped, heads

    plain, zipped, heads = asyncio.run(run())
    assert plain.status_code == 200
    assert plain.content == body
    assert plain.headers["content-type"] == "application/fhir+json"
    assert zipped.content == body
    assert zipped.headers["x-seen"] == "1"
    assert b"GET /Condition?patient=1 HTTP/1.1" in heads[0]
    assert b"authorization: x" in heads[0].lower()


def test_redirects_are_returned_not_followed() -> None:
    async def answer(head: bytes) -> bytes:
        return _response("302 Found", b"", "Location: http://elsewhere.example/x")

    async def run() -> tuple[httpx.Response, int]:
        server, base, heads = await _serve(answer)
        async with server, _client() as client:
            response = await client.get(f"{base}/Patient/1")
            return response, len(heads)

    response, requests = asyncio.run(run())
    assert response.status_code == 302
    assert requests == 1


def test_a_silent_server_is_a_read_timeout() -> None:
    async def answer(head: bytes) -> bytes:
        await asyncio.sleep(5)
        return _response("200 OK", b"{}")

    async def run() -> None:
        server, base, _ = await _serve(answer)
        async with server, _client(timeout=0.2) as client:
            await client.get(f"{base}/Patient/1")

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(run())


def test_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def run() -> None:
        async with _client() as client:
            await client.get(f"http://127.0.0.1:{port}/Patient/1")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(run())


def test_a_dropped_connection_is_a_read_error() -> None:
    async def answer(head: bytes) -> None:
        return None  # close without answering

    async def run() -> None:
        server, base, _ = await _serve(answer)
        async with server, _client() as client:
            await client.get(f"{base}/Patient/1")

    with pytest.raises(httpx.ReadError):
        asyncio.run(run())


def test_closing_an_unused_transport_is_fine() -> None:
    asyncio.run(AiohttpTransport(max_connections=1).aclose())
