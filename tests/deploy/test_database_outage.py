"""The database goes away while the service is under load, and comes back.

PostgreSQL: a loopback TCP proxy stands between `cds serve` and the server, and is cut in the
middle of a stream of hook calls. SQLite: the database file stops growing (SQLite's page limit,
the same SQLITE_FULL a full disk gives), or refuses every write as a read-only one would.
Either way hook calls keep answering with cards (the
card log keeps them in memory), feedback is a 503 OperationOutcome (never a 2xx for data not
stored), /readyz is not ready; when the database is back everything recovers without a
restart, and the cards shown during the outage reach the card log.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.settings import Settings
from tests.processes import free_port, start_cds, stop
from tests.trust.conftest import patient_view_request, postgres_available, postgres_url

__all__ = ["postgres_available", "postgres_url"]  # fixtures used by this module

SERVICE = "breast-cancer-followup-patient-view"


class TcpProxy:
    """Forwards a loopback port to another; ``cut`` closes everything, ``restore`` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _feedback(card: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat()
    return {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": stamp}]}


def _call(http: httpx.Client | TestClient, base: str = "") -> list[str]:
    """One chart open of a new patient: every call shows a card (a warning is not shown to the
    same patient twice in a day, see cds.call.repeat_limits)."""
    patient = f"outage-{uuid.uuid4().hex[:12]}"
    response = http.post(
        f"{base}/cds-services/{SERVICE}", json=patient_view_request(patient_id=patient)
    )
    assert response.status_code == 200, response.text
    cards = [card["uuid"] for card in response.json()["cards"]]
    assert cards
    return cards


def _wait_ready(http: httpx.Client | TestClient, base: str = "", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get(f"{base}/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the service did not become ready again")


def _assert_outage(http: httpx.Client | TestClient, card: str, base: str = "") -> None:
    response = http.post(f"{base}/cds-services/{SERVICE}/feedback", json=_feedback(card))
    assert response.status_code == 503, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    ready = http.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert ready.json()["resourceType"] == "OperationOutcome"


@pytest.mark.e2e
@pytest.mark.postgres
def test_postgresql_cut_mid_load_and_back(tmp_path: Path, postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    port = free_port()
    process = start_cds(port, {"CDS_DATABASE_URL": proxied, "CDS_DATA_DIR": str(tmp_path)})
    base = f"http://127.0.0.1:{port}"
    shown: list[str] = []
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(5):
                shown += _call(http)
            assert http.get("/readyz").json()["database"] == "postgresql"
            proxy.cut()
            during: list[str] = []
            for _ in range(20):  # the load goes on: every call is answered with its cards
                during += _call(http)
            _assert_outage(http, during[0])
            for _ in range(5):
                during += _call(http)
            proxy.restore()
            _wait_ready(http)
            response = http.post(f"/cds-services/{SERVICE}/feedback", json=_feedback(during[0]))
            assert response.status_code == 200, response.text
            assert response.json() == {"received": 1, "new": 1}
            shown += during
            metrics = http.get("/metrics").text
            assert "cds_card_log_dropped_total 0.0" in metrics
    finally:
        stop(process)
        proxy.cut()
    engine = create_engine("postgresql+psycopg://" + postgres_url.removeprefix("postgresql://"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT card_uuid FROM shown_cards"))
            logged = {row[0] for row in rows}
            hook_instance = connection.execute(
                text("SELECT hook_instance FROM feedback WHERE card_uuid = :c"), {"c": during[0]}
            ).scalar()
    finally:
        engine.dispose()
    assert set(shown) <= logged  # the cards shown during the outage were written afterwards
    assert hook_instance is not None  # and the feedback found its card


@pytest.fixture
def sqlite_app(tmp_path: Path, knowledge: Knowledge) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "var", require_jwt=False, cors_origins="")
    with TestClient(create_app(settings, knowledge=knowledge)) as client:
        yield client


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_sqlite_full_or_read_only_mid_load_and_back(sqlite_app: TestClient, fault: str) -> None:
    runtime = sqlite_app.app.state.runtime  # type: ignore[attr-defined]
    engine = runtime.database.engine
    shown = _call(sqlite_app)
    runtime.store.flush()

    def no_growth(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if fault == "full":  # a full disk, as SQLite sees it (SQLITE_FULL)
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
        else:  # every write refused (SQLITE_READONLY), reads still answered
            cursor.execute("PRAGMA query_only = ON")
        cursor.close()

    event.listen(engine, "connect", no_growth)
    engine.dispose()  # new connections: each one full
    try:
        during: list[str] = []
        for _ in range(200):  # enough rows to need a page more than the file has
            during += _call(sqlite_app)
        runtime.store.flush()
        assert runtime.store.failing
        _assert_outage(sqlite_app, during[0])
        during += _call(sqlite_app)  # still answering
    finally:
        event.remove(engine, "connect", no_growth)
        engine.dispose()
    _wait_ready(sqlite_app)
    response = sqlite_app.post(f"/cds-services/{SERVICE}/feedback", json=_feedback(during[0]))
    assert response.status_code == 200, response.text
    with engine.connect() as connection:
        logged = {row[0] for row in connection.execute(text("SELECT card_uuid FROM shown_cards"))}
    assert set(shown + during) <= logged
