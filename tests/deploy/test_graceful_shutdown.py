"""SIGTERM during load: the server stops accepting, finishes what it accepted, and exits.

Every call waits on a slow loopback FHIR server, so when SIGTERM arrives the first call of
every client is certainly in the middle of being handled. Those must all complete with 200;
calls started after the signal are refused (never half-answered).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from tests.processes import free_port, start_cds, stop

pytestmark = pytest.mark.e2e

FHIR_DELAY_SECONDS = 2.0
CLIENTS = 6


@pytest.fixture
def slow_fhir_server() -> Iterator[str]:
    """Answers every read or search after FHIR_DELAY_SECONDS."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(FHIR_DELAY_SECONDS)
            if self.path.startswith("/fhir/Patient/"):
                body: dict[str, object] = {
                    "resourceType": "Patient",
                    "id": "p1",
                    "gender": "female",
                }
            else:
                body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            data = orjson.dumps(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # every prefetch query of every client connects at once

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    server.shutdown()
    server.server_close()


def test_sigterm_under_load_loses_no_accepted_request(
    tmp_path: Path, slow_fhir_server: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"CDS_DATA_DIR": str(tmp_path), "CDS_FHIR_TIMEOUT_SECONDS": "10"}
    process = start_cds(port, env, graceful_seconds=20)
    request = {
        "hook": "patient-view",
        "hookInstance": "graceful-shutdown",
        "fhirServer": slow_fhir_server,
        "context": {"userId": "Practitioner/x", "patientId": "p1"},
    }
    calls: list[tuple[float, str]] = []  # (started, outcome)
    lock = threading.Lock()
    stopped = threading.Event()

    def client() -> None:
        for _ in range(20):
            if stopped.is_set():
                return
            started = time.monotonic()
            try:
                with httpx.Client(timeout=30) as http:
                    response = http.post(
                        f"{base}/cds-services/breast-cancer-followup-patient-view", json=request
                    )
                outcome = "ok" if response.status_code == 200 else f"status-{response.status_code}"
            except httpx.ConnectError:
                outcome = "refused"
            except httpx.HTTPError as exc:
                outcome = f"failed-{type(exc).__name__}"
            with lock:
                calls.append((started, outcome))
            if outcome == "refused":
                return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        # Signal while the first calls wait on the FHIR server.
        time.sleep(FHIR_DELAY_SECONDS / 2)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        # uvicorn finishes in-flight work; `cds serve` then exits 0 (not 143).
        assert process.wait(timeout=60) == 0
        stopped.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        stopped.set()
        stop(process)
    # Calls started well before the signal were accepted and being handled when it arrived.
    in_flight = [
        outcome for started, outcome in calls if started < signalled - FHIR_DELAY_SECONDS / 2
    ]
    later = [outcome for started, outcome in calls if started >= signalled - FHIR_DELAY_SECONDS / 4]
    assert len(in_flight) == CLIENTS
    assert all(outcome == "ok" for outcome in in_flight), in_flight
    assert all(outcome in ("ok", "refused") for outcome in later), later
