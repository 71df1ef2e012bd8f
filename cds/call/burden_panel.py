"""The burden a reviewer can see before go-live: a folder of FHIR Bundles run through every
non-order hook, each chart opened twice, into a temporary SQLite database whose burden report
(:mod:`cds.store.burden_report`) is then read: `cds evaluate --panel`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cds.call.request_builder import bundle_resources, read_json_file, request_from_resources
from cds.call.service_call import run_service
from cds.errors import BadRequest
from cds.kb.loader import Knowledge
from cds.protocol.wire import INDICATOR_RANK, HookRequest
from cds.settings import Settings
from cds.store.burden_report import BurdenReport, burden_report
from cds.store.call_log import StoreCallLog
from cds.store.protocol import CallLog
from cds.store.sql import open_store

__all__ = ["PANEL_HOOKS", "PanelResult", "run_panel"]

# Order hooks need draft orders a Bundle does not hold: the panel leaves them out.
PANEL_HOOKS = ("patient-view", "encounter-start", "encounter-discharge")


@dataclass
class PanelResult:
    """The report, and the checks the issue's "done" asks of a panel."""

    report: BurdenReport
    patients: int
    detail_lengths: list[int] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)  # "patient hook" with cards unsorted
    info_repeated: list[str] = field(default_factory=list)  # info cards seen on the 2nd open
    # (hook, opening) -> cards per chart for each patient; opening 1 or 2
    cards_per_open: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    @property
    def median_detail(self) -> float:
        return statistics.median(self.detail_lengths) if self.detail_lengths else 0.0

    def summary(self) -> str:
        lines = [f"patients: {self.patients}; each chart opened twice on " + ", ".join(PANEL_HOOKS)]
        for (hook, opening), counts in sorted(self.cards_per_open.items()):
            mean = sum(counts) / len(counts) if counts else 0.0
            lines.append(
                f"  {hook}, open {opening}: at most {max(counts, default=0)} cards, mean {mean:.2f}"
            )
        lines += [
            f"median card detail: {self.median_detail:.0f} characters "
            f"(longest {max(self.detail_lengths, default=0)})",
            "urgency order (critical, warning, info): "
            + ("always" if not self.out_of_order else "BROKEN in " + ", ".join(self.out_of_order)),
            "info cards repeated on the second open: "
            + (str(len(self.info_repeated)) if self.info_repeated else "none"),
        ]
        return "\n".join(lines)


def _bundles(folder: Path) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith((".json", ".json.bz2", ".json.gz"))
    )
    for path in paths:
        try:
            resources = bundle_resources(read_json_file(path))
        except BadRequest:
            continue  # not a Bundle: not a patient
        if any(r.get("resourceType") == "Patient" for r in resources):
            yield path.name, resources


def run_panel(knowledge: Knowledge, settings: Settings, folder: Path, now: datetime) -> PanelResult:
    """Every patient Bundle in ``folder`` through every panel hook, each chart opened twice."""
    if not folder.is_dir():
        raise BadRequest(f"{folder} is not a folder")
    with tempfile.TemporaryDirectory(prefix="cds-panel-") as scratch:
        panel_settings = settings.model_copy(
            update={"data_dir": Path(scratch), "database_url": None, "migrate_on_start": True}
        )
        panel_settings.__dict__.pop("sqlalchemy_url", None)  # a cached_property of the copy
        suppressing = [c for c, r in knowledge.override_reasons.items() if r.suppresses]
        store = open_store(panel_settings, suppressing)
        try:
            result = asyncio.run(
                _run_panel(knowledge, panel_settings, folder, now, StoreCallLog(store))
            )
            result.report = burden_report(store.engine, now, now + timedelta(seconds=1))
        finally:
            store.close()
    return result


async def _run_panel(
    knowledge: Knowledge, settings: Settings, folder: Path, now: datetime, call_log: CallLog
) -> PanelResult:
    result = PanelResult(report=BurdenReport(since=now, until=now), patients=0)
    for name, resources in _bundles(folder):
        result.patients += 1
        for hook in PANEL_HOOKS:
            first_info: set[str] = set()
            for opening in (1, 2):
                shown = 0
                for service in knowledge.services_for(hook):
                    body = request_from_resources(
                        resources,
                        service.prefetch,
                        hook=hook,
                        hook_instance=f"panel-{opening}-{hook}-{name}",
                    )
                    call = await run_service(
                        service,
                        HookRequest.model_validate(body),
                        knowledge=knowledge,
                        settings=settings,
                        fhir_transport=None,
                        now=now.replace(microsecond=opening),
                        call_log=call_log,
                    )
                    shown += len(call.cards)
                    ranks = [INDICATOR_RANK[card["indicator"]] for card in call.cards]
                    if ranks != sorted(ranks):
                        result.out_of_order.append(f"{name} {hook}")
                    keys = {f.key for f in call.findings if f.indicator == "info"}
                    if opening == 1:
                        first_info |= keys
                        result.detail_lengths += [len(c.get("detail", "")) for c in call.cards]
                    else:
                        result.info_repeated += sorted(
                            f"{name} {hook} {k}" for k in keys & first_info
                        )
                result.cards_per_open.setdefault((hook, opening), []).append(shown)
    return result
