"""The code systems rules may name: canonical URI, the shorthand knowledge files use, and the
name pages show. Every module that needs a system URI takes it from here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CODE_SYSTEMS",
    "HGNC",
    "ICD10CM",
    "LOINC",
    "RULE_SYSTEM",
    "RXNORM",
    "SNOMED",
    "SYSTEM_NAMES",
    "SYSTEM_SHORTHANDS",
    "V3_INTERPRETATION",
    "CodeSystem",
]


@dataclass(frozen=True)
class CodeSystem:
    shorthand: str  # as knowledge files write it: ``{system: loinc, code: ...}``
    uri: str  # the canonical FHIR system URI
    name: str  # as pages show it


SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HGNC = "http://www.genenames.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

CODE_SYSTEMS = (
    CodeSystem("snomed", SNOMED, "SNOMED CT"),
    CodeSystem("loinc", LOINC, "LOINC"),
    CodeSystem("icd10cm", ICD10CM, "ICD-10-CM"),
    CodeSystem("rxnorm", RXNORM, "RxNorm"),
    CodeSystem("hgnc", HGNC, "HGNC"),
    CodeSystem("v3-interpretation", V3_INTERPRETATION, "HL7 v3 interpretation"),
)
SYSTEM_SHORTHANDS = {s.shorthand: s.uri for s in CODE_SYSTEMS}
SYSTEM_NAMES = {s.uri: s.name for s in CODE_SYSTEMS}

# The system of the codes that name our own rules (a card's topic, exported PlanDefinitions).
RULE_SYSTEM = "urn:cds:breast-cancer-followup:rule"
