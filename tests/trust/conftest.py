"""Trust fixtures: real key pairs, a loopback JWK Set server, token minting, both databases."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.settings import Settings

PG_URL = os.environ.get("CDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ISS = "https://ehr.hospital.test"
BASE_URL = "https://cds.hospital.test"


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    kid: str
    alg: str
    private: Any
    public_jwk: dict[str, Any]


def _public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = ECAlgorithm if alg.startswith("ES") else RSAAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg=alg)
    return jwk


def new_ec_key(kid: str | None = None, alg: str = "ES384") -> KeyPair:
    curve = ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()
    private = ec.generate_private_key(curve)
    kid = kid or f"ec-{uuid.uuid4()}"
    return KeyPair(kid, alg, private, _public_jwk(private, kid, alg))


def new_rsa_key(kid: str | None = None, alg: str = "RS384") -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = kid or f"rsa-{uuid.uuid4()}"
    return KeyPair(kid, alg, private, _public_jwk(private, kid, alg))


@pytest.fixture(scope="session")
def ec_key() -> KeyPair:
    return new_ec_key()


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    return new_rsa_key()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(
    aud: str | list[str],
    *,
    iss: str = ISS,
    lifetime: int = 300,
    iat_offset: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": iss,
        "aud": aud,
        "iat": now + iat_offset,
        "exp": now + iat_offset + lifetime,
        "jti": str(uuid.uuid4()),
        **extra,
    }


def sign(
    key: KeyPair,
    payload: dict[str, Any],
    *,
    jku: str | None = None,
    kid: str | None = None,
    alg: str | None = None,
) -> str:
    headers: dict[str, Any] = {"typ": "JWT", "kid": kid or key.kid}
    if jku is not None:
        headers["jku"] = jku
    return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=headers)


# --- a loopback JWK Set server ----------------------------------------------------------------


@dataclass
class JwksServer:
    """Serves JWK Sets at paths; counts the requests for each path."""

    base: str = ""
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def publish(self, path: str, *keys: KeyPair) -> str:
        self.sets[path] = {"keys": [k.public_jwk for k in keys]}
        return self.url(path)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            document = state.sets.get(self.path)
            if document is None or self.path in state.failing:
                self.send_response(404 if document is None else 500)
                self.end_headers()
                return
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_clients(path: Path, clients: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"clients": clients}), encoding="utf-8")  # JSON is YAML
    return path


# --- both databases -------------------------------------------------------------------------


def _postgres_answers() -> bool:
    try:
        engine = create_engine(
            "postgresql+psycopg://" + PG_URL.removeprefix("postgresql://"),
            connect_args={"connect_timeout": 2},
        )
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return _postgres_answers()


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    if not postgres_available:
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    schema = f"trust_{uuid.uuid4().hex[:12]}"
    admin = create_engine("postgresql+psycopg://" + PG_URL.removeprefix("postgresql://"))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on SQLite (a temporary directory) or PostgreSQL (a temporary schema)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Settings(data_dir=tmp_path / "var", database_url=url, require_jwt=False, cors_origins="")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def days(n: float) -> timedelta:
    return timedelta(days=n)


# --- apps with trusted clients ----------------------------------------------------------------


def rejections(client: TestClient) -> dict[str, float]:
    """JWT rejection counts by reason, read from /metrics."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "cds_jwt_rejections":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["reason"]] = sample.value
    return counts


@pytest.fixture
def make_client(tmp_path: Path, knowledge: Knowledge) -> Iterator[Callable[..., TestClient]]:
    """Build apps trusting the given clients; each is closed at the end of the test."""
    with ExitStack() as stack:

        def make(clients: list[dict[str, Any]] | None, **overrides: Any) -> TestClient:
            path = None
            if clients is not None:
                path = write_clients(tmp_path / f"clients-{uuid.uuid4().hex}.yaml", clients)
            options: dict[str, Any] = {
                "data_dir": tmp_path / "var",
                "public_base_url": BASE_URL,
                "trusted_clients_file": path,
                "require_jwt": False,
                "cors_origins": "",
                **overrides,
            }
            app = create_app(Settings(**options), knowledge=knowledge)
            return stack.enter_context(TestClient(app))

        yield make


def patient_view_request(
    hook_instance: str | None = None, patient_id: str = "p1"
) -> dict[str, Any]:
    """A patient-view call whose patient (breast cancer history, new back pain) gets a card
    (a warning: not shown again to the same patient within a day, see cds.call.repeat_limits)."""
    today = datetime.now(UTC).date().isoformat()
    return {
        "hook": "patient-view",
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient_id, "gender": "female"},
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Condition",
                            "id": "bc",
                            "code": {
                                "coding": [
                                    {
                                        "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                        "code": "C50.911",
                                    }
                                ]
                            },
                            "onsetDateTime": "2021-03-04",
                        }
                    },
                    {
                        "resource": {
                            "resourceType": "Condition",
                            "id": "pain",
                            "clinicalStatus": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "condition-clinical",
                                        "code": "active",
                                    }
                                ]
                            },
                            "code": {
                                "coding": [
                                    {
                                        "system": "http://snomed.info/sct",
                                        "code": "161891005",
                                        "display": "Backache",
                                    }
                                ]
                            },
                            "onsetDateTime": today,
                        }
                    },
                ],
            },
        },
    }


PATIENT_VIEW_SERVICE = "breast-cancer-followup-patient-view"
