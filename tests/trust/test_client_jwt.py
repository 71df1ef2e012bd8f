"""Client JWT checks through the real app: each refusal is a 401 that says only "unauthorized",
with its reason counted in /metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from cds.errors import ConfigurationError
from tests.trust.conftest import (
    BASE_URL,
    ISS,
    PATIENT_VIEW_SERVICE,
    JwksServer,
    KeyPair,
    b64url,
    claims,
    new_ec_key,
    new_rsa_key,
    patient_view_request,
    rejections,
    sign,
)

DISCOVERY = f"{BASE_URL}/cds-services"
SERVICE = f"{BASE_URL}/cds-services/{PATIENT_VIEW_SERVICE}"
UNAUTHORIZED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login", "diagnostics": "unauthorized"}],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def discover(client: TestClient, token: str) -> Any:
    return client.get("/cds-services", headers=bearer(token))


def assert_refused(client: TestClient, response: Any, reason: str) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"] == "Bearer"
    assert rejections(client) == {reason: 1.0}


@pytest.fixture
def keys_url(jwks_server: JwksServer, ec_key: KeyPair, rsa_key: KeyPair) -> str:
    return jwks_server.publish("/ehr/jwks.json", ec_key, rsa_key)


@pytest.fixture
def client(make_client: Any, keys_url: str) -> TestClient:
    client: TestClient = make_client([{"iss": ISS, "jwks_url": keys_url}])
    return client


# --- accepted ---------------------------------------------------------------------------------


def test_es384_token_from_the_jwks_url_is_accepted_and_keys_are_cached(
    client: TestClient, ec_key: KeyPair, jwks_server: JwksServer
) -> None:
    for _ in range(3):
        response = discover(client, sign(ec_key, claims(DISCOVERY)))
        assert response.status_code == 200
        assert response.json()["services"]
    assert jwks_server.hits == {"/ehr/jwks.json": 1}
    assert rejections(client) == {}


def test_rs384_token_with_an_allowlisted_jku_is_accepted(
    make_client: Any, jwks_server: JwksServer, rsa_key: KeyPair
) -> None:
    jku = jwks_server.publish("/rotating/keys.json", rsa_key)
    client = make_client([{"iss": ISS, "jku": [jku]}])
    response = discover(client, sign(rsa_key, claims(DISCOVERY), jku=jku))
    assert response.status_code == 200


def test_aud_may_be_an_array(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(["https://elsewhere.test/cds-services", DISCOVERY]))
    assert discover(client, token).status_code == 200


def test_service_call_needs_the_service_url_as_aud(client: TestClient, ec_key: KeyPair) -> None:
    path = f"/cds-services/{PATIENT_VIEW_SERVICE}"
    body = patient_view_request()
    response = client.post(path, json=body, headers=bearer(sign(ec_key, claims(SERVICE))))
    assert response.status_code == 200
    assert response.json()["cards"]
    response = client.post(path, json=body, headers=bearer(sign(ec_key, claims(DISCOVERY))))
    assert_refused(client, response, "wrong_aud")


def test_feedback_accepts_its_own_url_or_the_service_url_as_aud(
    client: TestClient, ec_key: KeyPair
) -> None:
    path = f"/cds-services/{PATIENT_VIEW_SERVICE}/feedback"
    body = {
        "feedback": [
            {"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
        ]
    }
    for aud in (BASE_URL + path, SERVICE):
        response = client.post(path, json=body, headers=bearer(sign(ec_key, claims(aud))))
        assert response.status_code == 200, aud
    response = client.post(path, json=body, headers=bearer(sign(ec_key, claims(DISCOVERY))))
    assert_refused(client, response, "wrong_aud")


def test_a_trailing_slash_in_the_public_base_url_does_not_change_aud(
    make_client: Any, keys_url: str, ec_key: KeyPair
) -> None:
    client = make_client([{"iss": ISS, "jwks_url": keys_url}], public_base_url=BASE_URL + "/")
    assert discover(client, sign(ec_key, claims(DISCOVERY))).status_code == 200


def test_rs256_and_es256_only_when_the_client_allows_them(
    make_client: Any, jwks_server: JwksServer
) -> None:
    rs256 = new_rsa_key(alg="RS256")
    es256 = new_ec_key(alg="ES256")
    url = jwks_server.publish("/legacy.json", rs256, es256)
    strict = make_client([{"iss": ISS, "jwks_url": url}])
    assert_refused(strict, discover(strict, sign(rs256, claims(DISCOVERY))), "alg_not_allowed")
    lenient = make_client([{"iss": ISS, "jwks_url": url, "allow_rs256_es256": True}])
    assert discover(lenient, sign(rs256, claims(DISCOVERY))).status_code == 200
    assert discover(lenient, sign(es256, claims(DISCOVERY))).status_code == 200


def test_a_tenant_bound_client_must_name_its_tenant(
    make_client: Any, keys_url: str, ec_key: KeyPair
) -> None:
    client = make_client([{"iss": ISS, "jwks_url": keys_url, "tenant": ["north", "south"]}])
    assert discover(client, sign(ec_key, claims(DISCOVERY, tenant="south"))).status_code == 200
    response = discover(client, sign(ec_key, claims(DISCOVERY, tenant="west")))
    assert_refused(client, response, "wrong_tenant")
    response = discover(client, sign(ec_key, claims(DISCOVERY, tenant=["north"])))
    assert response.status_code == 401  # not a string: refused, not a server error
    assert rejections(client) == {"wrong_tenant": 2.0}


def test_no_token_passes_when_tokens_are_optional(client: TestClient) -> None:
    assert client.get("/cds-services").status_code == 200


# --- one test per refusal ---------------------------------------------------------------------


def test_wrong_signature(client: TestClient, ec_key: KeyPair) -> None:
    impostor = new_ec_key(kid=ec_key.kid)  # same kid, different private key
    assert_refused(client, discover(client, sign(impostor, claims(DISCOVERY))), "bad_signature")


def test_tampered_payload(client: TestClient, ec_key: KeyPair) -> None:
    header, _, signature = sign(ec_key, claims(DISCOVERY)).split(".")
    forged = b64url(json.dumps(claims(DISCOVERY, tenant="forged")).encode())
    response = discover(client, f"{header}.{forged}.{signature}")
    assert_refused(client, response, "bad_signature")


def test_unknown_kid(client: TestClient, jwks_server: JwksServer) -> None:
    stranger = new_ec_key()
    assert_refused(client, discover(client, sign(stranger, claims(DISCOVERY))), "unknown_kid")


def test_alg_none(client: TestClient, ec_key: KeyPair) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": ec_key.kid}).encode())
    payload = b64url(json.dumps(claims(DISCOVERY)).encode())
    assert_refused(client, discover(client, f"{header}.{payload}."), "alg_not_allowed")


def test_hs256_signed_with_the_public_key(client: TestClient, rsa_key: KeyPair) -> None:
    """The classic key-confusion attack: HMAC keyed with the client's public key."""
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}).encode())
    payload = b64url(json.dumps(claims(DISCOVERY)).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    response = discover(client, f"{header}.{payload}.{b64url(mac)}")
    assert_refused(client, response, "alg_not_allowed")


def test_wrong_iss(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY, iss="https://unknown-ehr.test"))
    assert_refused(client, discover(client, token), "unknown_iss")


