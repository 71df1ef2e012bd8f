"""Whatever a client puts in a token, the verifier answers Unauthorized: never another error."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt import api_jws as jws

from cds.errors import Unauthorized
from cds.trust.clients import parse_trusted_clients
from cds.trust.key_sets import JwksCache
from cds.trust.tokens import ClientVerifier, MemoryReplayCache
from tests.trust.conftest import ISS, b64url, new_ec_key

KEY = new_ec_key(kid="k1")
AUD = "https://cds.hospital.test/cds-services"
NOW = int(time.time())

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES256"]) | json_values,
        "kid": st.sampled_from(["k1", ""]) | json_values,
        "typ": st.sampled_from(["JWT", "jwt"]) | json_values,
        "jku": st.sampled_from(["http://127.0.0.1:9/x.json"]) | json_values,
        "crit": json_values,
    },
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([ISS]) | json_values,
        "aud": st.sampled_from([AUD, [AUD]]) | json_values,
        "exp": st.sampled_from([NOW + 300]) | st.integers(-(2**40), 2**40) | json_values,
        "iat": st.sampled_from([NOW]) | st.integers(-(2**40), 2**40) | json_values,
        "jti": st.uuids().map(str) | json_values,
        "tenant": st.sampled_from(["t"]) | json_values,
    },
)


def make_verifier() -> ClientVerifier:
    """Keys are inline and no jku is allowlisted, so the HTTP client is never used."""
    clients = parse_trusted_clients(
        {"clients": [{"iss": ISS, "jwks": {"keys": [KEY.public_jwk]}, "tenant": "t"}]}, "fuzz"
    )
    cache = JwksCache(httpx.AsyncClient(), min_refresh_seconds=30, max_age_seconds=3600)
    return ClientVerifier(
        clients, cache, MemoryReplayCache(), leeway_seconds=60, max_lifetime_seconds=3600
    )


VERIFIER = make_verifier()


def refused(token: str) -> Unauthorized:
    async def check() -> Unauthorized:
        with pytest.raises(Unauthorized) as refusal:
            await VERIFIER.verify(token, [AUD])
        return refusal.value

    return asyncio.run(check())


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@settings(max_examples=200, deadline=None)
@given(header=headers, payload=payloads, signature=st.binary(max_size=120))
def test_any_token_is_refused_cleanly(
    header: dict[str, Any], payload: dict[str, Any], signature: bytes
) -> None:
    parts = [json.dumps(header).encode(), json.dumps(payload).encode(), signature]
    refusal = refused(".".join(b64url(part) for part in parts))
    assert refusal.diagnostics == "unauthorized"
    assert refusal.reason != "unauthorized"  # a specific reason for logs and metrics


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_any_string_is_refused_cleanly(text: str) -> None:
    assert refused(text).diagnostics == "unauthorized"


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@settings(max_examples=200, deadline=None)
@given(payload=payloads)
def test_signed_tokens_with_any_claims_are_accepted_or_refused_cleanly(
    payload: dict[str, Any],
) -> None:
    token = jws.encode(
        json.dumps(payload).encode(), KEY.private, algorithm="ES384", headers={"kid": "k1"}
    )

    async def check() -> str:
        try:
            client = await VERIFIER.verify(token, [AUD])
        except Unauthorized as refusal:
            return refusal.reason
        assert (client.iss, client.tenant) == (ISS, "t")
        return "accepted"

    assert asyncio.run(check()) != "bad_signature"
