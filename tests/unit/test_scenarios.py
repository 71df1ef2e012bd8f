"""The synthetic example patients: deterministic, valid FHIR R4, and usable by `cds evaluate`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds.cli import main
from cds.fhir.scenarios import Scenario, example_patients, large_patient

NOW = date(2026, 3, 15)
REQUIRED = {
    "breast-cancer-new-back-pain",
    "male-breast-cancer-bone-metastasis",
    "survivor-overdue-mammogram-smoker",
    "carcinoma-in-situ-only",
    "no-cancer",
}


def _dump(scenarios: list[Scenario]) -> bytes:
    return orjson.dumps([(s.id, s.title, s.description, s.bundle) for s in scenarios])


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def _dates(value: Any) -> list[str]:
    """Every string that looks like an ISO date anywhere in ``value``."""
    if isinstance(value, dict):
        return [d for item in value.values() for d in _dates(item)]
    if isinstance(value, list):
        return [d for item in value for d in _dates(item)]
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return [value[:10]]
    return []


def test_the_same_seed_gives_the_same_bundles() -> None:
    assert _dump(example_patients(NOW, seed=7)) == _dump(example_patients(NOW, seed=7))
    assert _dump(example_patients(NOW, seed=7)) != _dump(example_patients(NOW, seed=8))


def test_every_required_scenario_is_there_once() -> None:
    ids = [s.id for s in example_patients(NOW)]
    assert len(ids) == len(set(ids))
    assert set(ids) >= REQUIRED


@pytest.mark.parametrize("seed", [7, 11])
def test_bundles_are_valid_fhir_r4(seed: int) -> None:
    for scenario in example_patients(NOW, seed=seed):
        bundle = scenario.bundle
        assert bundle["type"] == "collection"
        get_fhir_model_class("Bundle").model_validate(bundle)
        resources = _resources(bundle)
        patients = [r for r in resources if r["resourceType"] == "Patient"]
        assert len(patients) == 1, scenario.id
        ids = [r["id"] for r in resources]
        assert len(ids) == len(set(ids)), scenario.id
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            subject = resource.get("subject")
            if subject is not None:
                assert subject == {"reference": f"Patient/{patients[0]['id']}"}


def test_dates_are_relative_to_now_and_never_in_the_future() -> None:
    early = example_patients(date(2025, 1, 1))
    late = example_patients(date(2027, 1, 1))
    for scenario in late:
        assert max(_dates(scenario.bundle)) <= "2027-01-01"
    assert max(d for s in early for d in _dates(s.bundle)) <= "2025-01-01"
    assert min(d for s in late for d in _dates(s.bundle)) > min(
        d for s in early for d in _dates(s.bundle)
    )


def test_large_patient_has_exactly_the_requested_size_and_is_valid() -> None:
    bundle = large_patient(300, seed=3, now=NOW)
    assert len(bundle["entry"]) == 300
    assert orjson.dumps(bundle) == orjson.dumps(large_patient(300, seed=3, now=NOW))
    get_fhir_model_class("Bundle").model_validate(bundle)
    with pytest.raises(ValueError, match="at least"):
        large_patient(3)


def _evaluate(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["evaluate", str(path), "--json", "--now", NOW.isoformat()]) == 0
    cards: list[dict[str, Any]] = orjson.loads(capsys.readouterr().out)["cards"]
    return cards


def test_generate_writes_bundles_that_evaluate_runs_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", str(tmp_path), "--seed", "5", "--now", NOW.isoformat()]) == 0
    capsys.readouterr()
    written = {path.stem: path for path in tmp_path.glob("*.json")}
    assert set(written) == {s.id for s in example_patients(NOW, seed=5)}
    assert orjson.loads(written["no-cancer"].read_bytes()) == next(
        s.bundle for s in example_patients(NOW, seed=5) if s.id == "no-cancer"
    )
    fired = {
        name: [c["source"]["topic"]["code"] for c in _evaluate(path, capsys)]
        for name, path in written.items()
    }
    assert "bone-pain-after-breast-cancer" in fired["breast-cancer-new-back-pain"]
    assert "bone-pain-after-breast-cancer" not in fired["carcinoma-in-situ-only"]
    assert fired["no-cancer"] == []