def test_jku_not_allowlisted_is_never_fetched(
    client: TestClient, jwks_server: JwksServer, ec_key: KeyPair
) -> None:
    rogue = jwks_server.publish("/rogue.json", ec_key)
    response = discover(client, sign(ec_key, claims(DISCOVERY), jku=rogue))
    assert_refused(client, response, "jku_not_allowed")
    assert "/rogue.json" not in jwks_server.hits


def test_wrong_aud(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims("http://testserver/cds-services"))  # the Host, not our URL
    assert_refused(client, discover(client, token), "wrong_aud")


def test_expired(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY, iat_offset=-600, lifetime=480))  # exp 120 s ago
    assert_refused(client, discover(client, token), "expired")


def test_expired_within_the_leeway_is_accepted(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY, iat_offset=-600, lifetime=570))  # exp 30 s ago
    assert discover(client, token).status_code == 200


def test_iat_in_the_future(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY, iat_offset=600))
    assert_refused(client, discover(client, token), "iat_in_future")


def test_replayed_jti(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY))
    assert discover(client, token).status_code == 200
    assert_refused(client, discover(client, token), "replayed_jti")


def test_missing_token_when_required(make_client: Any, keys_url: str, ec_key: KeyPair) -> None:
    client = make_client([{"iss": ISS, "jwks_url": keys_url}], require_jwt=True)
    assert_refused(client, client.get("/cds-services"), "missing_token")
    assert discover(client, sign(ec_key, claims(DISCOVERY))).status_code == 200


def test_missing_token_is_refused_before_the_service_or_body_is_looked_at(
    make_client: Any, keys_url: str
) -> None:
    client = make_client([{"iss": ISS, "jwks_url": keys_url}], require_jwt=True)
    response = client.post("/cds-services/no-such-service", content=b"not json")
    assert_refused(client, response, "missing_token")


def test_lifetime_longer_than_allowed(client: TestClient, ec_key: KeyPair) -> None:
    token = sign(ec_key, claims(DISCOVERY, lifetime=6 * 3600))
    assert_refused(client, discover(client, token), "lifetime_too_long")


def test_missing_jti(client: TestClient, ec_key: KeyPair) -> None:
    payload = claims(DISCOVERY)
    del payload["jti"]
    assert_refused(client, discover(client, sign(ec_key, payload)), "missing_claim")


def test_key_of_the_wrong_type_for_the_alg(
    client: TestClient, ec_key: KeyPair, rsa_key: KeyPair
) -> None:
    """An ES384 token naming the RSA key's kid: that key is never tried for ES384."""
    token = sign(ec_key, claims(DISCOVERY), kid=rsa_key.kid)
    assert_refused(client, discover(client, token), "key_mismatch")


def test_not_a_bearer_token(client: TestClient) -> None:
    response = client.get("/cds-services", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_refused(client, response, "malformed_header")


def test_garbage_token(client: TestClient) -> None:
    assert_refused(client, discover(client, "not.a.jwt"), "malformed_token")


def test_wrong_typ(client: TestClient, ec_key: KeyPair) -> None:
    token = jwt_with_header(ec_key, {"typ": "at+jwt"})
    assert_refused(client, discover(client, token), "wrong_typ")


def test_a_token_without_trusted_clients_is_refused(make_client: Any, ec_key: KeyPair) -> None:
    client = make_client(None)
    assert_refused(client, discover(client, sign(ec_key, claims(DISCOVERY))), "no_trusted_clients")


def test_required_tokens_without_a_clients_file_refuse_to_start(make_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="CDS_TRUSTED_CLIENTS_FILE"):
        make_client(None, require_jwt=True)


def test_operational_routes_need_no_token(make_client: Any, keys_url: str) -> None:
    client = make_client([{"iss": ISS, "jwks_url": keys_url}], require_jwt=True)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/analytics/feedback").status_code == 200


def jwt_with_header(key: KeyPair, extra_header: dict[str, Any]) -> str:
    import jwt

    headers = {"typ": "JWT", "kid": key.kid, **extra_header}
    return jwt.encode(claims(DISCOVERY), key.private, algorithm=key.alg, headers=headers)
