"""Two replicas behind nginx, sharing PostgreSQL: the production topology on one machine.

Through nginx, hook calls spread over both replicas; feedback posted to either is stored once
and reported by both; a card shown by one replica is not repeated by the other; a JWT replayed
at the other replica is rejected; killing one replica mid-load loses no feedback that got a 2xx.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.processes import free_port, start_cds, stop, wait_until_healthy
from tests.trust.conftest import (
    claims,
    new_ec_key,
    patient_view_request,
    postgres_available,
    postgres_url,
    sign,
    write_clients,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
__all__ = ["postgres_available", "postgres_url"]  # fixtures used by this module

SERVICE = "breast-cancer-followup-patient-view"
REFRESH_SECONDS = 0.2  # how often each replica re-reads the card history others wrote
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ISS = "https://ehr.scale-out.test"
KEY = new_ec_key("scale-out-key")

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 10m;
    log_format upstream '$upstream_addr $status $request_uri';
    upstream cds {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log {tmp}/access.log upstream;
        location / {{
            proxy_pass http://cds;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Hook calls and feedback are idempotent, so a retry on the other replica is safe.
            proxy_next_upstream error timeout non_idempotent;
        }}
    }}
}}
"""


@dataclass
class Cluster:
    nginx_url: str
    replicas: dict[str, str]  # name -> base URL
    processes: dict[str, subprocess.Popen[bytes]]
    access_log: Path
    database_url: str


def _feedback(card: str, when: str) -> dict[str, Any]:
    return {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "system": "urn:cds:breast-cancer-followup:override-reason",
                        "code": "not-clinically-relevant",
                        "display": "Not clinically relevant for this patient",
                    }
                },
                "outcomeTimestamp": when,
            }
        ]
    }


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    port, port_a, port_b = free_port(), free_port(), free_port()
    nginx_url = f"http://127.0.0.1:{port}"
    clients = write_clients(
        tmp_path / "clients.yaml", [{"iss": ISS, "jwks": {"keys": [KEY.public_jwk]}}]
    )
    env = {
        "CDS_DATABASE_URL": postgres_url,
        "CDS_PUBLIC_BASE_URL": nginx_url,
        "CDS_TRUSTED_CLIENTS_FILE": str(clients),
        "CDS_REQUIRE_JWT": "false",
        "CDS_MIGRATE_ON_START": "true",
        "CDS_DATA_DIR": str(tmp_path / "var"),
        "CDS_SUPPRESSION_REFRESH_SECONDS": str(REFRESH_SECONDS),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    nginx: subprocess.Popen[bytes] | None = None
    try:
        # One after the other, so the first replica migrates the schema alone.
        processes["a"] = start_cds(port_a, env, log_path=tmp_path / "a.log")
        processes["b"] = start_cds(port_b, env, log_path=tmp_path / "b.log")
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port, port_a=port_a, port_b=port_b))
        nginx = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_healthy(nginx_url, nginx)
        yield Cluster(
            nginx_url=nginx_url,
            replicas={"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}"},
            processes=processes,
            access_log=tmp_path / "access.log",
            database_url=postgres_url,
        )
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for process in processes.values():
            stop(process)


