"""Time in rules: windows relative to now (within, older_than) and anchors on other facts.

NOW is 2026-06-01T00:00Z. ``within: P90D`` reaches back to 2026-03-03T00:00Z; both window
edges are inclusive. ``after`` is inclusive (same day counts), ``before`` is strict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.kb.loader import Knowledge
from tests.unit.knowledge_tree import Tree, bone_pain, breast_cancer, fired, make_rule


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("engine-time")).load()


def _pain_fires(kb: Knowledge, query: dict[str, Any], resources: list[dict[str, Any]]) -> bool:
    rule = make_rule([{"condition": {"valueset": "bone-pain", **query}}])
    return fired(kb, rule, resources) is not None


@pytest.mark.parametrize(
    ("onset", "inside"),
    [
        ("2026-03-02", False),  # one day before the window opens
        ("2026-03-03", True),  # the first day of the window
        ("2026-03-04", True),
        ("2026-05-31", True),
        ("2026-03", False),  # a partial date is read as its first day: 2026-03-01
        ("2026-04", True),
        ("2026-03-03T01:00:00+02:00", False),  # 2026-03-02T23:00Z: just outside
        ("2026-03-02T23:00:00-02:00", True),  # 2026-03-03T01:00Z: just inside
        ("2026-03-03T00:00:00", True),  # no offset: read as UTC
    ],
)
def test_within_window_edges_and_time_zones(kb: Knowledge, onset: str, inside: bool) -> None:
    assert _pain_fires(kb, {"within": "P90D"}, [bone_pain(onset)]) is inside


@pytest.mark.parametrize(
    ("onset", "old_enough"),
    [("2025-06-01", True), ("2025-06-02", False), ("2024-01-01", True), ("2026-05-01", False)],
)
def test_older_than_edges(kb: Knowledge, onset: str, old_enough: bool) -> None:
    # P1Y is 365 days: 2025-06-01 is exactly one year before NOW
    assert _pain_fires(kb, {"older_than": "P1Y"}, [bone_pain(onset)]) is old_enough


def test_within_and_older_than_together_make_a_band(kb: Knowledge) -> None:
    query = {"within": "P12M", "older_than": "P30D"}
    assert _pain_fires(kb, query, [bone_pain("2026-01-01")])
    assert not _pain_fires(kb, query, [bone_pain("2026-05-20")])
    assert not _pain_fires(kb, query, [bone_pain("2025-01-01")])


def test_a_fact_without_a_date_never_passes_a_window(kb: Knowledge) -> None:
    assert _pain_fires(kb, {}, [bone_pain(None)])
    assert not _pain_fires(kb, {"within": "P90D"}, [bone_pain(None)])
    assert not _pain_fires(kb, {"older_than": "P1D"}, [bone_pain(None)])
    assert not _pain_fires(kb, {"within": "P90D"}, [bone_pain("not a date")])


def test_recorded_date_is_used_when_there_is_no_onset(kb: Knowledge) -> None:
    pain = bone_pain(None, recordedDate="2026-05-01")
    assert _pain_fires(kb, {"within": "P90D"}, [pain])
    # the onset wins over the recorded date
    old = bone_pain("2020-01-01", recordedDate="2026-05-01")
    assert not _pain_fires(kb, {"within": "P90D"}, [old])
    by_period = bone_pain(None, onsetPeriod={"start": "2026-05-01"})
    assert _pain_fires(kb, {"within": "P90D"}, [by_period])


AFTER_DX = {"after": {"first": "invasive-breast-cancer"}}


@pytest.mark.parametrize(
    ("pain_onset", "fires"),
    [("2019-03-03", False), ("2019-03-04", True), ("2019-03-05", True), ("2026-05-01", True)],
)
def test_after_first_anchor(kb: Knowledge, pain_onset: str, fires: bool) -> None:
    resources = [breast_cancer("2019-03-04"), bone_pain(pain_onset)]
    assert _pain_fires(kb, AFTER_DX, resources) is fires


def test_after_anchor_without_the_anchor_fact_does_not_hold(kb: Knowledge) -> None:
    assert not _pain_fires(kb, AFTER_DX, [bone_pain("2026-05-01")])


def test_an_undated_anchor_does_not_limit_and_the_fact_says_so(kb: Knowledge) -> None:
    """A breast cancer record without a date must not silence every new sign (issue 15)."""
    rule = make_rule([{"condition": {"valueset": "bone-pain", "within": "P90D", **AFTER_DX}}])
    result = fired(kb, rule, [breast_cancer(None), bone_pain("2026-05-01")])
    assert result is not None
    assert any("no date on record" in note for note in result.absent)
    # the window still applies, and an undated sign still never passes it
    assert fired(kb, rule, [breast_cancer(None), bone_pain("2025-05-01")]) is None
    assert fired(kb, rule, [breast_cancer(None), bone_pain(None)]) is None
    # one dated record is enough to anchor on, and then no note
    dated = fired(
        kb,
        rule,
        [breast_cancer(None), breast_cancer("2019-03-04", rid="bc2"), bone_pain("2026-05-01")],
    )
    assert dated is not None
    assert not dated.absent
    assert not _pain_fires(
        kb,
        AFTER_DX,
        [breast_cancer(None, rid="x"), breast_cancer("2026-05-10"), bone_pain("2026-05-01")],
    )


def test_first_and_last_anchor_pick_the_earliest_and_latest_anchor_dates(kb: Knowledge) -> None:
    resources = [
        breast_cancer("2015-01-01", rid="bc-old"),
        breast_cancer("2025-01-01", rid="bc-new"),
        bone_pain("2020-01-01"),
    ]
    assert _pain_fires(kb, {"after": {"first": "invasive-breast-cancer"}}, resources)
    assert not _pain_fires(kb, {"after": {"last": "invasive-breast-cancer"}}, resources)
    assert _pain_fires(kb, {"before": {"last": "invasive-breast-cancer"}}, resources)
    assert not _pain_fires(kb, {"before": {"first": "invasive-breast-cancer"}}, resources)


@pytest.mark.parametrize(
    ("pain_onset", "fires"),
    [("2019-04-02", False), ("2019-04-03", True), ("2019-05-01", True)],
)
def test_after_anchor_with_offset(kb: Knowledge, pain_onset: str, fires: bool) -> None:
    # 2019-03-04 + P30D = 2019-04-03
    query = {"after": {"first": "invasive-breast-cancer", "offset": "P30D"}}
    resources = [breast_cancer("2019-03-04"), bone_pain(pain_onset)]
    assert _pain_fires(kb, query, resources) is fires


@pytest.mark.parametrize(
    ("pain_onset", "fires"), [("2019-03-03", True), ("2019-03-04", False), ("2020-01-01", False)]
)
def test_before_anchor_is_strict(kb: Knowledge, pain_onset: str, fires: bool) -> None:
    query = {"before": {"first": "invasive-breast-cancer"}}
    resources = [breast_cancer("2019-03-04"), bone_pain(pain_onset)]
    assert _pain_fires(kb, query, resources) is fires


def test_before_anchor_with_offset_looks_back_from_the_anchor(kb: Knowledge) -> None:
    # "present more than a year before the diagnosis": before (first diagnosis) with no offset,
    # and a window anchored one year later with a positive offset
    resources = [breast_cancer("2019-03-04"), bone_pain("2019-02-01")]
    query = {"before": {"first": "invasive-breast-cancer", "offset": "P60D"}}
    assert _pain_fires(kb, query, resources)
    late = [breast_cancer("2019-03-04"), bone_pain("2019-06-01")]
    assert not _pain_fires(kb, query, late)


def test_window_and_anchor_combine(kb: Knowledge) -> None:
    query = {"within": "P90D", **AFTER_DX}
    assert _pain_fires(kb, query, [breast_cancer("2019-03-04"), bone_pain("2026-05-01")])
    assert not _pain_fires(kb, query, [breast_cancer("2026-05-10"), bone_pain("2026-05-01")])
    assert not _pain_fires(kb, query, [breast_cancer("2019-03-04"), bone_pain("2025-05-01")])


def test_now_is_injected_not_read_from_the_clock(kb: Knowledge) -> None:
    rule = make_rule([{"condition": {"valueset": "bone-pain", "within": "P90D"}}])
    pain = [bone_pain("2020-01-15")]
    assert fired(kb, rule, pain) is None
    assert fired(kb, rule, pain, now=datetime(2020, 2, 1, tzinfo=UTC)) is not None
