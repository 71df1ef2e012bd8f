"""Secrets and privacy: recognisable patient names, MRNs, ids and tokens sent through every route
of a real ``cds serve`` (answers, 400, 401, 404, 412, 413, 415, failing FHIR servers) appear in
none of its log lines, error bodies or metrics.

The logs are the process's own output (JSON lines, at DEBUG), read whole after every request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.fhir_faults import FaultyFhir, conditions, faulty_fhir_server
from tests.processes import free_port, start_cds, stop
from tests.trust.conftest import ISS, KeyPair, claims, new_ec_key, sign, write_clients

pytestmark = pytest.mark.e2e

SERVICE = "breast-cancer-followup-patient-view"
FAMILY, GIVEN = "Quillfeather", "Zenobia"
MRN = "MRN-86753-QX"
PATIENT_ID = "pt-Quillfeather-5521"
FHIR_TOKEN = "fhirtok-S3CR3T-9d8c7b6a5f4e"
USER = "Practitioner/dr-Hollowmere"
COMMENT = "Zenobia said she saw Dr Hollowmere"
HANG_GUARD = 60.0
MAX_BODY = 64 * 1024

SECRETS = [FAMILY, GIVEN, MRN, PATIENT_ID, FHIR_TOKEN, "Hollowmere"]


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "gender": "female",
        "birthDate": "1961-04-12",
        "name": [{"family": FAMILY, "given": [GIVEN], "text": f"{GIVEN} {FAMILY}"}],
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": MRN}],
    }


def with_subject(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "subject": {"reference": f"Patient/{PATIENT_ID}", "display": FAMILY}}


@dataclass
class Service:
    base: str
    log_path: Path
    key: KeyPair
    answers: list[tuple[str, httpx.Response]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def token(self, path: str) -> str:
        """A valid client JWT for ``path``; remembered, so the checks look for it too."""
        minted = sign(self.key, claims(f"{self.base}{path}", sub=USER))
        self.tokens.append(minted)
        return minted

    def send(self, label: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{self.base}{path}", timeout=HANG_GUARD, **kwargs)
        self.answers.append((label, response))
        return response


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultyFhir]:
    with faulty_fhir_server() as server:
        server.patient = patient()
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("privacy")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = new_ec_key()
    clients = write_clients(
        folder / "clients.yaml", [{"iss": ISS, "jwks": {"keys": [key.public_jwk]}}]
    )
    log_path = folder / "cds.log"
    process = start_cds(
        port,
        {
            "CDS_DATA_DIR": str(folder / "var"),
            "CDS_TRUSTED_CLIENTS_FILE": str(clients),
            "CDS_PUBLIC_BASE_URL": base,
            "CDS_FHIR_TIMEOUT_SECONDS": "3",
            "CDS_MAX_BODY_BYTES": str(MAX_BODY),
            "CDS_LOG_LEVEL": "DEBUG",
        },
        log_path=log_path,
    )
    try:
        yield Service(base, log_path, key)
    finally:
        stop(process)


def hook_call(fhir: FaultyFhir | None = None, *, prefetched: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": USER, "patientId": PATIENT_ID, "note": f"{GIVEN} {FAMILY} {MRN}"},
    }
    if prefetched:
        body["prefetch"] = {
            "patient": patient(),
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": with_subject(c)} for c in conditions()],
            },
        }
    if fhir is not None:
        body["fhirServer"] = fhir.base
        body["fhirAuthorization"] = {
            "access_token": FHIR_TOKEN,
            "token_type": "Bearer",
            "scope": "patient/*.read",
            "subject": USER,
            "patient": PATIENT_ID,
        }
    return body


JSON = {"content-type": "application/json"}
HOOK = f"/cds-services/{SERVICE}"
FEEDBACK = f"{HOOK}/feedback"


def feedback_body() -> dict[str, Any]:
    return {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "urn:test", "code": "other", "display": FAMILY},
                    "userComment": COMMENT,
                },
                "outcomeTimestamp": "2026-03-01T10:00:00Z",
            }
        ]
    }


Step = Callable[[Service, FaultyFhir], int]


def answered_with_cards(s: Service, fhir: FaultyFhir) -> int:
    headers = {"Authorization": f"Bearer {s.token(HOOK)}"}
    response = s.send("200", "POST", HOOK, json=hook_call(fhir), headers=headers)
    assert response.json()["cards"]
    return response.status_code


def discovery_with_a_token(s: Service, _: FaultyFhir) -> int:
    headers = {"Authorization": f"Bearer {s.token('/cds-services')}"}
    return s.send("discovery", "GET", "/cds-services", headers=headers).status_code


def fetched_from_the_fhir_server(s: Service, fhir: FaultyFhir) -> int:
    return s.send("fetched", "POST", HOOK, json=hook_call(fhir, prefetched=False)).status_code


def malformed_json(s: Service, _: FaultyFhir) -> int:
    raw = json.dumps(hook_call()).encode()[:-20]  # cut off: names and the MRN stay inside
    return s.send("400 json", "POST", HOOK, content=raw, headers=JSON).status_code


def wrong_shape(s: Service, fhir: FaultyFhir) -> int:
    body = hook_call(fhir)
    body["hookInstance"] = {"name": f"{GIVEN} {FAMILY}", "mrn": MRN}
    body["fhirAuthorization"]["expires_in"] = f"{FHIR_TOKEN} {MRN}"
    return s.send("400 shape", "POST", HOOK, json=body).status_code


def unknown_service(s: Service, fhir: FaultyFhir) -> int:
    return s.send("404", "POST", "/cds-services/nope", json=hook_call(fhir)).status_code


def nothing_to_go_on(s: Service, _: FaultyFhir) -> int:
    return s.send("412", "POST", HOOK, json=hook_call(prefetched=False)).status_code


def too_large(s: Service, fhir: FaultyFhir) -> int:
    body = hook_call(fhir)
    body["context"]["padding"] = f"{GIVEN} {FAMILY} {MRN} " * (MAX_BODY // 20)
    return s.send("413", "POST", HOOK, json=body).status_code


def not_json(s: Service, fhir: FaultyFhir) -> int:
    raw = json.dumps(hook_call(fhir)).encode()
    text = {"content-type": "text/plain"}
    return s.send("415", "POST", HOOK, content=raw, headers=text).status_code


def forged_token(s: Service, fhir: FaultyFhir) -> int:
    token = s.token(HOOK)
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    s.tokens.append(forged)
    headers = {"Authorization": f"Bearer {forged}"}
    return s.send("401", "POST", HOOK, json=hook_call(fhir), headers=headers).status_code


def replayed_token(s: Service, fhir: FaultyFhir) -> int:
    headers = {"Authorization": f"Bearer {s.token(HOOK)}"}
    s.send("first use", "POST", HOOK, json=hook_call(fhir), headers=headers)
    return s.send("401 replay", "POST", HOOK, json=hook_call(fhir), headers=headers).status_code


def failing_fhir_server(fault: str) -> Step:
    def step(s: Service, fhir: FaultyFhir) -> int:
        fhir.faults["*"] = fault
        try:
            body = hook_call(fhir, prefetched=False)
            return s.send(f"412 {fault}", "POST", HOOK, json=body).status_code
        finally:
            fhir.faults.clear()

    step.__name__ = f"fhir_{fault}"
    return step


def feedback_stored(s: Service, _: FaultyFhir) -> int:
    headers = {"Authorization": f"Bearer {s.token(FEEDBACK)}"}
    return s.send("feedback", "POST", FEEDBACK, json=feedback_body(), headers=headers).status_code


def feedback_malformed(s: Service, _: FaultyFhir) -> int:
    body = feedback_body()
    body["feedback"][0]["outcomeTimestamp"] = f"{GIVEN} {FAMILY}"
    body["feedback"][0]["acceptedSuggestions"] = [{"id": MRN}]
    return s.send("400 feedback", "POST", FEEDBACK, json=body).status_code


def analytics_with_a_bad_window(s: Service, _: FaultyFhir) -> int:
    params = {"since": MRN, "until": FAMILY}
    return s.send("400 analytics", "GET", "/analytics/feedback", params=params).status_code


def preview_upload(s: Service, _: FaultyFhir) -> int:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient"}}],
    }
    bundle["entry"][0]["resource"] = patient()
    bad = json.dumps(bundle).encode()[:-3]
    files = {"upload": ("patient.json", bad, "application/json")}
    return s.send("400 preview", "POST", "/preview", files=files).status_code


STEPS: list[tuple[Step, int]] = [
    (answered_with_cards, 200),
    (discovery_with_a_token, 200),
    (fetched_from_the_fhir_server, 200),
    (malformed_json, 400),
    (wrong_shape, 400),
    (unknown_service, 404),
    (nothing_to_go_on, 412),
    (too_large, 413),
    (not_json, 415),
    (forged_token, 401),
    (replayed_token, 401),
    (failing_fhir_server("http-500"), 412),
    (failing_fhir_server("http-401"), 412),
    (failing_fhir_server("invalid-json"), 412),
    (failing_fhir_server("drop"), 412),
    (feedback_stored, 200),
    (feedback_malformed, 400),
    (analytics_with_a_bad_window, 400),
    (preview_upload, 400),
]


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


def test_no_secret_in_logs_error_bodies_or_metrics(service: Service, fhir: FaultyFhir) -> None:
    for step, status in STEPS:
        assert step(service, fhir) == status, step.__name__
    assert fhir.seen, "the FHIR server was called"
    assert {s.authorization for s in fhir.seen} == {f"Bearer {FHIR_TOKEN}"}  # it went there
    secrets = SECRETS + service.tokens + [t.rsplit(".", 1)[1] for t in service.tokens]

    log = service.log_path.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert sum(1 for r in records if r.get("event") == "call") >= 10  # the calls were logged
    assert leaks(log, secrets) == []

    for label, response in service.answers:
        if response.status_code >= 400:
            assert leaks(response.text, secrets) == [], label
            assert leaks(json.dumps(dict(response.headers)), secrets) == [], label

    metrics = httpx.get(f"{service.base}/metrics", timeout=HANG_GUARD).text
    assert "cds_requests_total" in metrics
    assert leaks(metrics, secrets) == []
