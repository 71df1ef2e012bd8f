"""End-to-end fixtures: a real FHIR server (Medplum, node) and the real service (uvicorn).

Both run as child processes on loopback ports for the whole session; each test starts from a
FHIR server in normal mode with an empty request log. Without node and npm the tests skip.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import medplum
from tests.processes import free_port, start_cds, stop

FHIR_TOKEN = "e2e-token-0123456789"
BUDGET_SECONDS = 1.5  # CDS_FHIR_TIMEOUT_SECONDS of the tight service (slow-server cases)
ROOMY_BUDGET_SECONDS = 20.0  # of the service whose fetched answers are compared


@pytest.fixture(scope="session")
def medplum_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[medplum.MedplumServer]:
    tools = medplum.node_tools()
    if tools is None:
        pytest.skip("node and npm are needed for the FHIR server of the end-to-end tests")
    node, npm = tools
    try:
        medplum.install(npm)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"npm ci in {medplum.SERVER_DIR} failed: {exc}")
    logs = tmp_path_factory.mktemp("fhir-server")
    server = medplum.start(node, FHIR_TOKEN, logs / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fhir(medplum_server: medplum.MedplumServer) -> medplum.MedplumServer:
    medplum_server.reset()
    return medplum_server


def _serve(
    folder: Path, budget_seconds: float, max_pages: int
) -> tuple[subprocess.Popen[bytes], str]:
    """``cds serve`` under uvicorn on a free loopback port, with its own SQLite."""
    port = free_port()
    process = start_cds(
        port,
        {
            "CDS_DATA_DIR": str(folder / "var"),
            "CDS_FHIR_TIMEOUT_SECONDS": str(budget_seconds),
            "CDS_FHIR_MAX_PAGES": str(max_pages),
            "CDS_ALLOW_HTTP_FHIR": "false",
            "CDS_LOG_LEVEL": "WARNING",
            # the tests compare calls on the same patients: no card may be held as a repeat
            "CDS_REPEAT_LIMITS": "false",
        },
        log_path=folder / "cds.log",
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service with a roomy budget: what it fetches is complete, so answers can be compared."""
    process, url = _serve(tmp_path_factory.mktemp("cds-e2e"), ROOMY_BUDGET_SECONDS, max_pages=50)
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="session")
def tight_service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service with a short budget and the default page cap, for the slow-server cases."""
    process, url = _serve(tmp_path_factory.mktemp("cds-e2e-tight"), BUDGET_SECONDS, max_pages=10)
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="session")
def capped_service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A roomy budget with the default page cap: a capped search fails on its pages, never on
    the clock (a loaded machine can take more than the tight budget for ten pages)."""
    process, url = _serve(
        tmp_path_factory.mktemp("cds-e2e-capped"), ROOMY_BUDGET_SECONDS, max_pages=10
    )
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture
def service(service_url: str) -> Iterator[httpx.Client]:
    # The timeout is a hang guard, far above the service's own budget; never a timing check.
    with httpx.Client(base_url=service_url, timeout=60) as client:
        yield client


@pytest.fixture
def tight_service(tight_service_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tight_service_url, timeout=30) as client:
        yield client


@pytest.fixture
def capped_service(capped_service_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=capped_service_url, timeout=60) as client:
        yield client
