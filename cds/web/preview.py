"""The preview page's work: turn a patient (or an uploaded request) into what an EHR would show.

Every call goes through the same path as a real request: the CDS Hooks request is built with
:func:`cds.call.request_builder.request_from_resources` from each service's prefetch plan,
validated as a :class:`~cds.protocol.wire.HookRequest` and answered by
:func:`cds.call.service_call.run_service`, with the
store, so shown cards are logged and feedback on them counts. Nothing is fetched from a FHIR
server (an uploaded request's ``fhirServer`` is ignored): the preview works offline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from cds.call.request_builder import bundle_resources, parse_json_bytes, request_from_resources
from cds.call.service_call import run_service
from cds.engine.evaluate import Evidence, Fired
from cds.errors import BadRequest, PayloadTooLarge, RequestError
from cds.kb.loader import Knowledge, Service
from cds.protocol.wire import HookRequest
from cds.settings import Settings
from cds.store.protocol import CallLog
from cds.web.draft_orders import DraftOrder, draft_medication_request

__all__ = [
    "ORDER_HOOKS",
    "Banner",
    "CardView",
    "PreviewResult",
    "ServiceRun",
    "Upload",
    "parse_upload",
    "patient_banner",
    "preview_hook_request",
    "preview_resources",
    "request_patient",
]

ORDER_HOOKS = ("order-select", "order-sign")
SHOWN_JSON_CHARS = 300_000
# A compressed upload may unpack to this many times the largest accepted body (a Synthea record
# of 500 kB in bz2 is 11 MB of JSON); more is refused before it is all in memory.
UNPACKED_FACTOR = 4


@dataclass(frozen=True)
class Upload:
    """An uploaded file: either a record (resources) or a complete CDS Hooks request."""

    resources: list[dict[str, Any]] | None = None
    hook_request: dict[str, Any] | None = None


@dataclass(frozen=True)
class CardView:
    """One card as the EHR received it (wire JSON), with the rule and facts that fired it."""

    service_id: str
    card: dict[str, Any]
    rule_id: str
    rule_title: str
    evidence: tuple[Evidence, ...]
    absent: tuple[str, ...]


@dataclass
class ServiceRun:
    service_id: str
    title: str
    request_json: str = ""
    response_json: str = ""
    cards: list[CardView] = field(default_factory=list)
    not_evaluated: dict[str, str] = field(default_factory=dict)
    skipped_resources: int = 0
    error: str | None = None


@dataclass
class PreviewResult:
    hook: str
    as_of: date
    runs: list[ServiceRun]
    patient_id: str | None = None

    @property
    def card_count(self) -> int:
        return sum(len(run.cards) for run in self.runs)


def parse_upload(raw: bytes, max_bytes: int, filename: str = "the uploaded file") -> Upload:
    """Read an uploaded JSON file (plain, bz2 or gzip): a FHIR Bundle, one resource, or a CDS
    Hooks request."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    if not raw.strip():
        raise BadRequest("the uploaded file is empty")
    data = parse_json_bytes(raw, filename, max_unpacked=max_bytes * UNPACKED_FACTOR)
    if isinstance(data, dict) and "hook" in data and "context" in data:
        return Upload(hook_request=data)
    resources = bundle_resources(data)
    if not any(r.get("resourceType") == "Patient" for r in resources):
        raise BadRequest("the uploaded Bundle has no Patient resource")
    return Upload(resources=resources)


