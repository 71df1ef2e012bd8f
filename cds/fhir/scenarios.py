"""Synthetic example patients, generated from a seed, for demos, the preview page and benchmarks.

Every patient here is invented by this module; nothing is copied from real or shared records.
Dates are relative to ``now`` (today by default), so a "new" finding stays new whenever the
examples are generated and the cards they are meant to show keep firing. The same ``seed`` and
``now`` always give byte-identical bundles; the seed moves ids, names, exact dates (within
bounded windows) and the values of background observations, never what a scenario is about.

Codes come from the verified entries of the project's clinical-code reference (V or V3).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds.kb.code_systems import ICD10CM, LOINC, RXNORM, SNOMED

__all__ = ["Scenario", "example_patients", "large_patient"]

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_UCUM = "http://unitsofmeasure.org"

Code = tuple[str, str, str]  # (system, code, display)

# Findings and history (clinical-codes.md §1, §2, §3).
BREAST_CANCER = (SNOMED, "254837009", "Malignant neoplasm of breast")
BREAST_CANCER_FEMALE_RIGHT = (ICD10CM, "C50.911", "Malignant neoplasm of right female breast")
BREAST_CANCER_FEMALE_LEFT = (ICD10CM, "C50.912", "Malignant neoplasm of left female breast")
BREAST_CANCER_MALE_RIGHT = (ICD10CM, "C50.921", "Malignant neoplasm of right male breast")
BREAST_CANCER_HISTORY = (ICD10CM, "Z85.3", "Personal history of malignant neoplasm of breast")
DUCTAL_CARCINOMA_IN_SITU = (SNOMED, "109889007", "Ductal carcinoma in situ of breast")
DCIS_RIGHT_ICD = (ICD10CM, "D05.11", "Intraductal carcinoma in situ of right breast")
BONE_METASTASIS = (ICD10CM, "C79.51", "Secondary malignant neoplasm of bone")
BONE_METASTASIS_SNOMED = (SNOMED, "94222008", "Metastatic malignant neoplasm to bone")
LOW_BACK_PAIN = (ICD10CM, "M54.50", "Low back pain, unspecified")
BACKACHE = (SNOMED, "161891005", "Backache")
COUGH = (ICD10CM, "R05.9", "Cough, unspecified")
FATIGUE = (SNOMED, "84229001", "Fatigue")
NAUSEA = (SNOMED, "422587007", "Nausea")
HEADACHE = (ICD10CM, "R51.9", "Headache, unspecified")
SMOKING_STATUS = (LOINC, "72166-2", "Tobacco smoking status")
DAILY_SMOKER = (SNOMED, "449868002", "Smokes tobacco daily")
NEVER_SMOKER = (SNOMED, "266919005", "Never smoked tobacco")
BODY_WEIGHT = (LOINC, "29463-7", "Body weight")
PAIN_SCORE = (LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
# Procedures (clinical-codes.md §5).
MAMMOGRAPHY = (SNOMED, "71651007", "Mammography")
LUMPECTOMY = (SNOMED, "392021009", "Lumpectomy of breast")
MASTECTOMY = (SNOMED, "69031006", "Excision of breast tissue")
RADIOTHERAPY = (SNOMED, "33195004", "Teleradiotherapy procedure")
SENTINEL_NODE_BIOPSY = (SNOMED, "396487001", "Sentinel lymph node biopsy")
BIOPSY = (SNOMED, "122548005", "Biopsy of breast")
# Medicines (clinical-codes.md §4; Synthea-style clinical drugs and ingredients).
TAMOXIFEN_10MG = (RXNORM, "198240", "tamoxifen 10 MG Oral Tablet")
ANASTROZOLE_1MG = (RXNORM, "199224", "anastrozole 1 MG Oral Tablet")
LETROZOLE_25MG = (RXNORM, "200064", "letrozole 2.5 MG Oral Tablet")
ONDANSETRON = (RXNORM, "26225", "ondansetron")
METOCLOPRAMIDE = (RXNORM, "6915", "metoclopramide")
# Laboratory results for background noise: (code, unit, low, high, decimals).
_LABS: tuple[tuple[Code, str, float, float, int], ...] = (
    ((LOINC, "17861-6", "Calcium [Mass/volume] in Serum or Plasma"), "mg/dL", 8.7, 10.1, 1),
    ((LOINC, "1751-7", "Albumin [Mass/volume] in Serum or Plasma"), "g/dL", 3.6, 4.9, 1),
    ((LOINC, "6768-6", "Alkaline phosphatase [Enzymatic activity/volume]"), "U/L", 45, 110, 0),
    ((LOINC, "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume]"), "U/L", 12, 35, 0),
    ((LOINC, "1742-6", "Alanine aminotransferase [Enzymatic activity/volume]"), "U/L", 10, 38, 0),
    ((LOINC, "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"), "mg/dL", 0.3, 1.1, 1),
)
_GIVEN_FEMALE = ("Ada", "Maren", "Ilse", "Noor", "Teodora", "Hanne", "Rosalind", "Yara")
_GIVEN_MALE = ("Anton", "Bastian", "Casimir", "Dario", "Emil", "Jarek", "Oskar", "Teo")
_FAMILY = ("Quillfeather", "Brambleton", "Okonkwo-Lind", "Vasquez-Holm", "Thornquist", "Adeyemi")


@dataclass(frozen=True)
class Scenario:
    """One synthetic patient: a FHIR R4 ``collection`` Bundle and what it is meant to show."""

    id: str
    title: str
    description: str
    bundle: dict[str, Any]


def _concept(*codes: Code, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {
        "coding": [{"system": s, "code": c, "display": d} for s, c, d in codes]
    }
    if text:
        concept["text"] = text
    return concept


class _Chart:
    """Accumulates one patient's resources; every random choice goes through ``rng``."""

    def __init__(self, rng: random.Random, now: date) -> None:
        self.rng = rng
        self.now = now
        self.patient_id = self.new_id()
        self.resources: list[dict[str, Any]] = []

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def day(self, days_ago: int, jitter: int = 0) -> str:
        """An ISO date ``days_ago`` before now, moved by up to ``jitter`` days either way."""
        shift = self.rng.randint(-jitter, jitter) if jitter else 0
        return (self.now - timedelta(days=max(0, days_ago + shift))).isoformat()

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    def patient(self, gender: str, age: int) -> None:
        given = self.rng.choice(_GIVEN_FEMALE if gender == "female" else _GIVEN_MALE)
        born = self.now - timedelta(days=age * 365 + self.rng.randint(30, 330))
        self.resources.append(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "active": True,
                "name": [{"use": "official", "family": self.rng.choice(_FAMILY), "given": [given]}],
                "gender": gender,
                "birthDate": born.isoformat(),
            }
        )

    def condition(
        self,
        *codes: Code,
        onset: str,
        clinical: str = "active",
        abated: str | None = None,
        category: str = "problem-list-item",
    ) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self.new_id(),
            "clinicalStatus": _concept((_CLINICAL, clinical, clinical.title())),
            "verificationStatus": _concept((_VERIFICATION, "confirmed", "Confirmed")),
            "category": [_concept((_CONDITION_CATEGORY, category, category))],
            "code": _concept(*codes),
            "subject": self.subject,
            "onsetDateTime": onset,
            "recordedDate": onset,
        }
        if abated is not None:
            resource["abatementDateTime"] = abated
        self.resources.append(resource)

    def observation(
        self,
        code: Code,
        when: str,
        *,
        category: str,
        quantity: tuple[float, str] | None = None,
        answer: Code | None = None,
    ) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.new_id(),
            "status": "final",
            "category": [_concept((_OBSERVATION_CATEGORY, category, category))],
            "code": _concept(code),
            "subject": self.subject,
            "effectiveDateTime": when,
            "issued": f"{when}T12:00:00+00:00",
        }
        if quantity is not None:
            value, unit = quantity
            resource["valueQuantity"] = {
                "value": value,
                "unit": unit,
                "system": _UCUM,
                "code": unit,
            }
        if answer is not None:
            resource["valueCodeableConcept"] = _concept(answer)
        self.resources.append(resource)

    def procedure(self, code: Code, when: str) -> None:
        self.resources.append(
            {
                "resourceType": "Procedure",
                "id": self.new_id(),
                "status": "completed",
                "code": _concept(code),
                "subject": self.subject,
                "performedDateTime": when,
            }
        )

    def medication(self, code: Code, authored: str, status: str = "active") -> None:
        self.resources.append(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id(),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": _concept(code),
                "subject": self.subject,
                "authoredOn": authored,
            }
        )

    def encounter(self, when: str, status: str = "finished") -> None:
        self.resources.append(
            {
                "resourceType": "Encounter",
                "id": self.new_id(),
                "status": status,
                "class": {"system": _ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": self.subject,
                "period": {"start": when},
            }
        )

    def background(self, visits: int) -> None:
        """Routine visits with weight, pain score and a lab or two: realistic bulk, no signal."""
        weight = self.rng.uniform(58.0, 92.0)
        for visit in range(visits):
            when = self.day(60 + visit * 91, jitter=20)
            self.encounter(when)
            weight += self.rng.uniform(-1.5, 1.5)
            self.observation(
                BODY_WEIGHT, when, category="vital-signs", quantity=(round(weight, 1), "kg")
            )
            self.observation(
                PAIN_SCORE, when, category="survey", quantity=(self.rng.randint(0, 3), "{score}")
            )
            self.lab(when)

    def lab(self, when: str) -> None:
        code, unit, low, high, decimals = self.rng.choice(_LABS)
        value = round(self.rng.uniform(low, high), decimals)
        self.observation(
            code,
            when,
            category="laboratory",
            quantity=(int(value) if not decimals else value, unit),
        )

    def bundle(self) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "id": self.new_id(),
            "type": "collection",
            "entry": [
                {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
                for resource in self.resources
            ],
        }


def _breast_cancer_back_pain(chart: _Chart) -> Scenario:
    chart.patient("female", chart.rng.randint(52, 68))
    diagnosed = chart.day(4 * 365, jitter=60)
    chart.condition(BREAST_CANCER, BREAST_CANCER_FEMALE_RIGHT, onset=diagnosed)
    chart.procedure(BIOPSY, diagnosed)
    chart.procedure(MASTECTOMY, chart.day(4 * 365 - 40, jitter=10))
    chart.medication(TAMOXIFEN_10MG, chart.day(4 * 365 - 90, jitter=10))
    chart.procedure(MAMMOGRAPHY, chart.day(150, jitter=30))
    chart.observation(
        SMOKING_STATUS, chart.day(45, jitter=10), category="social-history", answer=NEVER_SMOKER
    )
    chart.background(visits=8)
    chart.condition(
        LOW_BACK_PAIN, BACKACHE, onset=chart.day(21, jitter=10), category="encounter-diagnosis"
    )
    chart.encounter(chart.day(0), status="in-progress")
    return Scenario(
        id="breast-cancer-new-back-pain",
        title="Breast cancer history with new back pain",
        description=(
            "A woman treated for invasive breast cancer about four years ago reports low back pain "
            "that began about three weeks ago; no bone metastasis is on record. Expect the "
            "warning card suggesting evaluation for spread to bone."
        ),
        bundle=chart.bundle(),
    )


def _male_bone_metastasis(chart: _Chart) -> Scenario:
    chart.patient("male", chart.rng.randint(60, 74))
    diagnosed = chart.day(3 * 365, jitter=60)
    chart.condition(BREAST_CANCER, BREAST_CANCER_MALE_RIGHT, onset=diagnosed)
    chart.procedure(MASTECTOMY, chart.day(3 * 365 - 30, jitter=10))
    chart.procedure(SENTINEL_NODE_BIOPSY, chart.day(3 * 365 - 30, jitter=10))
    chart.medication(TAMOXIFEN_10MG, chart.day(3 * 365 - 80, jitter=10), status="stopped")
    chart.condition(BONE_METASTASIS, BONE_METASTASIS_SNOMED, onset=chart.day(120, jitter=30))
    chart.medication(LETROZOLE_25MG, chart.day(100, jitter=10))
    chart.observation(
        SMOKING_STATUS, chart.day(100, jitter=10), category="social-history", answer=NEVER_SMOKER
    )
    chart.background(visits=6)
    chart.encounter(chart.day(0), status="in-progress")
    return Scenario(
        id="male-breast-cancer-bone-metastasis",
        title="Male breast cancer with metastasis to bone",
        description=(
            "A man with breast cancer has had metastasis to bone on record for about four months. "
            "No bisphosphonate or denosumab, no palliative care and no advance directive are on "
            "record. Expect cards about bone-modifying therapy, palliative care, advance care "
            "planning and clinical trials."
        ),
        bundle=chart.bundle(),
    )


def _survivor_overdue_smoker(chart: _Chart) -> Scenario:
    chart.patient("female", chart.rng.randint(48, 64))
    diagnosed = chart.day(7 * 365, jitter=60)
    chart.condition(
        BREAST_CANCER,
        BREAST_CANCER_FEMALE_LEFT,
        onset=diagnosed,
        clinical="resolved",
        abated=chart.day(6 * 365, jitter=30),
    )
    chart.procedure(LUMPECTOMY, chart.day(7 * 365 - 30, jitter=10))
    chart.procedure(RADIOTHERAPY, chart.day(7 * 365 - 80, jitter=10))
    chart.medication(ANASTROZOLE_1MG, chart.day(7 * 365 - 120, jitter=10), status="completed")
    chart.condition(BREAST_CANCER_HISTORY, onset=chart.day(6 * 365, jitter=30))
    chart.procedure(MAMMOGRAPHY, chart.day(3 * 365, jitter=20))
    chart.procedure(MAMMOGRAPHY, chart.day(2 * 365 + 60, jitter=20))
    for days_ago in (400, 30):
        chart.observation(
            SMOKING_STATUS,
            chart.day(days_ago, jitter=10),
            category="social-history",
            answer=DAILY_SMOKER,
        )
    chart.background(visits=8)
    chart.encounter(chart.day(0), status="in-progress")
    return Scenario(
        id="survivor-overdue-mammogram-smoker",
        title="Survivor after lumpectomy, mammogram overdue, current smoker",
        description=(
            "A woman treated with lumpectomy and radiation about seven years ago, with no "
            "evidence of disease since. Her last mammogram was over two years ago and she smokes "
            "daily. Expect survivorship cards: surveillance mammography and stopping smoking."
        ),
        bundle=chart.bundle(),
    )


def _carcinoma_in_situ(chart: _Chart) -> Scenario:
    chart.patient("female", chart.rng.randint(45, 60))
    diagnosed = chart.day(3 * 365, jitter=60)
    chart.condition(
        DUCTAL_CARCINOMA_IN_SITU,
        DCIS_RIGHT_ICD,
        onset=diagnosed,
        clinical="resolved",
        abated=chart.day(3 * 365 - 40, jitter=5),
    )
    chart.procedure(LUMPECTOMY, chart.day(3 * 365 - 40, jitter=5))
    chart.procedure(MAMMOGRAPHY, chart.day(120, jitter=30))
    chart.observation(
        SMOKING_STATUS, chart.day(60, jitter=10), category="social-history", answer=NEVER_SMOKER
    )
    chart.background(visits=5)
    chart.condition(LOW_BACK_PAIN, onset=chart.day(15, jitter=5), category="encounter-diagnosis")
    chart.encounter(chart.day(0), status="in-progress")
    return Scenario(
        id="carcinoma-in-situ-only",
        title="Ductal carcinoma in situ only, new back pain",
        description=(
            "A woman whose only breast diagnosis is ductal carcinoma in situ, treated by "
            "lumpectomy three years ago, now has new low back pain. In situ disease does not "
            "spread, so no card about metastasis may fire."
        ),
        bundle=chart.bundle(),
    )


def _no_cancer(chart: _Chart) -> Scenario:
    chart.patient("female", chart.rng.randint(40, 70))
    chart.procedure(MAMMOGRAPHY, chart.day(300, jitter=30))
    chart.observation(
        SMOKING_STATUS, chart.day(90, jitter=10), category="social-history", answer=NEVER_SMOKER
    )
    chart.background(visits=5)
    chart.condition(LOW_BACK_PAIN, onset=chart.day(10, jitter=5), category="encounter-diagnosis")
    chart.condition(COUGH, onset=chart.day(12, jitter=5), category="encounter-diagnosis")
    chart.encounter(chart.day(0), status="in-progress")
    return Scenario(
        id="no-cancer",
        title="No cancer history, back pain and cough",
        description=(
            "A woman with no cancer on record, seen for back pain and a cough. The service is "
            "about people with breast cancer, so no card may fire."
        ),
        bundle=chart.bundle(),
    )


_BUILDERS: tuple[Callable[[_Chart], Scenario], ...] = (
    _breast_cancer_back_pain,
    _male_bone_metastasis,
    _survivor_overdue_smoker,
    _carcinoma_in_situ,
    _no_cancer,
)


def example_patients(now: date | None = None, seed: int = 7) -> list[Scenario]:
    """The example patients, dated relative to ``now`` (default today)."""
    today = now or date.today()
    return [
        builder(_Chart(random.Random(f"{seed}:{index}"), today))
        for index, builder in enumerate(_BUILDERS)
    ]


def large_patient(n_resources: int, seed: int = 7, now: date | None = None) -> dict[str, Any]:
    """A Bundle of exactly ``n_resources`` resources for one patient with metastatic disease.

    Mostly years of laboratory results and vital signs, with past symptoms, procedures and
    medicines, as a long real record looks; the findings that matter are in the first few.
    """
    if n_resources < 8:
        raise ValueError("a large patient needs at least 8 resources")
    chart = _Chart(random.Random(f"{seed}:large"), now or date.today())
    chart.patient("female", chart.rng.randint(50, 75))
    diagnosed = chart.day(5 * 365, jitter=90)
    chart.condition(BREAST_CANCER, BREAST_CANCER_FEMALE_LEFT, onset=diagnosed)
    chart.procedure(MASTECTOMY, chart.day(5 * 365 - 30, jitter=10))
    chart.condition(BONE_METASTASIS, onset=chart.day(200, jitter=30))
    chart.medication(LETROZOLE_25MG, chart.day(190, jitter=10))
    chart.condition(LOW_BACK_PAIN, onset=chart.day(20, jitter=5), category="encounter-diagnosis")
    chart.observation(
        SMOKING_STATUS, chart.day(30, jitter=5), category="social-history", answer=DAILY_SMOKER
    )
    span = 10 * 365
    symptoms = (COUGH, FATIGUE, NAUSEA, HEADACHE, LOW_BACK_PAIN)
    while len(chart.resources) < n_resources:
        roll = chart.rng.random()
        when = chart.day(chart.rng.randint(1, span))
        if roll < 0.45:
            chart.lab(when)
        elif roll < 0.65:
            chart.observation(
                BODY_WEIGHT,
                when,
                category="vital-signs",
                quantity=(round(chart.rng.uniform(55, 95), 1), "kg"),
            )
        elif roll < 0.75:
            chart.observation(
                PAIN_SCORE, when, category="survey", quantity=(chart.rng.randint(0, 4), "{score}")
            )
        elif roll < 0.85:
            chart.encounter(when)
        elif roll < 0.91:
            days_ago = chart.rng.randint(60, span)
            chart.condition(
                chart.rng.choice(symptoms),
                onset=chart.day(days_ago),
                clinical="resolved",
                abated=chart.day(days_ago - chart.rng.randint(7, 50)),
                category="encounter-diagnosis",
            )
        elif roll < 0.96:
            chart.procedure(MAMMOGRAPHY, when)
        else:
            drug = chart.rng.choice((ONDANSETRON, METOCLOPRAMIDE))
            chart.medication(drug, when, status="completed")
    return chart.bundle()
