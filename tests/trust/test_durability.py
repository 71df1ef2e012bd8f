"""Feedback is never lost: kill -9 a real `cds serve` while feedback is being posted; after a
restart every item that got a 2xx is in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from cds.store.sql import feedback
from tests.hardening.db_integrity import postgres_integrity_problems
from tests.processes import free_port, start_cds, stop
from tests.trust.conftest import PATIENT_VIEW_SERVICE

pytestmark = pytest.mark.e2e

WORKERS = 3
KILL_AFTER = 120  # acknowledged items before the kill
MAX_PER_WORKER = 2000
DEADLINE_SECONDS = 60.0


def item(card: str) -> dict[str, object]:
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {
            "reason": {"system": "urn:test", "code": "already-addressed", "display": "Done"}
        },
        "outcomeTimestamp": "2026-03-01T10:00:00Z",
    }


def post_until_killed(tmp_path: Path, env: dict[str, str]) -> tuple[set[str], list[str]]:
    """Post feedback from several threads; kill -9 the server once enough were acknowledged.

    Returns the acknowledged card ids and any unexpected answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_cds(port, env, log_path=tmp_path / "server.log")
    acknowledged: set[str] = set()
    unexpected: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def poster(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            for n in range(MAX_PER_WORKER):
                if killed.is_set():
                    return
                card = f"w{worker}-{n}"
                try:
                    answer = http.post(
                        f"/cds-services/{PATIENT_VIEW_SERVICE}/feedback",
                        json={"feedback": [item(card)]},
                    )
                except httpx.HTTPError:
                    return  # the server is gone: this item was never acknowledged
                with lock:
                    if answer.status_code == 200:
                        acknowledged.add(card)
                    else:
                        unexpected.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=poster, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while time.monotonic() < deadline and server.poll() is None:
            with lock:
                if len(acknowledged) >= KILL_AFTER:
                    break
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-way: the posters are still sending
        server.wait(timeout=30)
    finally:
        killed.set()
        for thread in threads:
            thread.join(timeout=30)
        stop(server)
    return acknowledged, unexpected


def stored_cards(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(select(feedback.c.card_uuid))]
    finally:
        engine.dispose()


def check_after_restart(tmp_path: Path, env: dict[str, str], acknowledged: set[str]) -> None:
    port = free_port()
    server = start_cds(port, env, log_path=tmp_path / "server-restarted.log")
    try:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200
        again = httpx.post(
            f"http://127.0.0.1:{port}/cds-services/{PATIENT_VIEW_SERVICE}/feedback",
            json={"feedback": [item(sorted(acknowledged)[0])]},
            timeout=10,
        )
        assert again.json() == {"received": 1, "new": 0}  # still idempotent after the crash
    finally:
        stop(server)


def test_sqlite_keeps_every_acknowledged_item(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = {"CDS_DATA_DIR": str(data_dir)}
    acknowledged, unexpected = post_until_killed(tmp_path, env)
    assert unexpected == []
    assert len(acknowledged) >= KILL_AFTER
    url = f"sqlite:///{data_dir / 'cds.sqlite3'}"
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
    stored = stored_cards(url)
    assert len(stored) == len(set(stored))
    assert acknowledged <= set(stored), sorted(acknowledged - set(stored))[:10]
    check_after_restart(tmp_path, env, acknowledged)


@pytest.mark.postgres
def test_postgresql_keeps_every_acknowledged_item(tmp_path: Path, postgres_url: str) -> None:
    env = {
        "CDS_DATA_DIR": str(tmp_path / "var"),
        "CDS_DATABASE_URL": postgres_url,
        "CDS_REQUIRE_JWT": "false",
    }
    acknowledged, unexpected = post_until_killed(tmp_path, env)
    assert unexpected == []
    assert len(acknowledged) >= KILL_AFTER
    url = "postgresql+psycopg://" + postgres_url.removeprefix("postgresql://")
    assert postgres_integrity_problems(url) == []  # heap and B-tree indexes (amcheck)
    stored = stored_cards(url)
    assert len(stored) == len(set(stored))
    assert acknowledged <= set(stored), sorted(acknowledged - set(stored))[:10]
    check_after_restart(tmp_path, env, acknowledged)
