"""The fact kinds a rule can ask about, and the FHIR resource types that carry each.

One table, read where resources are sorted into kinds (:mod:`cds.engine.record`) and where the
resources about a patient are checked to be about this patient (:mod:`cds.engine.record_guard`).
"""

from __future__ import annotations

__all__ = ["KINDS", "RECORD_TYPES"]

KINDS: dict[str, tuple[str, ...]] = {
    "condition": ("Condition",),
    "observation": ("Observation",),
    "medication": ("MedicationRequest", "MedicationStatement", "MedicationAdministration"),
    "procedure": ("Procedure",),
    "document": ("DocumentReference",),
    "research-subject": ("ResearchSubject",),
    "service-request": ("ServiceRequest",),
    "draft-order": (),  # filled from context.draftOrders, not from the record
    "imaging": ("DiagnosticReport", "ImagingStudy"),
}

# Every resource type a record entry of some kind can be.
RECORD_TYPES = frozenset(rtype for types in KINDS.values() for rtype in types)
