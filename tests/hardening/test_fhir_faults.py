"""Fault injection: a real ``cds serve`` fetching from a loopback FHIR server that misbehaves.

The patient (breast cancer, back pain today) gets two cards when everything works: bone pain
(needs conditions) and overdue mammogram (also needs observations, procedures, orders). When
only the observations fail, the service degrades to what it knows: the bone-pain card, and no
mammogram card (its data could not be had, which is not the same as its absence). When every
query fails, the required Patient is missing: 412. Every call returns (the client timeout is a
hang guard far above the service's own budget); nothing here measures speed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.fhir_faults import FaultyFhir, faulty_fhir_server
from tests.processes import free_port, start_cds, stop

pytestmark = pytest.mark.e2e

SERVICE = "breast-cancer-followup-patient-view"
BONE_PAIN = "bone-pain-after-breast-cancer"
MAMMOGRAM = "mammogram-overdue-after-breast-cancer"
TOKEN = "fhir-token-fault-injection-0123456789"
BUDGET_SECONDS = 5.0  # CDS_FHIR_TIMEOUT_SECONDS of the service under test
MAX_PAGES = 10
HANG_GUARD_SECONDS = 60.0


@dataclass
class Service:
    base: str
    log_path: Path


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultyFhir]:
    with faulty_fhir_server() as server:
        yield server


@pytest.fixture
def faulty(fhir: FaultyFhir) -> FaultyFhir:
    fhir.reset()
    return fhir


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("faults")
    port = free_port()
    log_path = folder / "cds.log"
    process = start_cds(
        port,
        {
            "CDS_DATA_DIR": str(folder / "var"),
            "CDS_FHIR_TIMEOUT_SECONDS": str(BUDGET_SECONDS),
            "CDS_FHIR_MAX_PAGES": str(MAX_PAGES),
            "CDS_LOG_LEVEL": "INFO",
            "CDS_REPEAT_LIMITS": "false",  # the same chart is opened by every test
        },
        log_path=log_path,
    )
    try:
        yield Service(f"http://127.0.0.1:{port}", log_path)
    finally:
        stop(process)


def call(service: Service, fhir: FaultyFhir) -> tuple[httpx.Response, dict[str, Any]]:
    """One patient-view call without prefetch (everything is fetched); the answer and its log."""
    hook_instance = str(uuid.uuid4())
    body = {
        "hook": "patient-view",
        "hookInstance": hook_instance,
        "fhirServer": fhir.base,
        "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "subject": "cds"},
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
    }
    response = httpx.post(
        f"{service.base}/cds-services/{SERVICE}", json=body, timeout=HANG_GUARD_SECONDS
    )
    text = service.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    (logged,) = [line for line in lines if line.get("hookInstance") == hook_instance]
    return response, logged


def test_a_well_behaved_server_gives_both_cards(service: Service, faulty: FaultyFhir) -> None:
    response, logged = call(service, faulty)
    assert response.status_code == 200, response.text
    assert {BONE_PAIN, MAMMOGRAM} <= set(logged["rules"])
    assert "fetchErrors" not in logged or logged["fetchErrors"] == []
    assert {s.authorization for s in faulty.seen} == {f"Bearer {TOKEN}"}


FAILURE_KINDS = {
    "slow": "timeout",
    "http-500": "http-5xx",
    "invalid-json": "invalid-json",
    "drop": "connect",
    "http-401": "unauthorized",
    "next-chain": "page-cap",
    "gzip-bomb": "too-large",  # stopped at 64 MB decompressed, while decompressing
    "trickle": "timeout",  # a body that never ends is ended by the call's FHIR budget
}


@pytest.mark.parametrize(("fault", "kind"), FAILURE_KINDS.items())
def test_failing_observations_degrade_to_what_is_known(
    service: Service, faulty: FaultyFhir, fault: str, kind: str
) -> None:
    faulty.faults["Observation"] = fault
    response, logged = call(service, faulty)
    assert response.status_code == 200, response.text
    assert BONE_PAIN in logged["rules"]
    # The mammogram rule needs observations: unknown is not absent, so it does not run.
    assert MAMMOGRAM not in logged["rules"], json.dumps(logged)
    assert kind in logged["fetchErrors"]
    assert "observations" not in logged["fetched"]
    assert "conditions" in logged["fetched"]
    assert len(faulty.requests_for("Observation")) <= MAX_PAGES


@pytest.mark.parametrize("fault", FAILURE_KINDS)
def test_a_server_failing_every_query_is_412(
    service: Service, faulty: FaultyFhir, fault: str
) -> None:
    faulty.faults["*"] = fault
    response, logged = call(service, faulty)
    assert response.status_code == 412, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "incomplete"
    assert "unavailable" in outcome["issue"][0]["diagnostics"]
    assert TOKEN not in response.text
    assert logged["status"] == 412


def test_a_next_link_loop_ends_once_every_page_was_read(
    service: Service, faulty: FaultyFhir
) -> None:
    faulty.faults["Condition"] = "next-loop"  # the cancer on page 1, the pain on page 2
    response, logged = call(service, faulty)
    assert response.status_code == 200, response.text
    assert BONE_PAIN in logged["rules"]  # needs both pages
    assert "conditions" in logged["fetched"]
    assert len(faulty.requests_for("Condition")) == 3  # search, page 2, page 1: then it stops


def test_ten_thousand_entries_are_read(service: Service, faulty: FaultyFhir) -> None:
    faulty.faults["Observation"] = "many"
    response, logged = call(service, faulty)
    assert response.status_code == 200, response.text
    assert "observations" in logged["fetched"]
    assert BONE_PAIN in logged["rules"]


def test_the_service_is_well_after_the_faults(service: Service, faulty: FaultyFhir) -> None:
    assert httpx.get(f"{service.base}/healthz", timeout=HANG_GUARD_SECONDS).status_code == 200
    response, logged = call(service, faulty)
    assert response.status_code == 200
    assert {BONE_PAIN, MAMMOGRAM} <= set(logged["rules"])
