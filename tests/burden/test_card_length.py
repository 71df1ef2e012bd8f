"""Short cards: every template's sentence and every rendered detail stay within the limits
docs/alert-burden.md justifies, whatever the record holds."""

from __future__ import annotations

from datetime import UTC, datetime

from cds.call.findings import CardFinding
from cds.call.render import DETAIL_LIMIT, TEMPLATE_DETAIL_LIMIT, render_findings
from cds.call.request_builder import bundle_resources, request_from_resources
from cds.call.service_call import run_offline
from cds.engine.evaluate import Evidence, Fired
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge


def test_every_template_detail_is_a_few_lines(knowledge: Knowledge) -> None:
    long = {t.id: len(t.detail.strip()) for t in knowledge.templates.values()}
    assert all(n <= TEMPLATE_DETAIL_LIMIT for n in long.values()), {
        k: n for k, n in long.items() if n > TEMPLATE_DETAIL_LIMIT
    }


def test_no_rendered_detail_exceeds_the_limit_even_on_a_worst_case_record(
    knowledge: Knowledge,
) -> None:
    """Ten long facts with markdown in them, long absences, every other rule covered."""
    hostile = "[x](y) *z* <b> " * 20
    evidence = tuple(
        Evidence(f"label {i} {hostile}", "Condition", f"c{i}", hostile, "2026-05-01", value=hostile)
        for i in range(10)
    )
    rules = list(knowledge.rules.values())
    findings = [
        CardFinding(
            key=rule.id,
            fired=(Fired(rule, evidence, (hostile, hostile)),),
            indicator=rule.card.indicator,
            covers=tuple(r for r in rules if r is not rule),
        )
        for rule in rules
    ]
    cards = render_findings(
        knowledge, findings, hook_instance="h", patient_id="p", base_url="http://x"
    )
    lengths = [len(card["detail"]) for card in cards]
    assert max(lengths) <= DETAIL_LIMIT
    assert all("- and" in card["detail"] for card in cards)  # the rest are counted, not shown


def test_the_example_patients_cards_stay_within_the_limit(knowledge: Knowledge) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    seen = 0
    for scenario in example_patients(now.date()):
        resources = bundle_resources(scenario.bundle)
        for hook in ("patient-view", "encounter-start", "encounter-discharge"):
            for service in knowledge.services_for(hook):
                body = request_from_resources(
                    resources, service.prefetch, hook=hook, hook_instance="x"
                )
                result = run_offline(service, body, knowledge=knowledge, now=now)
                for card in result.cards:
                    seen += 1
                    assert len(card["detail"]) <= DETAIL_LIMIT, card["summary"]
    assert seen > 0
