"""Observation values: latest-value semantics, numeric thresholds with units, interpretation
flags, counts, components and trends."""

from __future__ import annotations

from typing import Any

import pytest

from cds.kb.loader import Knowledge
from tests.unit.knowledge_tree import (
    SNOMED,
    Tree,
    fired,
    make_rule,
    observation,
    quantity,
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("engine-values")).load()


def _fires(kb: Knowledge, query: dict[str, Any], resources: list[dict[str, Any]]) -> bool:
    return fired(kb, make_rule([{"observation": query}]), resources) is not None


def _her2(rid: str, date: str | None, answer: str, **extra: Any) -> dict[str, Any]:
    code = {"negative": "260385009", "positive": "10828004"}[answer]
    return observation(
        rid,
        "48676-1",
        date,
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": code, "display": answer}]},
        **extra,
    )


LATEST_NEGATIVE = {"valueset": "her2-result", "latest": True, "value": {"valueset": "negative"}}


def test_latest_value_decides_not_any_value(kb: Knowledge) -> None:
    older_negative = [_her2("h1", "2020-01-01", "negative"), _her2("h2", "2024-01-01", "positive")]
    assert not _fires(kb, LATEST_NEGATIVE, older_negative)
    newer_negative = [_her2("h1", "2020-01-01", "positive"), _her2("h2", "2024-01-01", "negative")]
    assert _fires(kb, LATEST_NEGATIVE, newer_negative)
    # without latest, any negative result is enough
    anywhere = {"valueset": "her2-result", "value": {"valueset": "negative"}}
    assert _fires(kb, anywhere, older_negative)


def test_latest_cites_only_the_latest_result(kb: Knowledge) -> None:
    rule = make_rule([{"observation": LATEST_NEGATIVE}])
    resources = [_her2("h1", "2020-01-01", "negative"), _her2("h2", "2024-01-01", "negative")]
    result = fired(kb, rule, resources)
    assert result is not None
    assert [e.resource_id for e in result.evidence] == ["h2"]
    assert result.evidence[0].value == "negative"


def test_latest_ignores_results_that_are_not_final(kb: Knowledge) -> None:
    resources = [
        _her2("h1", "2020-01-01", "negative"),
        _her2("h2", "2024-01-01", "positive", status="entered-in-error"),
    ]
    assert _fires(kb, LATEST_NEGATIVE, resources)


def test_latest_with_undated_results_prefers_a_dated_one(kb: Knowledge) -> None:
    resources = [_her2("h1", "2020-01-01", "negative"), _her2("h0", None, "positive")]
    assert _fires(kb, LATEST_NEGATIVE, resources)


def test_latest_within_a_window(kb: Knowledge) -> None:
    query = {**LATEST_NEGATIVE, "within": "P1Y"}
    assert not _fires(kb, query, [_her2("h1", "2020-01-01", "negative")])
    assert _fires(kb, query, [_her2("h1", "2026-01-01", "negative")])


def _calcium(rid: str, value: Any, unit: str = "mg/dL", date: str = "2026-05-01") -> dict[str, Any]:
    return observation(rid, "17861-6", date, valueQuantity=quantity(value, unit))


@pytest.mark.parametrize(
    ("op", "threshold", "below", "at", "above"),
    [
        ("gt", 10.5, False, False, True),
        ("gte", 10.5, False, True, True),
        ("lt", 10.5, True, False, False),
        ("lte", 10.5, True, True, False),
    ],
)
def test_numeric_thresholds_below_at_above(
    kb: Knowledge, op: str, threshold: float, below: bool, at: bool, above: bool
) -> None:
    query = {"valueset": "calcium", "value": {op: threshold, "unit": "mg/dL"}}
    assert _fires(kb, query, [_calcium("c", 10.4)]) is below
    assert _fires(kb, query, [_calcium("c", 10.5)]) is at
    assert _fires(kb, query, [_calcium("c", 10.6)]) is above


def test_a_range_uses_two_bounds(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "value": {"gte": 8.5, "lt": 10.5}}
    assert _fires(kb, query, [_calcium("c", 9)])
    assert not _fires(kb, query, [_calcium("c", 10.5)])
    assert not _fires(kb, query, [_calcium("c", 8.4)])


