"""Code matching: ICD-10-CM with or without the dot and declared families, SNOMED CT by explicit
expansion only, LOINC, system aliases, and RxNorm products matched through their ingredients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds.kb.code_systems import HGNC, ICD10CM, LOINC, RXNORM, SNOMED
from cds.kb.loader import Knowledge
from cds.kb.terminology import CompiledValueSet, canonical_system, normalize_code
from tests.fhir_resources import coding, medication_request
from tests.unit.knowledge_tree import ICD, Tree, condition, fired, make_rule


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("terminology")).load()


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (ICD10CM, "C50.911", "C50911"),
        (ICD10CM, "c50.911", "C50911"),
        (ICD10CM, " Z85.3 ", "Z853"),
        (ICD10CM, "C50911", "C50911"),
        (SNOMED, "254837009", "254837009"),
        (SNOMED, 254837009, "254837009"),
        (LOINC, "48676-1", "48676-1"),
        (HGNC, "HGNC:1100", "1100"),
        (ICD10CM, "", None),
        (ICD10CM, "   ", None),
        (SNOMED, None, None),
        (SNOMED, True, None),
        (SNOMED, ["1"], None),
        (SNOMED, "9" * 65, None),
    ],
)
def test_normalize_code(system: str, code: Any, expected: str | None) -> None:
    assert normalize_code(system, code) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://snomed.info/sct", SNOMED),
        ("http://snomed.info/sct/", SNOMED),
        ("HTTP://SNOMED.INFO/SCT", SNOMED),
        ("urn:oid:2.16.840.1.113883.6.96", SNOMED),
        ("urn:oid:2.16.840.1.113883.6.90", ICD10CM),
        ("http://hl7.org/fhir/sid/icd-10", ICD10CM),
        ("urn:oid:2.16.840.1.113883.6.1", LOINC),
        ("urn:oid:2.16.840.1.113883.6.88", RXNORM),
        ("http://example.org/local", "http://example.org/local"),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_canonical_system(given: Any, expected: str | None) -> None:
    assert canonical_system(given) == expected


def test_compiled_value_set_contains_exact_codes_and_declared_families_only() -> None:
    vs = CompiledValueSet(
        id="x",
        title="x",
        codes=frozenset({(ICD10CM, "M5450"), (SNOMED, "254837009")}),
        prefixes=frozenset({(ICD10CM, "C50")}),
    )
    assert vs.contains(ICD10CM, "M5450")
    assert not vs.contains(ICD10CM, "M54501")  # an exact code is not a family
    assert vs.contains(ICD10CM, "C50911")
    assert vs.contains(ICD10CM, "C501")
    assert not vs.contains(ICD10CM, "C49")
    assert not vs.contains(SNOMED, "C50911")  # families belong to their system
    assert vs.contains(SNOMED, "254837009")
    assert not vs.contains(None, "254837009")
    assert not vs.contains(SNOMED, None)
    assert vs.keys() == frozenset({(ICD10CM, "M5450"), (SNOMED, "254837009"), (ICD10CM, "C50")})


def _fires_on(kb: Knowledge, valueset: str, resource: dict[str, Any]) -> bool:
    return fired(kb, make_rule([{"condition": {"valueset": valueset}}]), [resource]) is not None


@pytest.mark.parametrize(
    ("code", "matches"),
    [
        ("C50.911", True),
        ("C50911", True),
        ("c50.912", True),
        ("C50.929", True),  # male breast
        ("C50", True),  # the header itself
        ("C50.0", True),
        ("C49.9", False),
        ("C79.51", False),
        ("D05.10", False),  # carcinoma in situ is not in the family
        ("Z85.3", True),
        ("Z853", True),
        ("Z85.30", False),  # exact codes do not cover codes below them
    ],
)
def test_icd_with_and_without_dot_and_prefix_families(
    kb: Knowledge, code: str, matches: bool
) -> None:
    assert _fires_on(kb, "breast-cancer", condition("c", ICD, code, "2020-01-01")) is matches


@pytest.mark.parametrize(
    "system", [ICD, "urn:oid:2.16.840.1.113883.6.90", "http://hl7.org/fhir/sid/icd-10-cm/"]
)
def test_icd_system_spellings(kb: Knowledge, system: str) -> None:
    assert _fires_on(kb, "breast-cancer", condition("c", system, "C50.911", "2020-01-01"))


def test_icd_family_does_not_leak_into_another_system(kb: Knowledge) -> None:
    assert not _fires_on(kb, "breast-cancer", condition("c", LOINC, "C50911", "2020-01-01"))


def test_snomed_matches_by_explicit_expansion_only(kb: Knowledge) -> None:
    assert _fires_on(kb, "breast-cancer", condition("c", SNOMED, "254837009", "2020-01-01"))
    # 408643008 (infiltrating duct carcinoma) is a child of 254837009 but not listed in this
    # test value set: there is no subsumption at run time
    assert not _fires_on(kb, "breast-cancer", condition("c", SNOMED, "408643008", "2020-01-01"))
    # the same digits in another system are another code
    assert not _fires_on(kb, "breast-cancer", condition("c", LOINC, "254837009", "2020-01-01"))


def test_a_resource_with_several_codings_matches_on_any_of_them(kb: Knowledge) -> None:
    resource = condition("c", "http://example.org/local", "BC1", "2020-01-01")
    resource["code"]["coding"].append({"system": ICD, "code": "C50.911"})
    assert _fires_on(kb, "breast-cancer", resource)


def test_value_set_include_brings_in_the_included_codes(kb: Knowledge) -> None:
    assert _fires_on(kb, "bone-symptoms", condition("p", SNOMED, "12584003", "2026-05-01"))
    assert _fires_on(kb, "bone-symptoms", condition("f", SNOMED, "268029009", "2026-05-01"))
    assert not _fires_on(kb, "bone-pain", condition("f", SNOMED, "268029009", "2026-05-01"))


def test_absence_words_come_through_include(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["bone-pain"]["absence_words"] = ["Ossalgia "]
    kb = tree.load()
    assert kb.valuesets["bone-pain"].absence_words == frozenset({"ossalgia"})
    assert "ossalgia" in kb.valuesets["bone-symptoms"].absence_words  # it includes bone-pain


def _medication_request(code: str, status: str = "active") -> dict[str, Any]:
    tamoxifen_tablet = coding(RXNORM, code, "tamoxifen 10 MG Oral Tablet")
    return medication_request("mr", tamoxifen_tablet, status=status)


def test_rxnorm_product_matches_its_ingredient(kb: Knowledge) -> None:
    rule = make_rule([{"medication": {"valueset": "tamoxifen"}}])
    assert fired(kb, rule, [_medication_request("198240")]) is not None  # SCD -> 10324
    assert fired(kb, rule, [_medication_request("10324")]) is not None  # the ingredient itself
    assert fired(kb, rule, [_medication_request("313195")]) is None  # not in the table


def test_rxnorm_product_in_a_draft_order_matches_its_ingredient(kb: Knowledge) -> None:
    rule = make_rule([{"draft-order": {"valueset": "tamoxifen"}}])
    draft = _medication_request("198240", status="draft")
    assert fired(kb, rule, [], draft_orders=[draft]) is not None
    assert fired(kb, rule, [], draft_orders=[_medication_request("313195", "draft")]) is None


def test_the_ingredient_table_is_loaded_with_text_codes(kb: Knowledge) -> None:
    assert kb.ingredients == {"198240": ("10324",)}
