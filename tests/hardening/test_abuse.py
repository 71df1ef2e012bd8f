"""Abuse of a real ``cds serve`` on loopback: bodies at and over the cap, deep nesting, huge and
slow request heads, slow bodies and many connections. The service answers every request with a
correct status and keeps answering ``/healthz`` for everyone else.

Every loop is bounded in count and time; the client timeouts are hang guards, not speed checks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.server import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from tests.processes import free_port, start_cds, stop

pytestmark = pytest.mark.e2e

SERVICE = "breast-cancer-followup-patient-view"
MAX_BODY = 1024 * 1024  # CDS_MAX_BODY_BYTES of the service under test
HANG_GUARD = 60.0


@dataclass
class Server:
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("abuse")
    port = free_port()
    log_path = folder / "cds.log"
    process = start_cds(
        port,
        {
            "CDS_DATA_DIR": str(folder / "var"),
            "CDS_MAX_BODY_BYTES": str(MAX_BODY),
        },
        log_path=log_path,
    )
    try:
        yield Server(port, log_path)
        assert process.poll() is None, "the server died"
        assert "Traceback" not in log_path.read_text()
    finally:
        stop(process)


def healthy(server: Server) -> bool:
    return httpx.get(f"{server.base}/healthz", timeout=HANG_GUARD).status_code == 200


def request_of_size(size: int) -> bytes:
    """A hook call without prefetch (a 412 once parsed), padded to exactly ``size`` bytes."""
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "abuse",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "extension": {"padding": ""},
    }
    bare = len(json.dumps(body).encode())
    body["extension"]["padding"] = "x" * (size - bare)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def post(server: Server, content: Any, path: str = f"/cds-services/{SERVICE}") -> httpx.Response:
    return httpx.post(
        f"{server.base}{path}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=HANG_GUARD,
    )


def outcome_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    code: str = outcome["issue"][0]["code"]
    return code


# --- bodies at and over the cap -------------------------------------------------------------


def test_a_declared_body_at_the_cap_is_read_and_one_byte_more_is_413(server: Server) -> None:
    at_cap = post(server, request_of_size(MAX_BODY))
    assert at_cap.status_code == 412, at_cap.text  # read and parsed: only the data is missing
    over = post(server, request_of_size(MAX_BODY + 1))
    assert over.status_code == 413
    assert outcome_code(over) == "too-long"


def chunks_of(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_at_the_cap_is_read_and_one_byte_more_is_413(server: Server) -> None:
    at_cap = post(server, chunks_of(request_of_size(MAX_BODY)))
    assert at_cap.request.headers["transfer-encoding"] == "chunked"
    assert at_cap.status_code == 412, at_cap.text
    over = post(server, chunks_of(request_of_size(MAX_BODY + 1)))
    assert over.status_code == 413
    assert outcome_code(over) == "too-long"


def test_a_huge_declared_length_is_413_without_waiting_for_the_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD) as sock:
        sock.sendall(
            f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_feedback_over_the_cap_is_413(server: Server) -> None:
    padding = "x" * MAX_BODY
    body = json.dumps({"feedback": [], "extension": {"padding": padding}}).encode()
    response = post(server, body, path=f"/cds-services/{SERVICE}/feedback")
    assert response.status_code == 413


# --- deep nesting ---------------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize(
    "document",
    [b"[" * DEPTH + b"]" * DEPTH, b'{"a":' * DEPTH + b"1" + b"}" * DEPTH],
    ids=["arrays", "objects"],
)
@pytest.mark.parametrize("path", [f"/cds-services/{SERVICE}", f"/cds-services/{SERVICE}/feedback"])
def test_json_nested_100k_levels_deep_is_400(server: Server, document: bytes, path: str) -> None:
    assert len(document) < MAX_BODY
    response = post(server, document, path=path)
    assert response.status_code == 400
    assert outcome_code(response) == "invalid"
    assert "not valid JSON" in response.json()["issue"][0]["diagnostics"]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@pytest.mark.parametrize("where", ["context", "prefetch", "feedback"])
def test_deep_nesting_the_parser_accepts_is_answered_without_an_error(
    server: Server, where: str
) -> None:
    deep = nested(250)  # 500 levels: below the JSON parser's limit, so it reaches the code
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "deep",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
    }
    path = f"/cds-services/{SERVICE}"
    expected = {412}
    if where == "context":
        body["context"]["deep"] = deep
    elif where == "prefetch":
        body["prefetch"] = {
            "patient": {"resourceType": "Patient", "id": "p1", "extension": [deep]},
            "conditions": {"resourceType": "Bundle", "entry": [{"resource": deep}]},
        }
        expected = {200}
    else:
        path += "/feedback"
        body = {
            "feedback": [
                {
                    "card": "deep",
                    "outcome": "accepted",
                    "outcomeTimestamp": "2026-01-01T00:00:00Z",
                    "extension": deep,
                }
            ]
        }
        expected = {200}
    response = post(server, json.dumps(body).encode(), path=path)
    assert response.status_code in expected, response.text[:300]


# --- request heads ----------------------------------------------------------------------------


def test_an_oversized_request_head_is_refused_and_the_connection_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        header = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        try:
            for _ in range(4 * MAX_HEAD_BYTES // len(header)):  # bounded: 4 times the cap
                sock.sendall(header)
            sock.sendall(b"\r\n")  # the end of the head
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection while we were still sending
        answer = b""
        try:
            while chunk := sock.recv(4096):  # until the server closes (a timeout fails)
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert healthy(server)


def test_a_large_but_allowed_head_is_served(server: Server) -> None:
    headers = {f"x-filler-{n}": "b" * 1000 for n in range(MAX_HEAD_BYTES // 2000)}
    response = httpx.get(f"{server.base}/healthz", headers=headers, timeout=HANG_GUARD)
    assert response.status_code == 200


def test_a_kept_alive_connection_serves_request_after_request(server: Server) -> None:
    """The head limits start again for every request; a body arriving with its head is not
    counted as head."""
    with httpx.Client(base_url=server.base, timeout=HANG_GUARD) as client:
        for n in range(30):
            if n % 10 == 0:
                response = client.post(
                    f"/cds-services/{SERVICE}",
                    content=request_of_size(MAX_BODY - 1000),
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 412
            else:
                assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").headers.get("connection") != "close"


class Dripper:
    """A client that sends its request a byte at a time (a slowloris) until stopped or closed."""

    def __init__(self, port: int, request: bytes, interval: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        self.request = request
        self.interval = interval
        self.sent = 0
        self.closed_by_server = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        for byte in self.request:
            if self.stop.wait(self.interval):
                return
            try:
                self.sock.sendall(bytes([byte]))
                self.sent += 1
            except OSError:
                self.closed_by_server.set()
                return
        self.closed_by_server.wait()  # the whole request went out (not expected here)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=HANG_GUARD)
        self.sock.close()


def slow_head() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 10_000 + b"\r\n\r\n"


def slow_body() -> bytes:
    body = request_of_size(2000)
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def test_slow_drip_clients_do_not_block_others_and_slow_heads_are_cut_off(
    server: Server,
) -> None:
    with ExitStack() as stack:
        heads = [Dripper(server.port, slow_head(), 0.5) for _ in range(30)]
        bodies = [Dripper(server.port, slow_body(), 0.5) for _ in range(10)]
        for dripper in heads + bodies:
            stack.callback(dripper.close)
        time.sleep(1.0)  # they are all connected and dripping
        for _ in range(20):  # everyone else is served meanwhile
            assert healthy(server)
        call = post(server, request_of_size(5000))
        assert call.status_code == 412  # a real call, parsed and answered
        deadline = time.monotonic() + HEAD_TIMEOUT_SECONDS + 30
        for dripper in heads:  # a head not sent in time: the server hangs up
            dripper.closed_by_server.wait(max(0.0, deadline - time.monotonic()))
        assert all(d.closed_by_server.is_set() for d in heads)
        assert max(d.sent for d in heads) < len(slow_head())
        assert healthy(server)
    assert healthy(server)


def test_many_concurrent_connections_and_healthz_keeps_answering(server: Server) -> None:
    idle: list[socket.socket] = []
    try:
        for _ in range(200):  # open, and say nothing
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD))

        def probe(_: int) -> int:
            return httpx.get(f"{server.base}/healthz", timeout=HANG_GUARD).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(probe, range(200)))
        assert statuses == [200] * 200
    finally:
        for sock in idle:
            sock.close()
    assert healthy(server)