def test_a_unit_the_rule_names_is_converted_to_never_ignored(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "value": {"gt": 10.5, "unit": "mg/dL"}}
    # 2.5 mmol/L is 10.02 mg/dL, 2.7 mmol/L is 10.82 mg/dL (calcium, 40.08 g/mol)
    assert not _fires(kb, query, [_calcium("c", 2.5, unit="mmol/L")])
    assert _fires(kb, query, [_calcium("c", 2.7, unit="mmol/L")])
    assert _fires(kb, query, [_calcium("c", 0.12, unit="g/L")])
    by_unit_text_only = observation(
        "c", "17861-6", "2026-05-01", valueQuantity={"value": 12, "unit": "mg/dL"}
    )
    assert _fires(kb, query, [by_unit_text_only])
    by_code_only = observation(
        "c",
        "17861-6",
        "2026-05-01",
        valueQuantity={"value": 12, "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    )
    assert _fires(kb, query, [by_code_only])


@pytest.mark.parametrize("unit", ["mg/dl", "MG/DL", "mg/DL", "MMOL/L"])
def test_a_unit_in_another_case_is_read(kb: Knowledge, unit: str) -> None:
    query = {"valueset": "calcium", "value": {"gt": 10.5, "unit": "mg/dL"}}
    high, normal = (15, 9) if "G" in unit.upper() else (3.0, 2.3)
    assert _fires(kb, query, [_calcium("c", high, unit=unit)])
    assert not _fires(kb, query, [_calcium("c", normal, unit=unit)])


@pytest.mark.parametrize("unit", [None, "U/L", "{score}", "mg", "not a unit"])
def test_a_value_whose_unit_cannot_be_converted_is_unknown(kb: Knowledge, unit: str | None) -> None:
    query = {"valueset": "calcium", "value": {"gt": 10.5, "unit": "mg/dL"}}
    value: dict[str, Any] = {"value": 1200} if unit is None else {"value": 1200, "unit": unit}
    resource = observation("c", "17861-6", "2026-05-01", valueQuantity=value)
    assert not _fires(kb, query, [resource])
    assert not _fires(
        kb, {"valueset": "calcium", "value": {"lt": 10.5, "unit": "mg/dL"}}, [resource]
    )
    # without a unit in the rule (a score), the number is compared as it is
    assert _fires(kb, {"valueset": "calcium", "value": {"gt": 10.5}}, [resource])


def test_mass_and_moles_convert_only_for_an_analyte_with_a_molar_mass(kb: Knowledge) -> None:
    weight = observation("w", "29463-7", "2026-05-01", valueQuantity=quantity(3, "mmol"))
    assert not _fires(
        kb, {"valueset": "body-weight", "value": {"gt": 0.0001, "unit": "kg"}}, [weight]
    )


@pytest.mark.parametrize("value", ["12", True, None, [12], {"value": 12}])
def test_a_value_that_is_not_a_number_never_passes(kb: Knowledge, value: Any) -> None:
    query = {"valueset": "calcium", "value": {"gt": 1}}
    assert not _fires(kb, query, [_calcium("c", value)])


def test_value_threshold_on_the_latest_result(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "latest": True, "value": {"gt": 10.5, "unit": "mg/dL"}}
    high_then_normal = [_calcium("c1", 12, date="2026-01-01"), _calcium("c2", 9.5)]
    assert not _fires(kb, query, high_then_normal)
    normal_then_high = [_calcium("c1", 9.5, date="2026-01-01"), _calcium("c2", 12)]
    assert _fires(kb, query, normal_then_high)


def _flagged(rid: str, *codes: str, system: str | None = None) -> dict[str, Any]:
    coding = [
        {"code": c, **({"system": system} if system else {})} if system != "omit" else {"code": c}
        for c in codes
    ]
    return observation(
        rid,
        "17861-6",
        "2026-05-01",
        interpretation=[{"coding": coding}],
        valueQuantity=quantity(12),
    )


V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def test_interpretation_flags(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "interpretation": ["H", "HH"]}
    assert _fires(kb, query, [_flagged("c", "H", system=V3)])
    assert _fires(kb, query, [_flagged("c", "HH", system=V3)])
    assert _fires(kb, query, [_flagged("c", "H")])  # a bare code is read as v3
    assert not _fires(kb, query, [_flagged("c", "L", system=V3)])
    assert not _fires(kb, query, [_flagged("c", "N", system=V3)])
    assert not _fires(kb, query, [_flagged("c", "H", system="http://example.org/local-flags")])
    assert not _fires(kb, query, [_calcium("c", 12)])  # no flag at all
    assert _fires(kb, {"valueset": "calcium", "interpretation": ["L"]}, [_flagged("c", "L")])


def test_count_at_least_within_a_window(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "count": {"at_least": 2}, "within": "P30D"}
    # the window opens on 2026-05-02
    assert not _fires(kb, query, [_calcium("c1", 9, date="2026-05-20")])
    two = [_calcium("c1", 9, date="2026-05-02"), _calcium("c2", 9, date="2026-05-20")]
    assert _fires(kb, query, two)
    one_outside = [_calcium("c1", 9, date="2026-05-01"), _calcium("c2", 9, date="2026-05-20")]
    assert not _fires(kb, query, one_outside)
    three = [_calcium(f"c{i}", 9, date=f"2026-05-1{i}") for i in range(1, 4)]
    result = fired(kb, make_rule([{"observation": query}]), three)
    assert result is not None
    assert [e.resource_id for e in result.evidence] == ["c1", "c2", "c3"]


def test_count_applies_after_the_value_test(kb: Knowledge) -> None:
    query = {"valueset": "calcium", "count": {"at_least": 2}, "value": {"gt": 10.5}}
    assert not _fires(kb, query, [_calcium("c1", 12), _calcium("c2", 9)])
    assert _fires(kb, query, [_calcium("c1", 12), _calcium("c2", 11)])


def _bp(rid: str, systolic: Any, *, component_code: str = "8480-6") -> dict[str, Any]:
    return observation(
        rid,
        "85354-9",
        "2026-05-01",
        component=[
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": component_code}]},
                "valueQuantity": {"value": systolic, "unit": "mm[Hg]", "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "unit": "mm[Hg]"},
            },
        ],
    )


def test_component_with_a_value(kb: Knowledge) -> None:
    query = {
        "valueset": "blood-pressure",
        "component": {"valueset": "systolic", "value": {"gte": 140, "unit": "mm[Hg]"}},
    }
    assert _fires(kb, query, [_bp("bp", 150)])
    assert _fires(kb, query, [_bp("bp", 140)])
    assert not _fires(kb, query, [_bp("bp", 139)])
    assert not _fires(kb, query, [_bp("bp", 150, component_code="8462-4")])
    no_components = observation("bp", "85354-9", "2026-05-01")
    assert not _fires(kb, query, [no_components])
    # a component test without a value only needs the component to be present
    present = {"valueset": "blood-pressure", "component": {"valueset": "systolic"}}
    assert _fires(kb, present, [_bp("bp", 100)])


def _variant(rid: str, gene: str, significance: str) -> dict[str, Any]:
    def part(code: str, answer: str) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]},
        }

    # the test tree reuses "systolic" (8480-6) as the gene component and "blood-pressure"
    # (85354-9) as the report code; "negative" (260385009) stands for the answer checked
    return observation(
        rid, "85354-9", "2026-05-01", component=[part("8480-6", gene), part("8462-4", significance)]
    )


