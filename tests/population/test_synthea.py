"""Every Synthea patient in ../shared through every non-order service, at a fixed date.

No patient may crash evaluation; patients without breast cancer get no cards (no rule is meant
for everyone); the two breast-cancer patients get what their records justify, recorded here.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from cds.call.request_builder import bundle_resources, read_json_file, request_from_resources
from cds.call.service_call import run_offline
from cds.kb.loader import Knowledge

pytestmark = [pytest.mark.shared, pytest.mark.slow]

NOW = datetime(2026, 11, 25, tzinfo=UTC)
HOOKS = ("patient-view", "encounter-start", "encounter-discharge")
BREAST_CANCER_PATIENTS = {
    # Both: breast cancer in remission, last mammogram in 2020, never smokers, not metastatic.
    # This one is 87: from 80 on the mammogram decision is individual, so no mammogram card.
    "44717d84-17d5-cefa-acf9-fe51fddc5d1c": {
        "patient-view": [],
        "encounter-start": ["when-to-call-education"],
        "encounter-discharge": [],
    },
    "dd92a3e7-d1db-c15a-f8fe-e3847b7f07b1": {
        "patient-view": ["mammogram-overdue-after-breast-cancer"],
        "encounter-start": ["mammogram-overdue-after-breast-cancer", "when-to-call-education"],
        "encounter-discharge": [],
    },
}


def _patients(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "data" / "synthea").glob("*.json.bz2") if "-" in p.stem)


def _rules_fired(knowledge: Knowledge, resources: list[dict[str, object]], hook: str) -> list[str]:
    fired: list[str] = []
    for service in knowledge.services_for(hook):
        body = request_from_resources(resources, service.prefetch, hook=hook, hook_instance="pop")
        result = run_offline(service, body, knowledge=knowledge, now=NOW)
        fired += [f.rule.id for f in result.fired]
    return sorted(fired)


def test_every_synthea_patient_gets_exactly_the_cards_its_record_justifies(
    shared_dir: Path, knowledge: Knowledge
) -> None:
    files = _patients(shared_dir)
    assert len(files) >= 120
    unexpected: dict[str, dict[str, list[str]]] = {}
    seen_breast_cancer = set()
    for path in files:
        resources = bundle_resources(read_json_file(path))
        if not any(r.get("resourceType") == "Patient" for r in resources):
            continue  # the practitioner/organisation bundle
        patient_id = path.name.removesuffix(".json.bz2")
        expected = BREAST_CANCER_PATIENTS.get(patient_id, {hook: [] for hook in HOOKS})
        if patient_id in BREAST_CANCER_PATIENTS:
            seen_breast_cancer.add(patient_id)
        for hook in HOOKS:
            got = _rules_fired(knowledge, resources, hook)
            if got != sorted(expected[hook]):
                unexpected.setdefault(patient_id, {})[hook] = got
    assert seen_breast_cancer == set(BREAST_CANCER_PATIENTS)
    assert unexpected == {}


@pytest.mark.parametrize("patient_id", sorted(BREAST_CANCER_PATIENTS))
def test_cds_evaluate_command_on_the_breast_cancer_patients(
    shared_dir: Path, patient_id: str
) -> None:
    path = shared_dir / "data" / "synthea" / f"{patient_id}.json.bz2"
    cds = str(Path(sys.executable).parent / "cds")
    run = subprocess.run(
        [cds, "evaluate", "--hook", "encounter-start", "--now", "2026-11-25", "--json", str(path)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    cards = orjson.loads(run.stdout)["cards"]
    rules = sorted(card["source"]["topic"]["code"] for card in cards)
    assert rules == BREAST_CANCER_PATIENTS[patient_id]["encounter-start"]
    for mammogram in (c for c in cards if "mammogram" in c["source"]["topic"]["code"]):
        assert "2020-" in mammogram["detail"]  # the explanation cites the last mammogram's date
