"""The benchmark's loopback FHIR server searches as offline requests are built."""

from __future__ import annotations

from typing import Any

import orjson

from bench.fhir_server import FhirServer

CALCIUM = {"system": "http://loinc.org", "code": "2000-8"}  # LOINC table, loinc.org/2000-8
HEART_RATE = {"system": "http://loinc.org", "code": "8867-4"}  # LOINC table, loinc.org/8867-4


def _entries(server: FhirServer, path: str, query: bytes) -> list[tuple[str, str]]:
    status, body = server.answer(path, query)
    assert status == 200
    entries: list[dict[str, Any]] = orjson.loads(body)["entry"]
    return [(e["resource"]["id"], e["search"]["mode"]) for e in entries]


def test_searches_filter_by_code_and_include_referenced_medications() -> None:
    server = FhirServer(
        [
            {"resourceType": "Observation", "id": "ca", "code": {"coding": [CALCIUM]}},
            {"resourceType": "Observation", "id": "hr", "code": {"coding": [HEART_RATE]}},
            {
                "resourceType": "MedicationRequest",
                "id": "r1",
                "medicationReference": {"reference": "Medication/m1"},
            },
            {"resourceType": "Medication", "id": "m1"},
        ],
        delay_seconds=0,
    )
    query = b"patient=p1&code=http%3A%2F%2Floinc.org%7C2000-8"
    assert _entries(server, "/Observation", query) == [("ca", "match")]
    query = b"patient=p1&_include=MedicationRequest:medication"
    assert _entries(server, "/MedicationRequest", query) == [("r1", "match"), ("m1", "include")]
    assert server.answer("/Medication/m1", b"")[0] == 200
