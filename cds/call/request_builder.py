"""Build CDS Hooks requests from FHIR Bundles, for `cds evaluate`, rule cases and the preview.

A Bundle holding a patient's record is split into a service's prefetch keys, each key holding
what a FHIR server would answer to its query (:mod:`cds.call.offline_search`): the resources of
its type that match its search parameters, and the Medications they reference when it asks to
include them; exactly as an EHR honouring our templates would send it.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson

from cds.call.offline_search import answer_query
from cds.errors import BadRequest, PayloadTooLarge
from cds.kb.prefetch_plan import PrefetchPlan

__all__ = ["bundle_resources", "parse_json_bytes", "read_json_file", "request_from_resources"]

DEFAULT_USER = "Practitioner/example"
_BZ2_MAGIC = b"BZh"
_GZIP_MAGIC = b"\x1f\x8b"


def read_json_file(path: Path) -> Any:
    """Read JSON, plain or compressed (bz2, gzip: told by the file's first bytes, not its name)."""
    if path.is_dir():
        raise BadRequest(f"{path} is a directory, not a JSON file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadRequest(f"{path}: no such file") from None
    return parse_json_bytes(raw, path.name)


def parse_json_bytes(raw: bytes, name: str, *, max_unpacked: int | None = None) -> Any:
    """Parse JSON that may be bz2- or gzip-compressed; ``name`` names it in errors.

    ``max_unpacked`` caps the size of the decompressed JSON (for files from the network).
    """
    try:
        if raw.startswith(_BZ2_MAGIC):
            raw = _unpack(bz2.BZ2Decompressor(), raw, max_unpacked, name)
        elif raw.startswith(_GZIP_MAGIC):
            raw = _unpack(zlib.decompressobj(wbits=31), raw, max_unpacked, name)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise BadRequest(f"{name} is not a readable compressed file ({exc})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{name} is not valid JSON ({exc.msg})") from None


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _unpack(decompressor: _Decompressor, raw: bytes, limit: int | None, name: str) -> bytes:
    out = decompressor.decompress(raw) if limit is None else decompressor.decompress(raw, limit + 1)
    if limit is not None and len(out) > limit:
        raise PayloadTooLarge(f"{name} unpacks to more than {limit} bytes")
    if not decompressor.eof:
        raise EOFError("the compressed data ends too early")
    return out


def bundle_resources(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict):
        raise BadRequest("expected a FHIR Bundle or a CDS Hooks request object")
    if bundle.get("resourceType") != "Bundle":
        if isinstance(bundle.get("resourceType"), str):
            return [bundle]
        raise BadRequest("expected a FHIR Bundle or a CDS Hooks request object")
    return [
        entry["resource"]
        for entry in bundle.get("entry") or ()
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def request_from_resources(
    resources: Iterable[dict[str, Any]],
    plan: PrefetchPlan,
    *,
    hook: str,
    hook_instance: str,
    draft_orders: Iterable[dict[str, Any]] = (),
    selections: Iterable[str] = (),
    null_keys: Iterable[str] = (),
    omit_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """A complete CDS Hooks request whose prefetch holds ``resources`` split by plan key, each
    key narrowed by its query's search parameters as a FHIR server would narrow it."""
    resources = list(resources)
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    patient_id = str(patient.get("id")) if patient and patient.get("id") else "unknown"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    prefetch: dict[str, Any] = {}
    for key in plan.keys:
        if key.resource_type == "Patient":
            prefetch[key.name] = patient
        else:
            prefetch[key.name] = _searchset(answer_query(key.template, by_type))
    for name in null_keys:
        prefetch[name] = None
    for name in omit_keys:
        prefetch.pop(name, None)
    context: dict[str, Any] = {"userId": DEFAULT_USER, "patientId": patient_id}
    drafts = list(draft_orders)
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in drafts],
        }
        if hook == "order-select":
            picked = list(selections) or [f"{r.get('resourceType')}/{r.get('id')}" for r in drafts]
            context["selections"] = picked
    if hook in ("encounter-start", "encounter-discharge"):
        encounter = next((r for r in resources if r.get("resourceType") == "Encounter"), None)
        context["encounterId"] = str(encounter.get("id")) if encounter else "example-encounter"
    return {
        "hook": hook,
        "hookInstance": hook_instance,
        "context": context,
        "prefetch": prefetch,
    }
