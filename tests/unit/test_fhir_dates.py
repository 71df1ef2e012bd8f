"""FHIR dates: partial dates, time zones, garbage; ISO durations; which date a resource has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds.kb.fact_kinds import resource_date
from cds.protocol.fhir_dates import parse_duration, parse_fhir_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020", datetime(2020, 1, 1, tzinfo=UTC)),
        ("2020-05", datetime(2020, 5, 1, tzinfo=UTC)),
        ("2020-05-07", datetime(2020, 5, 7, tzinfo=UTC)),
        ("2020-05-07T10:30:00Z", datetime(2020, 5, 7, 10, 30, tzinfo=UTC)),
        ("2020-05-07T10:30:00.123Z", datetime(2020, 5, 7, 10, 30, 0, 123000, tzinfo=UTC)),
        ("2020-05-07T10:30:00+02:00", datetime(2020, 5, 7, 8, 30, tzinfo=UTC)),
        ("2020-05-07T22:30:00-05:00", datetime(2020, 5, 8, 3, 30, tzinfo=UTC)),
        ("2020-05-07T10:30:00", datetime(2020, 5, 7, 10, 30, tzinfo=UTC)),  # no offset: UTC
        ("2016-02-29", datetime(2016, 2, 29, tzinfo=UTC)),
    ],
)
def test_parse_fhir_datetime(text: str, expected: datetime) -> None:
    parsed = parse_fhir_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "20",
        "yesterday",
        "2021-02-29",  # not a leap year
        "2020-13",
        "2020-05-32",
        "2020-05-07T25:00:00Z",
        "2020-05-07T10:30:00+02:00" + "0" * 30,  # too long
        20200507,
        ["2020-05-07"],
        {"start": "2020"},
    ],
)
def test_unreadable_dates_are_none(value: Any) -> None:
    assert parse_fhir_datetime(value) is None


@pytest.mark.parametrize(
    ("text", "days"),
    [("P90D", 90), ("P2W", 14), ("P12M", 360), ("P1Y", 365), ("P1Y6M", 545), ("P1Y2W3D", 382)],
)
def test_parse_duration(text: str, days: int) -> None:
    assert parse_duration(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["90D", "P", "PT1H", "P1.5Y", "p90d", "P-1D", "", "P90D "])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {"resourceType": "Condition", "onsetDateTime": "2020-01-02", "recordedDate": "2021"},
            "2020-01-02",
        ),
        ({"resourceType": "Condition", "onsetPeriod": {"start": "2020-03"}}, "2020-03-01"),
        (
            {"resourceType": "Condition", "onsetString": "childhood", "recordedDate": "2021"},
            "2021-01-01",
        ),
        (
            {"resourceType": "Condition", "onsetDateTime": "garbage", "recordedDate": "2021"},
            "2021-01-01",
        ),
        ({"resourceType": "Observation", "effectiveDateTime": "2020-01-02"}, "2020-01-02"),
        ({"resourceType": "Observation", "effectivePeriod": {"start": "2020-01-03"}}, "2020-01-03"),
        ({"resourceType": "Observation", "issued": "2020-01-04T00:00:00Z"}, "2020-01-04"),
        ({"resourceType": "MedicationRequest", "authoredOn": "2020-01-05"}, "2020-01-05"),
        ({"resourceType": "MedicationStatement", "dateAsserted": "2020-01-06"}, "2020-01-06"),
        (
            {
                "resourceType": "MedicationAdministration",
                "effectivePeriod": {"start": "2020-01-07"},
            },
            "2020-01-07",
        ),
        ({"resourceType": "Procedure", "performedPeriod": {"start": "2020-01-08"}}, "2020-01-08"),
        ({"resourceType": "DocumentReference", "date": "2020-01-09T12:00:00Z"}, "2020-01-09"),
        ({"resourceType": "ResearchSubject", "period": {"start": "2020-01-10"}}, "2020-01-10"),
        ({"resourceType": "ServiceRequest", "occurrenceDateTime": "2020-01-11"}, "2020-01-11"),
        ({"resourceType": "Condition"}, None),
        ({"resourceType": "Condition", "onsetPeriod": "2020"}, None),
        ({"resourceType": "Basic", "created": "2020-01-01"}, None),
        ({"onsetDateTime": "2020-01-01"}, None),
    ],
)
def test_resource_date(resource: dict[str, Any], expected: str | None) -> None:
    found = resource_date(resource)
    assert (found.date().isoformat() if found else None) == expected


def test_a_time_with_no_utc_equivalent_reads_as_no_date() -> None:
    assert parse_fhir_datetime("0001-01-01T00:00:00+01:00") is None
    assert parse_fhir_datetime("9999-12-31T23:59:59-01:00") is None
