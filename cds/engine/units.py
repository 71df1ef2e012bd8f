"""Quantities compared by their UCUM units, never as raw numbers.

A rule's threshold names a UCUM unit (``value: {gt: 10.5, unit: mg/dL}``). A FHIR Quantity in
another unit is converted to it through UCUM (the ``ucumvert`` grammar on ``pint``), so
2.7 mmol/L calcium and 10.8 mg/dL calcium compare alike, and so do 150 [lb_av] and 68 kg.
What cannot be converted is *unknown*: :func:`to_unit` answers None and the test does not
hold. A number is never compared with a threshold in a unit it does not carry.

How a unit is read (documented in ``docs/record-reading.md``):

- ``Quantity.code`` (the UCUM code) first, then ``Quantity.unit`` (the human-readable text).
- UCUM codes are case-sensitive; EHRs often send them in one case (``mg/dl``, ``MG/DL``). The
  code as sent is read first; only when UCUM cannot read it at all is it tried in lower case,
  then in upper case (``MG/DL`` reads as ``mg/dl``, which is UCUM for mg/dL). A code that is
  valid UCUM as sent keeps its meaning: ``u/l`` is atomic mass units per litre, which converts
  to no enzyme activity, so a threshold in U/L treats it as unknown.
- A few common non-UCUM spellings of a unit (``lb``, ``lbs``) are mapped to their UCUM code.
- Mass and amount of substance convert into each other only for an analyte whose molar mass is
  listed here (:data:`MOLAR_MASS`), keyed by the value set the fact queries.
- Results are cached per (unit, target, molar mass): the conversion factor is computed once
  per process for each distinct spelling, so the hot path multiplies floats.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from typing import Any

__all__ = ["MOLAR_MASS", "UCUM", "quantity_in", "to_unit", "warm"]

_log = logging.getLogger(__name__)

UCUM = "http://unitsofmeasure.org"

# Molar masses (g/mol) of analytes whose labs are reported both as mass and as amount of
# substance, keyed by the value set id a fact queries. Calcium: standard atomic weight 40.078
# (IUPAC, CIAAW 2021), rounded to 40.08 as clinical chemistry uses it (1 mmol/L = 4.008 mg/dL).
MOLAR_MASS: dict[str, float] = {
    "calcium": 40.08,
    "ionized-calcium": 40.08,
}

# Spellings that are not UCUM but mean one UCUM unit beyond doubt.
_NON_UCUM: dict[str, str] = {
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "pound": "[lb_av]",
    "pounds": "[lb_av]",
    "kgs": "kg",
}


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # type: ignore[import-untyped]

    return PintUcumRegistry()


def warm() -> None:
    """Build the UCUM registry now (about half a second) rather than in the first call."""
    _registry()
    to_unit(1.0, "mg/dL", "mmol/L", molar_mass=MOLAR_MASS["calcium"])


def _parse(code: str) -> Any:
    registry = _registry()
    try:
        return registry.Quantity(1, registry.from_ucum(code))
    except Exception:  # ucumvert raises its own, lark's or pint's errors for what it cannot read
        return None


@lru_cache(maxsize=4096)
def _factor(unit: str, target: str, molar_mass: float | None) -> float | None:
    """The number that turns a value in ``unit`` into one in ``target``; None if none does."""
    goal = _parse(target)
    if goal is None:
        return None
    source = _read(unit)
    if source is None:
        return None
    registry = _registry()
    try:
        if source.dimensionality == goal.dimensionality:
            return float((source / goal).to("dimensionless").magnitude)
        if molar_mass is not None:
            per_mole = registry.Quantity(molar_mass, "g/mol")
            for converted in (source * per_mole, source / per_mole):
                if converted.dimensionality == goal.dimensionality:
                    return float((converted / goal).to("dimensionless").magnitude)
    except Exception:  # offset units (Cel, [degF]) and the like: not multiplicative
        _log.debug("unit %r does not convert to %r", unit, target)
    return None


def _read(unit: str) -> Any:
    """``unit`` as UCUM reads it: as sent, else (only when that is not UCUM at all) in lower
    case, then in upper case, else its UCUM code if it is a known non-UCUM spelling. A code
    that UCUM reads as sent is never re-cased: ``u/l`` stays atomic mass units per litre."""
    text = unit.strip()
    for spelling in (text, text.lower(), text.upper(), _NON_UCUM.get(text.lower())):
        if spelling:
            parsed = _parse(spelling)
            if parsed is not None:
                return parsed
    return None


def to_unit(
    value: float, unit: str | None, target: str, *, molar_mass: float | None = None
) -> float | None:
    """``value`` (in ``unit``) expressed in ``target``; None when that cannot be known."""
    if not unit:
        return None
    factor = _factor(unit, target, molar_mass)
    return None if factor is None else value * factor


def quantity_in(quantity: Any, target: str, *, molar_mass: float | None = None) -> float | None:
    """A FHIR Quantity's value in ``target`` units, or None (no value, no convertible unit).

    ``Quantity.code`` is tried first when its system is UCUM or absent, then ``Quantity.unit``.
    """
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    system = quantity.get("system")
    for key in ("code", "unit"):
        unit = quantity.get(key)
        if key == "code" and system not in (None, UCUM):
            continue
        if isinstance(unit, str):
            converted = to_unit(float(value), unit, target, molar_mass=molar_mass)
            if converted is not None:
                return converted
    return None
