"""PatientRecord.find agrees with a plain scan of the record, families and ingredients included."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.engine.record import PatientRecord
from cds.kb.code_systems import ICD10CM, RXNORM, SNOMED
from cds.kb.terminology import CompiledValueSet

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ICD_CODES = ["C50.911", "C50.912", "C50.9", "C79.51", "C79.5", "M54.50", "M54.5", "Z85.3", "C77.3"]
FAMILIES = ["C50", "C79", "C795", "M54", "Z85", "C77"]
SNOMED_CODES = ["254837009", "94222008", "161891005", "12584003"]
RX_CODES = ["198240", "10324", "1114085", "77655"]
INGREDIENTS = {"198240": ("10324",), "1114085": ("77655",)}
SYSTEM_URL = {ICD10CM: ICD10CM, SNOMED: SNOMED, RXNORM: RXNORM}


def _coding(rng: random.Random) -> dict[str, str]:
    system = rng.choice([ICD10CM, SNOMED, RXNORM])
    pool = {ICD10CM: ICD_CODES, SNOMED: SNOMED_CODES, RXNORM: RX_CODES}[system]
    return {"system": SYSTEM_URL[system], "code": rng.choice(pool)}


def _resource(rng: random.Random, n: int) -> dict[str, Any]:
    rtype = rng.choice(["Condition", "Procedure", "MedicationRequest"])
    concept = {"coding": [_coding(rng) for _ in range(rng.randint(1, 3))]}
    field = "medicationCodeableConcept" if rtype == "MedicationRequest" else "code"
    return {"resourceType": rtype, "id": f"r{n}", field: concept}


def _normal(system: str, code: str) -> str:
    return code.replace(".", "") if system == ICD10CM else code


def _valueset(rng: random.Random, size: int) -> CompiledValueSet:
    codes = set()
    prefixes = set()
    for _ in range(size):
        coding = _coding(rng)
        key = (coding["system"], _normal(coding["system"], coding["code"]))
        if key[0] == ICD10CM and rng.random() < 0.4:
            prefixes.add((ICD10CM, rng.choice([*FAMILIES, key[1]])))
        else:
            codes.add(key)
    codes |= {(SNOMED, f"9{n:08d}") for n in range(rng.choice([0, 50]))}  # long value sets
    return CompiledValueSet(
        id="vs", title="vs", codes=frozenset(codes), prefixes=frozenset(prefixes)
    )


def _expected(record: PatientRecord, kind: str, valueset: CompiledValueSet) -> list[str]:
    out = []
    for item in record.all_of(kind):
        keys = {(s, c) for s, c, _ in item.codings}
        keys |= {
            (RXNORM, i) for s, c, _ in item.codings if s == RXNORM for i in INGREDIENTS.get(c, ())
        }
        if any(
            key in valueset.codes
            or key in valueset.prefixes
            or (
                key[0] == ICD10CM
                and any((ICD10CM, key[1][:n]) in valueset.prefixes for n in range(3, len(key[1])))
            )
            for key in keys
        ):
            out.append(item.id)
    return out


@pytest.mark.parametrize("seed", range(60))
def test_find_matches_a_plain_scan(seed: int) -> None:
    rng = random.Random(seed)
    resources = [_resource(rng, n) for n in range(rng.randint(0, 25))]
    record = PatientRecord.build(resources, now=NOW, ingredients=INGREDIENTS)
    for _ in range(5):
        valueset = _valueset(rng, rng.randint(0, 8))
        for kind in ("condition", "procedure", "medication", "observation"):
            record._found.clear()
            assert [i.id for i in record.find(kind, valueset)] == _expected(record, kind, valueset)


def test_a_kind_held_only_without_codes_matches_nothing_and_is_remembered() -> None:
    uncoded = [
        {"resourceType": "Condition", "id": f"c{n}", "code": {"text": "pain"}} for n in (1, 2)
    ]
    record = PatientRecord.build(uncoded, now=NOW)
    valueset = CompiledValueSet(
        id="vs", title="vs", codes=frozenset({(SNOMED, "12584003")}), prefixes=frozenset()
    )
    assert [i.id for i in record.all_of("condition")] == ["c1", "c2"]
    assert record.find("condition", valueset) == []
    assert record.find("procedure", valueset) == []
    assert record._found == {("condition", "vs"): [], ("procedure", "vs"): []}


def test_a_resource_sent_twice_is_found_once() -> None:
    """Same type and id twice (a page sent twice): one item, so "at least two" does not hold.
    Resources without an id cannot be told apart and are all kept."""
    headache = {"system": SNOMED, "code": "25064002"}
    twice = {"resourceType": "Condition", "id": "h1", "code": {"coding": [headache]}}
    unnamed = {"resourceType": "Condition", "code": {"coding": [headache]}}
    other = {"resourceType": "Condition", "id": "h2", "code": {"coding": [headache]}}
    record = PatientRecord.build([twice, dict(twice), unnamed, dict(unnamed), other], now=NOW)
    valueset = CompiledValueSet(id="vs", title="vs", codes=frozenset({(SNOMED, "25064002")}))
    assert [i.id for i in record.find("condition", valueset)] == ["h1", "", "", "h2"]
    assert [i.id for i in record.all_of("condition")] == ["h1", "", "", "h2"]