def test_components_must_all_hold_on_the_same_observation(kb: Knowledge) -> None:
    query = {
        "valueset": "blood-pressure",
        "components": [
            {"valueset": "systolic", "value": {"valueset": "negative"}},
            {"valueset": "blood-pressure", "value": {"valueset": "negative"}},
        ],
    }
    # the second test needs a component coded 85354-9: absent from _variant's components
    assert not _fires(kb, query, [_variant("v", "260385009", "260385009")])
    one = {
        "valueset": "blood-pressure",
        "component": {"valueset": "systolic", "value": {"valueset": "negative"}},
        "components": [{"valueset": "systolic"}],
    }
    assert _fires(kb, one, [_variant("v", "260385009", "1")])
    assert not _fires(kb, one, [_variant("v", "1", "260385009")])


def test_components_split_over_two_observations_do_not_count(kb: Knowledge) -> None:
    both = {
        "valueset": "blood-pressure",
        "components": [
            {"valueset": "systolic", "value": {"gte": 140}},
            {"valueset": "systolic", "value": {"lt": 150}},
        ],
    }
    assert _fires(kb, both, [_bp("bp", 145)])
    assert not _fires(kb, both, [_bp("high", 155), _bp("low", 100)])


def _weight(rid: str, kg: float, date: str) -> dict[str, Any]:
    return observation(rid, "29463-7", date, valueQuantity=quantity(kg, "kg"))


