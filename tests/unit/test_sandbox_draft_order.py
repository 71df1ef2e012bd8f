"""The sandbox's draft MedicationRequest (category and reasonCode-like fields as single objects,
not lists) is read as a draft order and matched by ingredient through the RxNorm table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds.call.service_call import draft_orders_of
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.shared
@pytest.mark.parametrize("name", ["order-sign-request.json", "order-select-request.json"])
def test_sandbox_draft_anastrozole_is_an_endocrine_draft_order(
    shared_dir: Path, knowledge: Knowledge, name: str
) -> None:
    request = json.loads(
        (shared_dir / "data" / "cds-hooks-examples" / "sandbox-captured" / name).read_text()
    )
    drafts = draft_orders_of(request["hook"], request["context"])
    assert [d["id"] for d in drafts] == ["request-123"]
    assert isinstance(drafts[0]["category"], dict)  # the shape this test is about
    record = PatientRecord.build(
        [],
        now=NOW,
        patient_id=request["context"]["patientId"],
        draft_orders=drafts,
        ingredients=knowledge.ingredients,
    )
    assert record.skipped == 0
    found = record.find("draft-order", knowledge.valuesets["endocrine-therapy-agents"])
    assert [item.id for item in found] == ["request-123"]
    assert record.find("draft-order", knowledge.valuesets["her2-targeted-agents"]) == []
