"""What an operator meets starting and stopping `cds serve`: one-line errors, start-up and
shutdown log lines, the base URL of a non-default port, exit 0 on SIGTERM, and metrics that
add up across workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest

from tests.processes import CDS, REPO, TEST_PATIENT_HASH_KEY, free_port, start_cds, stop
from tests.trust.conftest import patient_view_request

pytestmark = pytest.mark.e2e

SERVICE = "breast-cancer-followup-patient-view"


def _cds(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return subprocess.run(
        [CDS, *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def no_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDS_PUBLIC_BASE_URL", raising=False)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CDS_MAX_BODY_BYTES": "abc"}, "CDS_MAX_BODY_BYTES='abc'"),
        ({"CDS_REQUIRE_JWT": "yes-please"}, "CDS_REQUIRE_JWT='yes-please'"),
        ({"CDS_LOG_LEVEL": "LOUD"}, "CDS_LOG_LEVEL='LOUD'"),
        ({"CDS_FHIR_TIMEOUT_SECONDS": "-1"}, "CDS_FHIR_TIMEOUT_SECONDS='-1'"),
        ({"CDS_PUBLIC_BASE_URL": "cds.hospital.example"}, "CDS_PUBLIC_BASE_URL="),
        ({"CDS_REQUIRE_JWT": "true"}, "CDS_PATIENT_HASH_KEY is the public default"),
        (
            {"CDS_DATABASE_URL": "postgres://nobody@127.0.0.1:{port}/none"},
            "the postgresql database named by CDS_DATABASE_URL does not answer",
        ),
    ],
)
def test_serve_refuses_to_start_with_one_line(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    env = {k: v.format(port=free_port()) for k, v in env.items()}
    if "CDS_DATABASE_URL" in env:
        env["CDS_PATIENT_HASH_KEY"] = TEST_PATIENT_HASH_KEY
    result = _cds("serve", "--port", str(free_port()), env={"CDS_DATA_DIR": str(tmp_path), **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert names in lines[0]


def test_secrets_generate_prints_a_fresh_strong_key() -> None:
    keys = [_cds("secrets", "generate", env={}).stdout.strip() for _ in range(2)]
    assert keys[0] != keys[1]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", key) for key in keys)  # 256 bits


def test_a_non_default_port_builds_card_links_that_answer(
    tmp_path: Path, no_base_url: None
) -> None:
    port = free_port()
    log = tmp_path / "cds.log"
    process = start_cds(port, {"CDS_DATA_DIR": str(tmp_path / "var")}, log_path=log)
    try:
        base = f"http://127.0.0.1:{port}"
        response = httpx.post(f"{base}/cds-services/{SERVICE}", json=patient_view_request())
        assert response.status_code == 200
        links = [link["url"] for card in response.json()["cards"] for link in card["links"]]
        assert links
        assert all(url.startswith(f"{base}/") for url in links), links
        for url in set(links):
            assert httpx.get(url).status_code == 200, url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        stop(process)
    events = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = next(e for e in events if e["event"] == "started")
    assert started["url"] == f"http://127.0.0.1:{port}"
    assert started["database"] == "sqlite"
    assert started["version"]
    assert re.fullmatch(r"[0-9a-f]{12}", started["knowledgeVersion"])
    assert [e["event"] for e in events][-2:] == ["stopping", "stopped"]


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_add_up_across_workers_and_sigterm_exits_0(tmp_path: Path, workers: int) -> None:
    port = free_port()
    process = start_cds(port, {"CDS_DATA_DIR": str(tmp_path / "var")}, workers=workers)
    base = f"http://127.0.0.1:{port}"
    calls = 12
    try:
        for _ in range(calls):
            # a new connection each time, so that both workers take calls
            response = httpx.post(f"{base}/cds-services/{SERVICE}", json=patient_view_request())
            assert response.status_code == 200
        for _ in range(4):  # every scrape, whichever worker answers it, sees every call
            text = httpx.get(f"{base}/metrics").text
            assert _counter(text, "cds_requests_total", route="service", status="200") == calls
            assert _counter(text, "process_resident_memory_bytes") > 0
            assert "cds_card_log_dropped_total" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        stop(process)