TREND = {"valueset": "body-weight", "trend": {"decrease_percent": 5, "within": "P6M"}}


def test_trend_fires_on_a_large_enough_drop_from_the_peak(kb: Knowledge) -> None:
    # 70 -> 66.5 is exactly a 5 % drop
    at = [_weight("w1", 70, "2026-01-15"), _weight("w2", 66.5, "2026-05-15")]
    assert _fires(kb, TREND, at)
    below = [_weight("w1", 70, "2026-01-15"), _weight("w2", 66.6, "2026-05-15")]
    assert not _fires(kb, TREND, below)
    above = [_weight("w1", 70, "2026-01-15"), _weight("w2", 60, "2026-05-15")]
    result = fired(kb, make_rule([{"observation": TREND}]), above)
    assert result is not None
    assert [e.resource_id for e in result.evidence] == ["w1", "w2"]


def test_trend_compares_pounds_and_kilograms_as_weights(kb: Knowledge) -> None:
    # 154 [lb_av] is 69.85 kg: 69.85 -> 66 kg is a 5.5 % drop; raw numbers would say 57 %
    lb = observation("w1", "29463-7", "2026-01-15", valueQuantity=quantity(154, "[lb_av]"))
    assert _fires(kb, TREND, [lb, _weight("w2", 66, "2026-05-15")])
    assert not _fires(kb, TREND, [lb, _weight("w2", 68, "2026-05-15")])
    # kilograms first, pounds last: 70 kg -> 150 lb (68.04 kg) is a 2.8 % drop, not a rise
    later_lb = observation("w2", "29463-7", "2026-05-15", valueQuantity=quantity(150, "[lb_av]"))
    assert not _fires(kb, TREND, [_weight("w1", 70, "2026-01-15"), later_lb])
    heavier_then = observation(
        "w1", "29463-7", "2026-01-15", valueQuantity={"value": 160, "unit": "lbs"}
    )
    assert _fires(kb, TREND, [heavier_then, later_lb])  # 160 -> 150 lb is a 6.25 % drop


def test_trend_leaves_out_a_weight_whose_unit_cannot_be_read(kb: Knowledge) -> None:
    odd = observation("w1", "29463-7", "2026-01-15", valueQuantity={"value": 300, "unit": "stone?"})
    assert not _fires(kb, TREND, [odd, _weight("w2", 60, "2026-05-15")])


def test_trend_needs_two_points_in_the_window_and_a_drop_not_a_rise(kb: Knowledge) -> None:
    assert not _fires(kb, TREND, [_weight("w2", 60, "2026-05-15")])
    peak_outside = [_weight("w1", 70, "2025-06-01"), _weight("w2", 60, "2026-05-15")]
    assert not _fires(kb, TREND, peak_outside)
    rising = [_weight("w1", 60, "2026-01-15"), _weight("w2", 70, "2026-05-15")]
    assert not _fires(kb, TREND, rising)
    recovered = [
        _weight("w1", 70, "2026-01-15"),
        _weight("w2", 60, "2026-03-15"),
        _weight("w3", 69, "2026-05-15"),
    ]
    assert not _fires(kb, TREND, recovered)  # the latest value is what is compared


def test_latest_cannot_combine_with_count_or_trend() -> None:
    from pydantic import ValidationError

    from cds.kb.logic import FactQuery

    with pytest.raises(ValidationError, match="latest"):
        FactQuery.model_validate({"valueset": "x", "latest": True, "count": {"at_least": 2}})
    with pytest.raises(ValidationError, match="latest"):
        FactQuery.model_validate(
            {"valueset": "x", "latest": True, "trend": {"decrease_percent": 5, "within": "P1M"}}
        )
