"""A small, valid knowledge tree written to a temporary folder, for engine and loader tests.

Tests start from :func:`base_tree` (valid), change one thing, write it and load it. The real
``knowledge/sources.yaml`` is reused so section headings are the document's own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cds.engine.evaluate import Evaluation, Fired, evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge, load_knowledge
from cds.kb.schemas import Rule
from tests import fhir_resources
from tests.fhir_resources import coding

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PATIENT_ID = "p1"
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "gender": "female",
    "birthDate": "1960-06-15",
}


def _code(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display, "verified": "U"}


VALUESETS: dict[str, dict[str, Any]] = {
    "breast-cancer": {
        "title": "Breast cancer",
        "description": "Invasive breast cancer for tests.",
        "families": [
            {"system": "icd10cm", "prefix": "C50", "display": "C50 family", "verified": "V"}
        ],
        "codes": [
            _code("snomed", "254837009", "Malignant neoplasm of breast"),
            _code("icd10cm", "Z85.3", "Personal history of malignant neoplasm of breast"),
        ],
    },
    "bone-pain": {
        "title": "Bone pain",
        "description": "Bone or back pain for tests.",
        "codes": [
            _code("snomed", "12584003", "Bone pain"),
            _code("icd10cm", "M54.50", "Low back pain, unspecified"),
            _code("icd10cm", "M54.9", "Dorsalgia, unspecified"),
        ],
    },
    "bone-metastasis": {
        "title": "Bone metastasis",
        "description": "Metastasis to bone for tests.",
        "codes": [_code("icd10cm", "C79.51", "Secondary malignant neoplasm of bone")],
    },
    "bone-symptoms": {
        "title": "Bone symptoms",
        "description": "Includes another value set.",
        "include": ["bone-pain"],
        "codes": [_code("snomed", "268029009", "Pathological fracture")],
    },
    "her2-result": {
        "title": "HER2 result",
        "description": "HER2 test results.",
        "codes": [_code("loinc", "48676-1", "HER2 [Interpretation] in Tissue")],
    },
    "negative": {
        "title": "Negative",
        "description": "A negative result.",
        "codes": [_code("snomed", "260385009", "Negative")],
    },
    "calcium": {
        "title": "Calcium",
        "description": "Serum calcium.",
        "codes": [_code("loinc", "17861-6", "Calcium [Mass/volume] in Serum or Plasma")],
    },
    "blood-pressure": {
        "title": "Blood pressure panel",
        "description": "Blood pressure panel.",
        "codes": [_code("loinc", "85354-9", "Blood pressure panel")],
    },
    "systolic": {
        "title": "Systolic blood pressure",
        "description": "Systolic component.",
        "codes": [_code("loinc", "8480-6", "Systolic blood pressure")],
    },
    "body-weight": {
        "title": "Body weight",
        "description": "Body weight.",
        "codes": [_code("loinc", "29463-7", "Body weight")],
    },
    "tamoxifen": {
        "title": "Tamoxifen",
        "description": "The ingredient tamoxifen.",
        "codes": [_code("rxnorm", "10324", "tamoxifen")],
    },
    "advance-directive": {
        "title": "Advance directive",
        "description": "Advance directive documents.",
        "codes": [_code("loinc", "42348-3", "Advance healthcare directives")],
    },
    "er-visit": {
        "title": "Emergency visit",
        "description": "Emergency department procedure for tests.",
        "codes": [_code("snomed", "50849002", "Emergency room admission")],
    },
    "bone-scan": {
        "title": "Bone scan",
        "description": "Bone scan orders.",
        "codes": [_code("loinc", "39818-0", "NM Bone Scan whole body")],
    },
}

DEFINITIONS: dict[str, dict[str, Any]] = {
    "invasive-breast-cancer": {
        "description": "invasive breast cancer",
        "logic": {"condition": {"valueset": "breast-cancer"}},
    },
    "known-bone-metastasis": {
        "description": "known bone metastasis",
        "logic": {"condition": {"valueset": "bone-metastasis"}},
    },
}

TEMPLATE: dict[str, Any] = {
    "id": "test-card",
    "audience": "clinician",
    "summary": "Test card: consider an evaluation",
    "detail": "A card used only by the engine tests.",
}


def rule_data(rule_id: str = "test-rule", **overrides: Any) -> dict[str, Any]:
    """A complete, valid rule file's data; ``overrides`` replace top-level fields."""
    data: dict[str, Any] = {
        "id": rule_id,
        "version": "1.0.0",
        "status": "active",
        "title": "A rule written for the tests",
        "hooks": ["patient-view"],
        "source": {
            "document": "metastatic-recurrent-breast-cancer",
            "section": "When to Call a Doctor",
            "summary": "A test summary written in our own words.",
        },
        "rationale": "Exercises the engine in unit tests only.",
        "logic": {
            "inclusion": [
                {"ref": "invasive-breast-cancer"},
                {"condition": {"valueset": "bone-pain", "within": "P90D"}},
            ],
            "exclusion": [{"ref": "known-bone-metastasis"}],
        },
        "card": {"template": "test-card", "indicator": "warning"},
        "suggestions": [
            {
                "id": "bone-scan",
                "label": "Order a bone scan",
                "description": "Create a draft bone scan order.",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "draft",
                    "intent": "proposal",
                    "code": {
                        "coding": [
                            {"system": "http://loinc.org", "code": "39818-0", "display": "Scan"}
                        ]
                    },
                },
            }
        ],
        "override_reasons": ["already-addressed"],
    }
    data.update(overrides)
    return data


