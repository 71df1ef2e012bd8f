"""The request bodies the benchmark sends, built from our own templates and generators.

- small: a patient-view request of about 20 KB, prefetch split by our templates;
- large: the largest Synthea patient in ../shared (or a generated one of the same size);
- fallback: the small patient without prefetch, fetched from a loopback FHIR server;
- order-sign: the small patient plus a draft medication order.
"""

from __future__ import annotations

import bz2
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from cds.call.request_builder import bundle_resources, request_from_resources
from cds.fhir.scenarios import ONDANSETRON, large_patient
from cds.kb.loader import Knowledge, Service

__all__ = [
    "Workload",
    "build_workloads",
    "largest_synthea_patient",
    "prefetch_size",
    "sized_patient",
]

SMALL_BYTES = 20_000
LARGE_ENTRIES = 3419
SYNTHEA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "synthea"


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    service_id: str
    body: bytes
    ceiling: bool = True  # compared against the ceiling app (not for the fallback)
    fhir_resources: tuple[dict[str, Any], ...] = ()  # what the loopback FHIR server serves


def _service(knowledge: Knowledge, hook: str) -> Service | None:
    services = knowledge.services_for(hook)
    return services[0] if services else None


def _request(
    resources: list[dict[str, Any]], service: Service, hook: str, **extra: Any
) -> dict[str, Any]:
    return request_from_resources(
        resources, service.prefetch, hook=hook, hook_instance="bench-0001", **extra
    )


def sized_patient(
    service: Service, target_bytes: int, seed: int, now: date | None = None
) -> list[dict[str, Any]]:
    """A generated patient whose request under ``service``'s templates is about target size."""
    low, high = 8, 4000
    while low < high:
        middle = (low + high) // 2
        resources = bundle_resources(large_patient(middle, seed=seed, now=now))
        size = len(orjson.dumps(_request(resources, service, service.spec.hook)))
        if size < target_bytes:
            low = middle + 1
        else:
            high = middle
    return bundle_resources(large_patient(low, seed=seed, now=now))


def largest_synthea_patient(directory: Path = SYNTHEA) -> tuple[str, list[dict[str, Any]]] | None:
    """(file name, resources) of the Synthea patient with the most entries, or None."""
    if not directory.is_dir():
        return None
    candidates = sorted(directory.glob("*.json.bz2"), key=lambda p: p.stat().st_size)[-3:]
    best: tuple[str, list[dict[str, Any]]] | None = None
    for path in candidates:
        resources = bundle_resources(orjson.loads(bz2.decompress(path.read_bytes())))
        if best is None or len(resources) > len(best[1]):
            best = (path.name, resources)
    return best


def prefetch_size(body: bytes) -> int:
    """How many resources a request's prefetch carries."""
    prefetch = orjson.loads(body).get("prefetch") or {}
    return sum(
        len(value.get("entry") or ()) if value.get("resourceType") == "Bundle" else 1
        for value in prefetch.values()
        if isinstance(value, dict)
    )


def _draft_order(patient_id: str) -> dict[str, Any]:
    system, code, display = ONDANSETRON
    return {
        "resourceType": "MedicationRequest",
        "id": "bench-draft-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": system, "code": code, "display": display}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def build_workloads(
    knowledge: Knowledge,
    *,
    fhir_base_url: str,
    seed: int = 7,
    large_entries: int | None = None,
    use_shared: bool = True,
) -> tuple[list[Workload], list[str]]:
    """The workloads this knowledge supports, and notes on those skipped or substituted."""
    notes: list[str] = []
    workloads: list[Workload] = []
    service = _service(knowledge, "patient-view")
    if service is None:
        return [], ["no patient-view service in the knowledge: nothing to measure"]
    small = sized_patient(service, SMALL_BYTES, seed)
    small_body = orjson.dumps(_request(small, service, "patient-view"))
    workloads.append(
        Workload(
            "small",
            f"patient-view, generated patient, {prefetch_size(small_body)} resources in prefetch",
            service.spec.id,
            small_body,
        )
    )
    synthea = largest_synthea_patient() if use_shared and large_entries is None else None
    if synthea is not None:
        name, resources = synthea
        what = f"largest Synthea patient ({name[:8]}…, {len(resources)} entries)"
    else:
        count = large_entries or LARGE_ENTRIES
        resources = bundle_resources(large_patient(count, seed=seed))
        what = f"generated patient ({count} entries)"
        if large_entries is None:
            notes.append("../shared is absent: the large workload uses a generated patient")
    large_body = orjson.dumps(_request(resources, service, "patient-view"))
    workloads.append(
        Workload(
            "large",
            f"patient-view, {what}, {prefetch_size(large_body)} resources in prefetch",
            service.spec.id,
            large_body,
        )
    )
    fallback = _request(small, service, "patient-view", omit_keys=service.prefetch.templates())
    fallback["fhirServer"] = fhir_base_url
    workloads.append(
        Workload(
            "fallback",
            "the small patient without prefetch; every key fetched from a loopback FHIR server "
            "that waits 20 ms per query",
            service.spec.id,
            orjson.dumps(fallback),
            ceiling=False,
            fhir_resources=tuple(small),
        )
    )
    order_service = _service(knowledge, "order-sign")
    if order_service is None:
        notes.append("no order-sign service in the knowledge: the order-sign workload is skipped")
    else:
        patient_id = next(str(r["id"]) for r in small if r["resourceType"] == "Patient")
        body = _request(small, order_service, "order-sign", draft_orders=[_draft_order(patient_id)])
        workloads.append(
            Workload(
                "order-sign",
                "the small patient with one draft medication order",
                order_service.spec.id,
                orjson.dumps(body),
            )
        )
    return workloads, notes
