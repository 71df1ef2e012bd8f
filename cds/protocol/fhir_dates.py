"""FHIR date, dateTime and instant values as comparable UTC datetimes.

FHIR allows partial dates (``2020``, ``2020-05``) and date-times with or without an offset.
We read each as the start of the period it names, in UTC (a value without an offset is read
as UTC). Garbage gives ``None``: a resource with an unreadable date simply has no date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = ["first_date", "parse_duration", "parse_fhir_datetime"]

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


# value -> parsed. A record repeats dates (a day's vitals, a course of treatment), and so do
# consecutive calls for one patient; parsing is a pure function of the text.
_PARSED: dict[str, datetime | None] = {}
_PARSED_LIMIT = 20_000  # a few large records; about 4 MB at most


def parse_fhir_datetime(value: Any) -> datetime | None:
    """Return the start of the period ``value`` names, as an aware UTC datetime, or None."""
    if not isinstance(value, str):
        return None
    try:
        return _PARSED[value]
    except KeyError:
        pass
    parsed = _parse(value)
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[value] = parsed
    return parsed


def _parse(value: str) -> datetime | None:
    if not 4 <= len(value) <= 40:
        return None
    match = _PARTIAL.match(value)
    try:
        if match:
            year, month, day = match.groups()
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or one with no UTC equivalent
        return None


@lru_cache(maxsize=256)
def parse_duration(text: str) -> timedelta:
    """Parse the ISO 8601 durations rules use (``P90D``, ``P12M``, ``P1Y``, ``P2W``).

    Months count as 30 days and years as 365: windows are clinical look-backs, not calendar
    arithmetic. Raises ValueError on anything else.
    """
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        raise ValueError(f"not an ISO 8601 duration like P90D: {text!r}")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=years * 365 + months * 30 + weeks * 7 + days)


def first_date(resource: dict[str, Any], paths: Iterable[tuple[str, ...]]) -> datetime | None:
    """The first readable date along ``paths`` (element names, outermost first), or None.

    Which paths a resource type's date is read from is the fact kinds' business
    (:func:`cds.kb.fact_kinds.resource_date`)."""
    for path in paths:
        value: Any = resource
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        parsed = parse_fhir_datetime(value)
        if parsed is not None:
            return parsed
    return None
