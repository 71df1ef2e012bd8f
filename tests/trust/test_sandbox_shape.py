"""The CDS Hooks Sandbox's real JWT shape (captured in ../shared) against our verifier."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest

from cds.trust.clients import load_trusted_clients
from cds.trust.key_sets import parse_jwk_set
from tests.conftest import REPO
from tests.trust.conftest import (
    PATIENT_VIEW_SERVICE,
    new_ec_key,
    patient_view_request,
    rejections,
)

pytestmark = pytest.mark.shared


def captured(shared_dir: Path, name: str) -> Any:
    folder = shared_dir / "data" / "cds-hooks-examples" / "sandbox-captured"
    return json.loads((folder / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_the_captured_sandbox_tokens_verify_with_the_published_sandbox_key(
    shared_dir: Path, hook: str
) -> None:
    meta = captured(shared_dir, f"{hook}-request-http-meta.json")
    keys = parse_jwk_set(captured(shared_dir, "sandbox-public-jwks.json"))
    token = meta["selected_headers"]["Authorization"].removeprefix("Bearer ")
    key = keys[meta["jwt_header"]["kid"]]
    assert key.fits("ES384")
    decoded = jwt.decode(
        token,
        key.public_key,
        algorithms=["ES384"],
        audience=meta["jwt_payload"]["aud"],
        options={"verify_exp": False},  # captured in the past; the signature is what we check
    )
    assert decoded == meta["jwt_payload"]


def test_a_token_of_the_sandbox_shape_signed_by_a_test_key_is_accepted(
    shared_dir: Path, make_client: Any
) -> None:
    meta = captured(shared_dir, "patient-view-request-http-meta.json")
    header, payload = meta["jwt_header"], meta["jwt_payload"]
    test_key = new_ec_key(kid=header["kid"])
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(payload["aud"]))
    client = make_client(
        [
            {
                "iss": payload["iss"],
                "jku": [header["jku"]],  # allowlisted; the key itself is configured inline
                "jwks": {"keys": [test_key.public_jwk]},
            }
        ],
        public_base_url=origin,
        require_jwt=True,
    )
    now = int(time.time())
    claims = {
        **payload,
        "aud": f"{origin}/cds-services/{PATIENT_VIEW_SERVICE}",
        "iat": now,
        "exp": now + (payload["exp"] - payload["iat"]),
        "jti": str(uuid.uuid4()),
    }
    token = jwt.encode(
        claims,
        test_key.private,
        algorithm=header["alg"],
        headers={k: v for k, v in header.items() if k != "alg"},
    )
    assert jwt.get_unverified_header(token) == header
    assert set(jwt.decode(token, options={"verify_signature": False})) == set(payload)
    response = client.post(
        f"/cds-services/{PATIENT_VIEW_SERVICE}",
        json=patient_view_request(),
        headers={"Authorization": f"Bearer {token}", "Origin": "http://127.0.0.1:8080"},
    )
    assert response.status_code == 200
    assert rejections(client) == {}


def test_the_development_clients_file_holds_the_published_sandbox_key(shared_dir: Path) -> None:
    clients = load_trusted_clients(REPO / "examples" / "trusted-clients.sandbox.yaml")
    sandbox = clients["https://sandbox.cds-hooks.org"]
    published = parse_jwk_set(captured(shared_dir, "sandbox-public-jwks.json"))
    assert sandbox.inline_keys.keys() == published.keys()
    for kid, key in published.items():
        ours = sandbox.inline_keys[kid].public_key
        assert ours.public_numbers() == key.public_key.public_numbers()
    meta = captured(shared_dir, "patient-view-request-http-meta.json")
    assert meta["jwt_header"]["jku"] in sandbox.allowed_jku
