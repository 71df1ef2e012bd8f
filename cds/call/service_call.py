"""One CDS service call from parsed request to response. Plain Python: no web framework.

The steps: check the request against the service, resolve prefetch (fetching what is missing),
build the patient record once, evaluate the service's rules, render the cards.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx

from cds.call.findings import CardFinding, resolve_findings
from cds.call.prefetch import resolve_prefetch
from cds.call.render import render_findings
from cds.call.repeat_limits import apply_limits, longest_interval, with_reset_facts
from cds.engine.evaluate import Fired, evaluate
from cds.engine.record import PatientRecord
from cds.engine.record_guard import check_record
from cds.errors import BadRequest, PrefetchUnavailable
from cds.fhir.client import FhirClient, check_fhir_server_url
from cds.kb.loader import Knowledge, Service
from cds.kb.review import is_reviewed
from cds.kb.schemas import Rule
from cds.protocol.wire import CdsResponse, HookRequest
from cds.settings import Settings
from cds.store.call_log import NO_CALL_LOG
from cds.store.protocol import CallLog, CallRecord, ShownCard, WithheldCard

__all__ = ["CallResult", "draft_orders_of", "patient_key", "run_offline", "run_service"]

_ORDER_HOOKS = ("order-select", "order-sign")


class CallResult:
    """One call's outcome. ``cards`` is the wire JSON sent; ``response`` its validated model.

    A call renders its cards straight to wire JSON (see :func:`~cds.call.render.render_cards`);
    the pydantic :class:`~cds.protocol.wire.CdsResponse` is built from them only when someone
    asks for it.
    """

    def __init__(
        self,
        *,
        fired: list[Fired],
        not_evaluated: dict[str, str],
        cards: list[dict[str, Any]],
        fetched: list[str] | None = None,
        fetch_errors: list[str] | None = None,
        skipped_resources: int = 0,
        findings: list[CardFinding] | None = None,
        withheld: list[tuple[CardFinding, str]] | None = None,
    ) -> None:
        # The cards as sent: camelCase, no nulls or empty arrays. Shared parts: do not mutate.
        self.cards = cards
        self._response: CdsResponse | None = None
        self.fired = fired  # the rule leading each card, in card order
        # One per card, with every rule it stands for (merged or superseded).
        self.findings = findings if findings is not None else []
        # Cards produced but not returned, with why: silent, repeat, suppressed.
        self.withheld = withheld if withheld is not None else []
        self.not_evaluated = not_evaluated
        self.fetched = fetched if fetched is not None else []
        self.fetch_errors = fetch_errors if fetch_errors is not None else []
        self.skipped_resources = skipped_resources

    @property
    def response(self) -> CdsResponse:
        if self._response is None:
            self._response = CdsResponse.model_validate({"cards": self.cards})
        return self._response

    def wire(self) -> dict[str, Any]:
        """The response body, ready for ``orjson.dumps``."""
        return {"cards": self.cards}


@lru_cache(maxsize=4096)  # a chart is opened many times a day; the HMAC is a pure function
def patient_key(patient_id: str, secret: str) -> str:
    """A keyed hash of the patient id: lets us suppress per patient without storing the id."""
    return hmac.new(secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest()


def draft_orders_of(hook: str, context: dict[str, Any]) -> list[Any]:
    """The draft orders rules look at: all at order-sign, the selected ones at order-select;
    and the Medications in the bundle, which the orders may reference."""
    if hook not in _ORDER_HOOKS:
        return []
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict):
        return []
    entries = bundle.get("entry")
    resources: list[dict[str, Any]] = [
        entry["resource"]
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]
    selections = context.get("selections")
    if hook == "order-select" and isinstance(selections, list) and selections:
        wanted = {s for s in selections if isinstance(s, str)}
        resources = [
            r
            for r in resources
            if f"{r.get('resourceType')}/{r.get('id')}" in wanted
            or r.get("resourceType") == "Medication"  # what a selected order may reference
        ]
    return resources


def _check_request(service: Service, request: HookRequest) -> str:
    if request.hook != service.spec.hook:
        raise BadRequest(
            f"service {service.spec.id!r} answers the {service.spec.hook} hook, "
            f"not {request.hook!r}",
            expression=["hook"],
        )
    patient_id = request.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise BadRequest("context.patientId is required", expression=["context.patientId"])
    if request.hook in _ORDER_HOOKS and not isinstance(request.context.get("draftOrders"), dict):
        raise BadRequest(
            f"context.draftOrders (a Bundle) is required for {request.hook}",
            expression=["context.draftOrders"],
        )
    return patient_id


async def run_service(
    service: Service,
    request: HookRequest,
    *,
    knowledge: Knowledge,
    settings: Settings,
    fhir_transport: httpx.AsyncBaseTransport | None,
    now: datetime,
    call_log: CallLog = NO_CALL_LOG,
) -> CallResult:
    patient_id = _check_request(service, request)
    client = None
    no_client_reason = "no fhirServer in the request"
    if request.fhir_server and fhir_transport is not None:
        refusal = check_fhir_server_url(request.fhir_server, allow_http=settings.allow_http_fhir)
        if refusal is None:
            token = request.fhir_authorization.access_token if request.fhir_authorization else None
            client = FhirClient(
                fhir_transport,
                request.fhir_server,
                access_token=token,
                max_pages=settings.fhir_max_pages,
                timeout_seconds=settings.fhir_timeout_seconds,
            )
        else:
            no_client_reason = refusal
    data = await resolve_prefetch(
        request,
        service.prefetch,
        client,
        budget_seconds=settings.fhir_timeout_seconds,
        no_client_reason=no_client_reason,
    )
    for key in service.prefetch.keys:
        if key.required and key.name in data.unavailable:
            raise PrefetchUnavailable(
                f"required prefetch {key.name!r} ({key.resource_type}) is unavailable: "
                f"{data.unavailable[key.name]}",
                expression=[f"prefetch.{key.name}"],
            )
    unavailable = (
        {
            rule.id: "needs " + ", ".join(sorted(missing)) + " which could not be obtained"
            for rule in service.rules
            if (
                missing := service.prefetch.rule_keys.get(rule.id, frozenset())
                & data.unavailable.keys()
            )
        }
        if data.unavailable  # the usual call: every key there, no rule to check
        else {}
    )
    if service.rules and len(unavailable) == len(service.rules):
        names = ", ".join(sorted(data.unavailable))
        first_reason = next(iter(data.unavailable.values()))
        raise PrefetchUnavailable(
            f"no rule can run: prefetch {names} unavailable ({first_reason})",
            expression=[f"prefetch.{name}" for name in sorted(data.unavailable)],
        )
    drafts = draft_orders_of(request.hook, request.context)
    check_record(data.resources, patient_id, where="the prefetch or the FHIR server's answer")
    check_record(drafts, patient_id, where="context.draftOrders")
    record = PatientRecord.build(
        data.resources,
        now=now,
        patient_id=None,  # check_record refused data of any other patient
        draft_orders=drafts,
        ingredients=knowledge.ingredients,
        index=knowledge.code_index,
        kinds_read_whole=knowledge.kinds_read_whole,
    )
    hashed_patient = patient_key(patient_id, settings.patient_hash_key)
    evaluation = evaluate(knowledge, service.rules, record, unavailable=unavailable)
    # Silent rules (CDS_SILENT_RULES, `mode: silent`, unreviewed under
    # CDS_REQUIRE_REVIEWED_RULES) run and are logged, never shown, never supersede.
    audible = [f for f in evaluation.fired if not _silent(knowledge, settings, f.rule)]
    silent = [f for f in evaluation.fired if _silent(knowledge, settings, f.rule)]
    withheld = [(finding, "silent") for finding in resolve_findings(silent, {})]
    findings = resolve_findings(audible, knowledge.findings)
    if call_log.keeps_history and findings:
        findings = with_reset_facts(knowledge, findings, record)
        keys = [f.key for f in findings]
        shown_since = now - longest_interval(findings)
        feedback_since = now - timedelta(days=settings.suppression_days)
        history = await call_log.history_for(hashed_patient, keys, shown_since, feedback_since)
        limited = apply_limits(findings, history, now, repeats=settings.repeat_limits)
        findings = limited.shown
        withheld += limited.withheld
    cards = render_findings(
        knowledge,
        findings,
        hook_instance=request.hook_instance,
        patient_id=patient_id,
        base_url=settings.public_base_url,
    )
    shown = [
        ShownCard(
            card_uuid=card["uuid"],
            service_id=service.spec.id,
            rule_id=finding.key,
            rule_version=finding.lead.rule.version,
            hook=request.hook,
            hook_instance=request.hook_instance,
            indicator=card["indicator"],
            patient_key=hashed_patient,
            shown_at=now,
            fingerprint=finding.fingerprint,
        )
        for card, finding in zip(cards, findings, strict=True)
    ]
    call = CallRecord(
        hook_instance=request.hook_instance,
        service_id=service.spec.id,
        hook=request.hook,
        patient_key=hashed_patient,
        cards=len(cards),
        called_at=now,
    )
    held = [
        WithheldCard(
            service_id=service.spec.id,
            rule_id=finding.key,
            rule_version=finding.lead.rule.version,
            hook=request.hook,
            hook_instance=request.hook_instance,
            indicator=finding.indicator,
            patient_key=hashed_patient,
            fingerprint=finding.fingerprint,
            reason=reason,
            at=now,
        )
        for finding, reason in withheld
    ]
    await call_log.log(shown, call, held)
    return CallResult(
        cards=cards,
        fired=[finding.lead for finding in findings],
        findings=findings,
        withheld=withheld,
        not_evaluated=evaluation.not_evaluated,
        fetched=data.fetched,
        fetch_errors=data.fetch_errors,
        skipped_resources=record.skipped,
    )


def _silent(knowledge: Knowledge, settings: Settings, rule: Rule) -> bool:
    if rule.mode == "silent":
        return True
    names = settings.silent_rule_ids
    if "all" in names or rule.id in names:
        return True
    return settings.require_reviewed_rules and not is_reviewed(knowledge, rule)


def run_offline(
    service: Service,
    body: dict[str, Any],
    *,
    knowledge: Knowledge,
    now: datetime,
    settings: Settings | None = None,
) -> CallResult:
    """Run one call from a request body without a FHIR server or database (CLI, cases, tests).

    Raises the same :class:`~cds.errors.RequestError` subclasses a real call answers with.
    """
    return asyncio.run(
        run_service(
            service,
            HookRequest.model_validate(body),
            knowledge=knowledge,
            settings=settings or Settings(require_jwt=False),
            fhir_transport=None,
            now=now,
        )
    )
