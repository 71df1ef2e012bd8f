"""A JWK Set URL that answers with a gzip bomb, or a body that never ends, gives no keys and
costs neither memory nor more than the fetch's timeout."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cds.errors import Unauthorized
from cds.trust.key_sets import JwksCache
from tests.hardening.fhir_faults import gzip_bomb

MB = 1024 * 1024


@pytest.fixture
def hostile_jwks() -> Iterator[str]:
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if self.path == "/bomb":
                    body = gzip_bomb(100)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Content-Length", str(10**9))  # /endless
                self.end_headers()
                self.wfile.write(b'{"keys": [')
                while not stop.wait(0.05):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    server.shutdown()
    server.server_close()


def _fetch(url: str) -> str:
    async def run() -> str:
        async with httpx.AsyncClient() as http:
            cache = JwksCache(http, min_refresh_seconds=0, max_age_seconds=60, fetch_seconds=1.0)
            try:
                await cache.key(url, "any")
            except Unauthorized as exc:
                return exc.reason
        return "accepted"

    return asyncio.run(run())


def test_a_gzip_bomb_gives_no_keys_and_stays_small(hostile_jwks: str) -> None:
    tracemalloc.start()
    try:
        reason = _fetch(f"{hostile_jwks}/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason == "jwks_unavailable"
    assert peak < 16 * MB  # 256 KB allowed; the bomb is 100 MB


def test_a_body_that_never_ends_gives_no_keys(hostile_jwks: str) -> None:
    assert _fetch(f"{hostile_jwks}/endless") == "jwks_unavailable"