def _feedback_rows(database_url: str) -> dict[str, int]:
    engine = create_engine("postgresql+psycopg://" + database_url.removeprefix("postgresql://"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT card_uuid, count(*) FROM feedback GROUP BY card_uuid")
            )
            return {row[0]: row[1] for row in rows}
    finally:
        engine.dispose()


def test_hook_calls_spread_over_both_replicas(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.nginx_url, timeout=10) as http:
        for n in range(20):
            # twenty patients: one patient's warning is not repeated within a day
            body = patient_view_request(patient_id=f"spread-{n}")
            response = http.post(f"/cds-services/{SERVICE}", json=body)
            assert response.status_code == 200
            assert response.json()["cards"]
    upstreams = {line.split()[0] for line in cluster.access_log.read_text().splitlines()}
    assert len(upstreams) == 2, upstreams


def test_feedback_to_either_replica_is_stored_once_and_reported_by_both(cluster: Cluster) -> None:
    a, b = cluster.replicas["a"], cluster.replicas["b"]
    card = httpx.post(
        f"{a}/cds-services/{SERVICE}", json=patient_view_request(), timeout=10
    ).json()["cards"][0]
    body = _feedback(card["uuid"], "2026-11-25T10:00:00Z")
    assert (
        httpx.post(f"{a}/cds-services/{SERVICE}/feedback", json=body, timeout=10).status_code == 200
    )
    assert (
        httpx.post(f"{b}/cds-services/{SERVICE}/feedback", json=body, timeout=10).status_code == 200
    )
    assert _feedback_rows(cluster.database_url) == {card["uuid"]: 1}
    for base in (a, b):
        report = httpx.get(f"{base}/analytics/feedback", params={"since": "2000-01-01"}, timeout=10)
        rules = {row["rule_id"]: row for row in report.json()["rules"]}
        rule = card["source"]["topic"]["code"]
        assert rules[rule]["overridden"] == 1, base


def test_a_card_shown_by_one_replica_is_not_repeated_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.replicas["a"], cluster.replicas["b"]
    patient = f"repeat-{uuid.uuid4()}"
    first = httpx.post(
        f"{a}/cds-services/{SERVICE}", json=patient_view_request(patient_id=patient), timeout=10
    ).json()["cards"]
    assert [card["indicator"] for card in first] == ["warning"]
    # B learns what A showed from the database; B itself never showed this card, so a
    # withheld card at B can only come from the shared log.
    seen_by_b = f"seen-by-b-{uuid.uuid4()}"
    shared = False
    for _ in range(50):
        if _shown_count(cluster.database_url) >= 1:
            shared = True
            break
        threading.Event().wait(REFRESH_SECONDS)
    assert shared, "A's card never reached the database"
    threading.Event().wait(5 * REFRESH_SECONDS)  # B re-reads the log at least once meanwhile
    second = httpx.post(
        f"{b}/cds-services/{SERVICE}",
        json=patient_view_request(hook_instance=seen_by_b, patient_id=patient),
        timeout=10,
    ).json()["cards"]
    assert second == []
    assert _withheld(cluster.database_url, seen_by_b) == ["repeat"]
    # another patient at B still gets the card
    other = httpx.post(
        f"{b}/cds-services/{SERVICE}",
        json=patient_view_request(patient_id=f"other-{uuid.uuid4()}"),
        timeout=10,
    ).json()["cards"]
    assert [card["indicator"] for card in other] == ["warning"]


def _shown_count(database_url: str) -> int:
    engine = create_engine("postgresql+psycopg://" + database_url.removeprefix("postgresql://"))
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM shown_cards")).scalar_one())
    finally:
        engine.dispose()


def _withheld(database_url: str, hook_instance: str) -> list[str]:
    engine = create_engine("postgresql+psycopg://" + database_url.removeprefix("postgresql://"))
    try:
        for _ in range(50):  # written just after the response
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT reason FROM withheld_cards WHERE hook_instance = :h"),
                    {"h": hook_instance},
                ).all()
            if rows:
                return [row[0] for row in rows]
            threading.Event().wait(REFRESH_SECONDS)
        return []
    finally:
        engine.dispose()


def test_jwt_replayed_at_the_other_replica_is_rejected(cluster: Cluster) -> None:
    aud = f"{cluster.nginx_url}/cds-services/{SERVICE}"
    token = sign(KEY, claims(aud, iss=ISS))
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.post(
        f"{cluster.replicas['a']}/cds-services/{SERVICE}",
        json=patient_view_request(),
        headers=headers,
    )
    assert first.status_code == 200
    replay = httpx.post(
        f"{cluster.replicas['b']}/cds-services/{SERVICE}",
        json=patient_view_request(),
        headers=headers,
    )
    assert replay.status_code == 401
    assert replay.json()["issue"][0]["diagnostics"] == "unauthorized"


def test_killing_a_replica_mid_load_loses_no_acknowledged_feedback(cluster: Cluster) -> None:
    acknowledged: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()

    def post(worker: int) -> None:
        with httpx.Client(base_url=cluster.nginx_url, timeout=10) as http:
            for n in range(60):
                card = f"scale-out-{worker}-{n}-{uuid.uuid4()}"
                try:
                    response = http.post(
                        f"/cds-services/{SERVICE}/feedback",
                        json=_feedback(card, "2026-11-25T10:00:00Z"),
                    )
                    ok = 200 <= response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                with lock:
                    (acknowledged if ok else failed).append(card)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    while True:
        with lock:
            if len(acknowledged) + len(failed) >= 40:
                break
        threads[0].join(timeout=0.02)
    cluster.processes["b"].kill()
    for thread in threads:
        thread.join(timeout=120)
    stored = _feedback_rows(cluster.database_url)
    assert len(acknowledged) > 100
    missing = [card for card in acknowledged if card not in stored]
    assert missing == [], f"{len(missing)} acknowledged feedback items were lost"
    assert all(stored[card] == 1 for card in acknowledged)
