"""UCUM conversion: what converts, what stays unknown (cds/engine/units.py)."""

from __future__ import annotations

import pytest

from cds.engine.units import MOLAR_MASS, quantity_in, to_unit

CALCIUM = MOLAR_MASS["calcium"]


def test_calcium_moles_and_mass_convert_through_its_molar_mass() -> None:
    assert to_unit(1, "mmol/L", "mg/dL", molar_mass=CALCIUM) == pytest.approx(4.008)
    assert to_unit(10.5, "mg/dL", "mmol/L", molar_mass=CALCIUM) == pytest.approx(2.6198, abs=1e-4)
    assert to_unit(1, "mmol/L", "mg/dL") is None  # no molar mass: no conversion


@pytest.mark.parametrize(
    ("unit", "kg"), [("kg", 1.0), ("[lb_av]", 0.45359237), ("g", 0.001), ("lbs", 0.45359237)]
)
def test_weights_convert_to_kilograms(unit: str, kg: float) -> None:
    assert to_unit(1, unit, "kg") == pytest.approx(kg)


@pytest.mark.parametrize("unit", ["mg/dl", "MG/DL", "mg/DL"])
def test_a_code_ucum_cannot_read_as_sent_is_read_in_one_case(unit: str) -> None:
    assert to_unit(12, unit, "mg/dL") == pytest.approx(12)


@pytest.mark.parametrize("unit", ["", "   ", "not a unit", "U/L", "Cel", "{score}", "MG/dL"])
def test_what_does_not_convert_is_unknown(unit: str) -> None:
    # MG/dL is valid UCUM as sent (megagauss per decilitre): it keeps that meaning
    assert to_unit(12, unit, "mg/dL", molar_mass=CALCIUM) is None


def test_a_quantity_reads_its_ucum_code_then_its_text() -> None:
    ucum = "http://unitsofmeasure.org"
    assert quantity_in({"value": 2, "code": "mmol/L", "system": ucum}, "mmol/L") == 2
    assert quantity_in({"value": 2, "unit": "mmol/L"}, "mmol/L") == 2
    other_system = {"value": 2, "code": "MMOL", "system": "urn:local", "unit": "mmol/L"}
    assert quantity_in(other_system, "mmol/L") == 2
    assert quantity_in({"value": "2", "unit": "mmol/L"}, "mmol/L") is None
    assert quantity_in({"value": True, "unit": "mmol/L"}, "mmol/L") is None
    assert quantity_in(None, "mmol/L") is None
