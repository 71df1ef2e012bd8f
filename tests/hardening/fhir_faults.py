"""A loopback FHIR server that can be told to misbehave, per resource type.

It serves one patient (p1): a Patient, two Conditions (breast cancer in 2020, back pain today)
and empty searches for everything else. A fault set for a resource type (or ``*`` for all)
changes how that type's requests are answered:

``slow``         answers only after ``slow_seconds`` (or when the server stops)
``http-500``     HTTP 500 with an OperationOutcome
``invalid-json`` HTTP 200 whose body is not JSON
``drop``         closes the connection without answering
``http-401``     HTTP 401 (the access token is refused)
``next-loop``    a search in two pages whose second ``next`` link leads back to the first
``next-chain``   a search whose pages never end (page n links to page n + 1)
``many``         a search of 10,000 entries
``gzip-bomb``    HTTP 200, gzip: about 100 KB that decompress to 100 MB of spaces
``trickle``      HTTP 200 whose body never ends: a byte every 50 ms

Every request is recorded (path, resource type, Authorization header) for the tests to check.
"""

from __future__ import annotations

import json
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests import fhir_resources
from tests.fhir_resources import coding, observation, quantity, searchset

PATIENT_ID = "p1"
MANY = 10_000
FAULTS = (
    "slow",
    "http-500",
    "invalid-json",
    "drop",
    "http-401",
    "next-loop",
    "next-chain",
    "many",
    "gzip-bomb",
    "trickle",
)


@dataclass(frozen=True)
class Seen:
    path: str
    resource_type: str
    authorization: str | None


@dataclass
class FaultyFhir:
    """The server's state: its base URL, the faults in force and every request seen."""

    base: str = ""
    faults: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 30.0
    seen: list[Seen] = field(default_factory=list)
    # An adult woman: the mammogram card needs a known age (18 to 79).
    patient: dict[str, Any] = field(
        default_factory=lambda: {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "gender": "female",
            "birthDate": "1961-04-02",
        }
    )
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def fault_for(self, resource_type: str) -> str | None:
        return self.faults.get(resource_type) or self.faults.get("*")

    def requests_for(self, resource_type: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.resource_type == resource_type]


def condition(resource_id: str, system: str, code: str, onset: str) -> dict[str, Any]:
    return fhir_resources.condition(
        resource_id, coding(system, code), patient=PATIENT_ID, onset=onset, active=True
    )


def conditions() -> list[dict[str, Any]]:
    today = datetime.now(UTC).date().isoformat()
    return [
        condition("bc", "http://hl7.org/fhir/sid/icd-10-cm", "C50.911", "2020-01-01"),
        condition("pain", "http://snomed.info/sct", "161891005", today),
    ]


def weight(index: int) -> dict[str, Any]:
    kilograms = quantity(60 + index % 10, "kg", ucum=False)
    when = "2024-01-01"
    return observation(f"w{index}", "29463-7", patient=PATIENT_ID, date=when, value=kilograms)


@cache
def gzip_bomb(megabytes: int = 100) -> bytes:
    """``megabytes`` MB of spaces, gzipped (about a thousandth of the size), made in 1 MB steps."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


def _handler(state: FaultyFhir) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            resource_type = parts.path.removeprefix("/fhir/").split("/")[0]
            with state.lock:
                state.seen.append(Seen(self.path, resource_type, self.headers.get("Authorization")))
            fault = state.fault_for(resource_type)
            if fault == "slow":
                state.released.wait(state.slow_seconds)
            elif fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # no status line, nothing
                return
            elif fault == "http-500":
                self._send(500, {"resourceType": "OperationOutcome", "issue": []})
                return
            elif fault == "http-401":
                self._send(401, {"resourceType": "OperationOutcome", "issue": []})
                return
            elif fault == "invalid-json":
                self._send_bytes(200, b'{"resourceType": "Bundle", "entry": [')
                return
            elif fault == "gzip-bomb":
                self._send_bytes(200, gzip_bomb(), "Content-Encoding: gzip")
                return
            elif fault == "trickle":
                self._trickle()
                return
            self._send(200, self._answer(resource_type, parts.path, fault, parts.query))

        def _answer(self, resource_type: str, path: str, fault: str | None, query: str) -> Any:
            if resource_type == "Patient":
                return state.patient
            page = int(parse_qs(query).get("page", ["1"])[0])
            here = state.base.removesuffix("/fhir") + path
            if fault == "next-loop":  # page 2 links back to page 1: every page was read
                found = conditions() if resource_type == "Condition" else []
                if page == 1:
                    return searchset(*found[:1], next_url=f"{here}?page=2", match=True)
                return searchset(*found[1:], next_url=f"{here}?page=1", match=True)
            if fault == "next-chain":
                return searchset(next_url=f"{here}?page={page + 1}", match=True)
            if fault == "many":
                return searchset(*(weight(i) for i in range(MANY)), match=True)
            if resource_type == "Condition":  # about the patient the server serves
                subject = {"reference": f"Patient/{state.patient['id']}"}
                return searchset(*({**c, "subject": subject} for c in conditions()), match=True)
            return searchset(match=True)

        def _send(self, status: int, document: Any) -> None:
            self._send_bytes(status, json.dumps(document).encode())

        def _trickle(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b'{"resourceType": "Bundle", "entry": [')
                while not state.released.wait(0.05):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the service gave up (its time budget): the way it should end
            self.close_connection = True

        def _send_bytes(self, status: int, body: bytes, *headers: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                for header in headers:
                    name, _, value = header.partition(": ")
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the service gave up waiting (its time budget); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def faulty_fhir_server() -> Iterator[FaultyFhir]:
    """A running server on a free loopback port; stopped (slow answers released) on exit."""
    state = FaultyFhir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