def _shown_json(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    if len(text) > SHOWN_JSON_CHARS:
        return text[:SHOWN_JSON_CHARS] + f"\n… (cut here; {len(text)} characters in all)"
    return text


def _card_views(service: Service, response: dict[str, Any], fired: list[Fired]) -> list[CardView]:
    return [
        CardView(
            service_id=service.spec.id,
            card=card,
            rule_id=item.rule.id,
            rule_title=item.rule.title,
            evidence=item.evidence,
            absent=item.absent,
        )
        for card, item in zip(response.get("cards", []), fired, strict=True)
    ]


async def _run(
    service: Service,
    body: dict[str, Any],
    *,
    knowledge: Knowledge,
    settings: Settings,
    call_log: CallLog,
    now: datetime,
) -> ServiceRun:
    run = ServiceRun(
        service_id=service.spec.id,
        title=service.spec.title,
        request_json=_shown_json(body),
    )
    try:
        try:
            hook_request = HookRequest.model_validate(body)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in exc.errors()[:10]
            )
            raise BadRequest(f"invalid CDS Hooks request: {where}") from None
        result = await run_service(
            service,
            hook_request,
            knowledge=knowledge,
            settings=settings,
            fhir_transport=None,
            now=now,
            call_log=call_log,
        )
    except RequestError as exc:
        run.error = f"HTTP {exc.status}: {exc.diagnostics}"
        return run
    response = {"cards": result.cards}  # exactly what the service sends
    run.response_json = _shown_json(response)
    run.cards = _card_views(service, response, result.fired)
    run.not_evaluated = dict(result.not_evaluated)
    run.skipped_resources = result.skipped_resources
    return run


def _patient_id(resources: list[dict[str, Any]]) -> str:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    return str(patient.get("id") or "unknown") if patient else "unknown"


async def preview_resources(
    resources: list[dict[str, Any]],
    *,
    hook: str,
    draft_order: DraftOrder | None,
    extra_draft_orders: tuple[dict[str, Any], ...] = (),
    knowledge: Knowledge,
    settings: Settings,
    call_log: CallLog,
    now: datetime,
) -> PreviewResult:
    """Call every service on ``hook`` for a patient's record, as an EHR would."""
    patient_id = _patient_id(resources)
    drafts: list[dict[str, Any]] = list(extra_draft_orders)
    if hook in ORDER_HOOKS and draft_order is not None:
        drafts.append(draft_medication_request(draft_order, patient_id, now.date()))
    if hook in ORDER_HOOKS and not drafts:
        raise BadRequest(f"pick a draft order for the {hook} hook")
    hook_instance = f"preview-{uuid.uuid4()}"
    runs = [
        await _run(
            service,
            request_from_resources(
                resources,
                service.prefetch,
                hook=hook,
                hook_instance=hook_instance,
                draft_orders=drafts,
            ),
            knowledge=knowledge,
            settings=settings,
            call_log=call_log,
            now=now,
        )
        for service in knowledge.services_for(hook)
    ]
    return PreviewResult(hook=hook, as_of=now.date(), runs=runs, patient_id=patient_id)


async def preview_hook_request(
    body: dict[str, Any],
    *,
    knowledge: Knowledge,
    settings: Settings,
    call_log: CallLog,
    now: datetime,
) -> PreviewResult:
    """Send an uploaded CDS Hooks request to every service on its hook (nothing is fetched)."""
    hook = body.get("hook")
    if not isinstance(hook, str) or not knowledge.services_for(hook):
        raise BadRequest(f"no service of ours answers the hook {hook!r}")
    runs = [
        await _run(
            service, body, knowledge=knowledge, settings=settings, call_log=call_log, now=now
        )
        for service in knowledge.services_for(hook)
    ]
    context = body.get("context")
    patient_id = context.get("patientId") if isinstance(context, dict) else None
    return PreviewResult(
        hook=hook,
        as_of=now.date(),
        runs=runs,
        patient_id=patient_id if isinstance(patient_id, str) else None,
    )


@dataclass(frozen=True)
class Banner:
    """The patient banner line at the top of the EHR screen."""

    name: str
    gender: str
    birth_date: str


def _human_name(patient: dict[str, Any]) -> str:
    for name in patient.get("name") or ():
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str):
            return str(name["text"])
        given = [g for g in name.get("given") or () if isinstance(g, str)]
        family = name.get("family")
        shown = " ".join([*given, family if isinstance(family, str) else ""]).strip()
        if shown:
            return shown
    return "(no name)"


def patient_banner(resources: list[dict[str, Any]]) -> Banner:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None) or {}
    return Banner(
        name=_human_name(patient),
        gender=str(patient.get("gender") or "sex unknown"),
        birth_date=str(patient.get("birthDate") or "unknown"),
    )


def request_patient(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Patient resource(s) in an uploaded request's prefetch, for the banner."""
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, dict):
        return []
    return [
        value
        for value in prefetch.values()
        if isinstance(value, dict) and value.get("resourceType") == "Patient"
    ]
