"""The example patients' resources, plus one long generated record, for tests that compare
two ways of answering over every kind of patient we have."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from cds.call.request_builder import bundle_resources
from cds.engine.record import PatientRecord
from cds.fhir.scenarios import example_patients, large_patient
from cds.kb.loader import Knowledge


def example_records(today: date, large_size: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """(name, resources) for every example patient and a generated record of ``large_size``."""
    records = [(s.id, bundle_resources(s.bundle)) for s in example_patients(today)]
    records.append(("large", bundle_resources(large_patient(large_size, now=today))))
    return records


def indexed_record(
    knowledge: Knowledge, resources: list[dict[str, Any]], now: datetime
) -> PatientRecord:
    """The record as a hook call builds it: with the knowledge's code index."""
    return PatientRecord.build(
        resources,
        now=now,
        ingredients=knowledge.ingredients,
        index=knowledge.code_index,
        kinds_read_whole=knowledge.kinds_read_whole,
    )