@dataclass
class Tree:
    """The files of a knowledge tree, as data; :meth:`write` puts them on disk."""

    root: Path
    valuesets: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(VALUESETS))
    definitions: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFINITIONS))
    rules: dict[str, dict[str, Any]] = field(default_factory=lambda: {"test-rule": rule_data()})
    cases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"test-card": dict(TEMPLATE)}
    )
    services: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "id": "test-service",
                "hook": "patient-view",
                "title": "Test service",
                "description": "Runs the test rule.",
                "rules": ["test-rule"],
            }
        ]
    )
    ingredients: dict[str, Any] = field(
        default_factory=lambda: {
            "products": {
                "198240": {"display": "tamoxifen 10 MG Oral Tablet", "ingredients": [10324]}
            }
        }
    )
    education: dict[str, str] = field(default_factory=dict)
    fixtures: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)  # relative path -> text, written last

    @property
    def knowledge_dir(self) -> Path:
        return self.root / "knowledge"

    @property
    def cards_dir(self) -> Path:
        return self.root / "cards"

    def write(self) -> Tree:
        k, c = self.knowledge_dir, self.cards_dir
        for folder in (k / "valuesets", k / "rules", k / "terminology", c / "templates"):
            folder.mkdir(parents=True, exist_ok=True)
        (c / "education").mkdir(exist_ok=True)
        (k / "sources.yaml").write_text(
            (REPO / "knowledge" / "sources.yaml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        _dump(k / "services.yaml", {"services": self.services})
        _dump(k / "definitions.yaml", self.definitions)
        _dump(k / "fixtures.yaml", self.fixtures)
        _dump(k / "terminology" / "rxnorm-ingredients.yaml", self.ingredients)
        for vs_id, data in self.valuesets.items():
            _dump(k / "valuesets" / f"{vs_id}.yaml", {"id": vs_id, **data})
        for rule_id, data in self.rules.items():
            _dump(k / "rules" / f"{rule_id}.yaml", data)
        for rule_id, cases in self.cases.items():
            _dump(k / "rules" / f"{rule_id}.cases.yaml", cases)
        for template_id, data in self.templates.items():
            _dump(c / "templates" / f"{template_id}.yaml", data)
        (c / "override-reasons.yaml").write_text(
            (REPO / "cards" / "override-reasons.yaml").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        for slug, text in self.education.items():
            (c / "education" / f"{slug}.md").write_text(text, encoding="utf-8")
        for relative, text in self.raw.items():
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return self

    def load(self) -> Knowledge:
        self.write()
        return load_knowledge(self.knowledge_dir, self.cards_dir)


def _dump(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def make_rule(
    inclusion: list[dict[str, Any]], exclusion: list[dict[str, Any]] | None = None, **extra: Any
) -> Rule:
    """A rule object with this logic (not written to disk: for engine tests)."""
    logic = {"inclusion": inclusion, "exclusion": exclusion or []}
    return Rule.model_validate(rule_data(logic=logic, **extra))


def record_of(
    knowledge: Knowledge,
    resources: list[dict[str, Any]],
    *,
    now: datetime = NOW,
    patient: dict[str, Any] | None = None,
    draft_orders: list[dict[str, Any]] | None = None,
) -> PatientRecord:
    return PatientRecord.build(
        [patient or PATIENT, *resources],
        now=now,
        patient_id=PATIENT_ID,
        draft_orders=draft_orders or [],
        ingredients=knowledge.ingredients,
    )


def run(
    knowledge: Knowledge,
    rule: Rule,
    resources: list[dict[str, Any]],
    **record_args: Any,
) -> Evaluation:
    return evaluate(knowledge, [rule], record_of(knowledge, resources, **record_args))


def fired(
    knowledge: Knowledge, rule: Rule, resources: list[dict[str, Any]], **record_args: Any
) -> Fired | None:
    result = run(knowledge, rule, resources, **record_args)
    return result.fired[0] if result.fired else None


# --- resource builders -----------------------------------------------------------------------

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def condition(
    rid: str,
    system: str,
    code: str,
    onset: str | None,
    display: str = "",
    **extra: Any,
) -> dict[str, Any]:
    return fhir_resources.condition(
        rid, coding(system, code, display or code), patient=PATIENT_ID, onset=onset, **extra
    )


def observation(
    rid: str,
    code: str,
    date: str | None,
    *,
    status: str = "final",
    system: str = LOINC,
    **extra: Any,
) -> dict[str, Any]:
    obs_coding = coding(system, code, f"obs {code}")
    return fhir_resources.observation(
        rid, obs_coding, patient=PATIENT_ID, date=date, status=status, **extra
    )


def quantity(value: float, unit: str = "mg/dL") -> dict[str, Any]:
    return fhir_resources.quantity(value, unit)


def breast_cancer(onset: str | None = "2019-03-04", rid: str = "bc") -> dict[str, Any]:
    return condition(rid, SNOMED, "254837009", onset, "Malignant neoplasm of breast")


def bone_pain(onset: str | None, rid: str = "pain", **extra: Any) -> dict[str, Any]:
    return condition(rid, SNOMED, "12584003", onset, "Bone pain", **extra)
