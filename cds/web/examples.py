"""The patients the preview page offers: synthetic scenarios, rule cases and Synthea records.

- the project's own synthetic scenarios (:mod:`cds.fhir.scenarios`), dated relative to today;
- every rule case (``knowledge/rules/<id>.cases.yaml``), evaluated at its own fixed date;
- the Synthea bundles of ``CDS_SYNTHEA_DIR`` when that folder exists (developer machines and
  CI have it beside the repository; a fresh clone does not).

Listing Synthea patients reads only the head of each compressed file, once per process.
Finding which of them have breast cancer means reading each whole record (about ten seconds
for the 123 of ../shared), so one background thread per folder does it; until it is done the
list shows every Synthea patient in one group, then those with breast cancer in a group of
their own, marked.
"""

from __future__ import annotations

import bz2
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import date
from functools import cache, partial
from pathlib import Path
from typing import Any

from cds.call.request_builder import bundle_resources, read_json_file
from cds.call.rule_cases import CASE_NOW, case_resources
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge

__all__ = ["ExamplePatient", "example_catalogue", "synthea_with_breast_cancer"]

SCENARIO_GROUP = "Example patients (synthetic)"
CASE_GROUP = "Rule cases"
SYNTHEA_GROUP = "Synthea patients"
SYNTHEA_BREAST_CANCER_GROUP = "Synthea patients with breast cancer"
BREAST_CANCER_VALUESET = "breast-cancer-invasive"
_HEAD_BYTES = 24_000
_FIELD = {
    "family": re.compile(rb'"family"\s*:\s*"([^"\\]{1,60})"'),
    "given": re.compile(rb'"given"\s*:\s*\[\s*"([^"\\]{1,60})"'),
    "gender": re.compile(rb'"gender"\s*:\s*"([a-z]{1,10})"'),
    "birthDate": re.compile(rb'"birthDate"\s*:\s*"(\d{4})'),
}


@dataclass(frozen=True)
class ExamplePatient:
    """One patient to preview; ``load`` returns its FHIR resources."""

    key: str
    group: str
    title: str
    description: str
    load: Callable[[], list[dict[str, Any]]]
    as_of: date | None = None
    hook: str | None = None
    draft_orders: tuple[dict[str, Any], ...] = ()


def _scenarios(today: date) -> list[ExamplePatient]:
    return [
        ExamplePatient(
            key=f"scenario:{scenario.id}",
            group=SCENARIO_GROUP,
            title=scenario.title,
            description=scenario.description,
            load=partial(bundle_resources, scenario.bundle),
        )
        for scenario in example_patients(now=today)
    ]


def _cases(knowledge: Knowledge) -> list[ExamplePatient]:
    out = []
    for rule_id, cases in sorted(knowledge.cases.items()):
        rule = knowledge.rules.get(rule_id)
        if rule is None:
            continue
        for case in cases:
            out.append(
                ExamplePatient(
                    key=f"case:{rule_id}:{case.name}",
                    group=CASE_GROUP,
                    title=f"{rule_id}: {case.name}",
                    description=case.description,
                    load=partial(case_resources, knowledge, case),
                    as_of=case.now or CASE_NOW,
                    hook=case.hook or rule.hooks[0],
                    draft_orders=case.draft_orders,
                )
            )
    return out


def _synthea_label(path: Path) -> tuple[str, str] | None:
    """(title, description) from the Patient at the head of a Synthea bundle, or None."""
    try:
        with bz2.open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except (OSError, EOFError, ValueError):
        return None
    if b'"resourceType": "Patient"' not in head and b'"resourceType":"Patient"' not in head:
        return None
    found = {name: pattern.search(head) for name, pattern in _FIELD.items()}
    values = {name: m.group(1).decode() if m else "" for name, m in found.items()}
    name = " ".join(part for part in (values["given"], values["family"]) if part)
    title = f"{name or path.name.split('.')[0]} ({values['gender'] or 'sex unknown'}"
    title += f", born {values['birthDate']})" if values["birthDate"] else ")"
    return title, f"Synthea record {path.name}"


def _load_synthea(path: Path) -> list[dict[str, Any]]:
    return bundle_resources(read_json_file(path))


@cache
def _synthea(folder: Path) -> tuple[ExamplePatient, ...]:
    out = []
    for path in sorted(folder.glob("*.json.bz2")):
        label = _synthea_label(path)
        if label is None:
            continue
        out.append(
            ExamplePatient(
                key=f"synthea:{path.name.removesuffix('.json.bz2')}",
                group=SYNTHEA_GROUP,
                title=label[0],
                description=label[1],
                load=partial(_load_synthea, path),
            )
        )
    return tuple(out)


def _holds_any(path: Path, needles: re.Pattern[bytes]) -> bool:
    try:
        with bz2.open(path, "rb") as handle:
            return needles.search(handle.read()) is not None
    except (OSError, EOFError, ValueError):
        return False


def _scan(paths: tuple[Path, ...], codes: frozenset[str]) -> frozenset[str]:
    needles = re.compile(b"|".join(b'"' + re.escape(c.encode()) + b'"' for c in sorted(codes)))
    return frozenset(p.name.removesuffix(".json.bz2") for p in paths if _holds_any(p, needles))


@cache
def _breast_cancer_scan(folder: Path, codes: frozenset[str]) -> Future[frozenset[str]]:
    """Start the scan in a daemon thread (a process that stops does not wait for it)."""
    paths = tuple(sorted(folder.glob("*.json.bz2")))
    future: Future[frozenset[str]] = Future()

    def run() -> None:
        try:
            future.set_result(_scan(paths, codes))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="synthea-scan", daemon=True).start()
    return future


def _breast_cancer_codes(knowledge: Knowledge) -> frozenset[str]:
    """The codes a record's breast cancer is written with: the value set's exact codes (a
    marker on a list, so a quoted code anywhere in the record counts)."""
    valueset = knowledge.valuesets.get(BREAST_CANCER_VALUESET)
    return frozenset(code for _, code in valueset.codes) if valueset else frozenset()


def synthea_with_breast_cancer(
    knowledge: Knowledge, folder: Path, *, wait: bool = False
) -> frozenset[str] | None:
    """Names (less ``.json.bz2``) of the Synthea records with a breast cancer code; None while
    the background scan is still looking."""
    future = _breast_cancer_scan(folder.resolve(), _breast_cancer_codes(knowledge))
    return future.result() if wait or future.done() else None


def _marked(patients: Iterable[ExamplePatient], found: frozenset[str]) -> list[ExamplePatient]:
    with_cancer, others = [], []
    for patient in patients:
        if patient.key.removeprefix("synthea:") in found:
            with_cancer.append(
                replace(
                    patient,
                    group=SYNTHEA_BREAST_CANCER_GROUP,
                    title=f"{patient.title} · breast cancer",
                )
            )
        else:
            others.append(patient)
    return with_cancer + others


def example_catalogue(
    knowledge: Knowledge, synthea_dir: Path | None, today: date, *, wait: bool = False
) -> list[ExamplePatient]:
    """Every patient the preview offers, in display order (``wait``: for the Synthea scan)."""
    examples = _scenarios(today) + _cases(knowledge)
    if synthea_dir is not None and synthea_dir.is_dir():
        synthea = _synthea(synthea_dir.resolve())
        found = synthea_with_breast_cancer(knowledge, synthea_dir, wait=wait)
        examples += _marked(synthea, found) if found is not None else synthea
    return examples
