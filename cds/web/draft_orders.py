"""Draft medication orders the preview can place, for the order-select and order-sign hooks.

Each is a FHIR R4 ``MedicationRequest`` in ``draft`` status coded with the RxNorm ingredient
(clinical-codes.md §4), as an EHR sends an order that is being written but not yet signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.kb.code_systems import RXNORM

__all__ = ["DRAFT_ORDERS", "DraftOrder", "draft_medication_request"]


@dataclass(frozen=True)
class DraftOrder:
    key: str
    label: str
    drug_class: str
    rxcui: str
    display: str
    dosage: str


DRAFT_ORDERS: dict[str, DraftOrder] = {
    order.key: order
    for order in (
        DraftOrder(
            "olaparib",
            "Olaparib (PARP inhibitor)",
            "targeted therapy: PARP inhibitor",
            "1597582",
            "olaparib",
            "300 mg by mouth twice a day",
        ),
        DraftOrder(
            "trastuzumab",
            "Trastuzumab (HER2-targeted)",
            "targeted therapy: HER2",
            "224905",
            "trastuzumab",
            "6 mg/kg intravenously every 3 weeks",
        ),
        DraftOrder(
            "tamoxifen",
            "Tamoxifen (endocrine therapy)",
            "endocrine therapy",
            "10324",
            "tamoxifen",
            "20 mg by mouth once a day",
        ),
        DraftOrder(
            "oxycodone",
            "Oxycodone (opioid)",
            "opioid analgesic",
            "7804",
            "oxycodone",
            "5 mg by mouth every 6 hours as needed for pain",
        ),
        DraftOrder(
            "capecitabine",
            "Capecitabine (chemotherapy)",
            "chemotherapy",
            "194000",
            "capecitabine",
            "1000 mg/m2 by mouth twice a day, days 1 to 14 of a 21-day cycle",
        ),
    )
}


def draft_medication_request(order: DraftOrder, patient_id: str, today: date) -> dict[str, Any]:
    """The draft ``MedicationRequest`` for ``order`` and this patient."""
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{order.key}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": order.rxcui, "display": order.display}],
            "text": order.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": today.isoformat(),
        "dosageInstruction": [{"text": order.dosage}],
    }
