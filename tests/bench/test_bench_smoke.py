"""The benchmark runs end to end with tiny counts (no timing is asserted: CI machines are noisy)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench.load import run_load
from bench.run import BEGIN, END, Process, free_port, main, write_doc


def _rows(markdown: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


@pytest.mark.e2e
def test_smoke_run_writes_a_table_with_every_workload_and_no_errors(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text(f"# Benchmarks\n\nanalysis above\n\n{BEGIN}\nold\n{END}\n\nanalysis below\n")
    assert main(["--smoke", "--loadgen", "python", "--out", str(out)]) == 0
    text = out.read_text()
    assert "analysis above" in text
    assert "analysis below" in text
    assert "\nold\n" not in text
    rows = _rows(text.split(BEGIN)[1].split(END)[0])
    measured = [row for row in rows if row[0] in ("small", "large", "fallback", "order-sign")]
    assert {row[0] for row in measured} >= {"small", "large", "fallback"}
    assert {row[2] for row in measured} >= {"service", "ceiling", "service, 2 workers"}
    for row in measured:
        if row[2] != "**service ÷ ceiling**":
            assert row[-1] == "0", row  # no failed request
            assert float(row[5].replace(",", "")) > 0, row  # req/s at one connection
    verdicts = [row for row in rows if len(row) == 4 and row[0] != "target"]
    assert len(verdicts) == 8
    assert all(row[3] in ("met", "not measured") or "missed" in row[3] for row in verdicts)


def test_write_doc_creates_the_file_when_missing(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    write_doc(out, "| a |")
    assert out.read_text() == f"# Benchmarks\n\n{BEGIN}\n| a |\n{END}\n"
    write_doc(out, "| b |")
    assert "| b |" in out.read_text()
    assert "| a |" not in out.read_text()


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_posts_the_body_and_counts_failed_requests(tmp_path: Path) -> None:
    (tmp_path / "response.json").write_bytes(b'{"cards":[]}')
    good = tmp_path / "good.json"
    good.write_bytes(b'{"hook":"patient-view"}')
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"[1]")  # not an object: the ceiling answers 422
    port = free_port()
    ceiling = Process(
        "ceiling",
        [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--response",
            str(tmp_path / "response.json"),
            "--port",
            str(port),
        ],
        port,
        "/cds-services",
        dict(os.environ),
        tmp_path / "ceiling.log",
    )
    url = f"{ceiling.base}/cds-services/x"
    try:
        ceiling.start()
        ok = run_load(url, good, connections=1, max_requests=10, max_seconds=1, tool="wrk")
        failed = run_load(url, bad, connections=1, max_requests=5, max_seconds=1, tool="wrk")
    finally:
        ceiling.stop()
    assert ok.requests >= 10
    assert ok.errors == 0
    assert ok.p50_ms > 0
    assert failed.requests >= 5
    assert failed.errors == failed.requests


def test_a_plain_run_writes_an_untracked_file_and_only_update_docs_the_tracked_page() -> None:
    import subprocess

    from bench.run import DEFAULT_OUT, REPO

    ignored = subprocess.run(["git", "check-ignore", "-q", str(DEFAULT_OUT)], cwd=REPO, check=False)
    assert ignored.returncode == 0  # git ignores it: `make bench` leaves the tree clean
    plain = subprocess.run(
        ["make", "-n", "bench"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    asked = subprocess.run(
        ["make", "-n", "bench", "UPDATE_DOCS=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "docs/benchmarks.md" not in plain
    assert "--out docs/benchmarks.md" in asked
