"""The JWK Set cache: a new kid is accepted after one refresh, refreshes are rate limited,
an outage keeps the keys we had, and revoked keys go once the cached set is too old."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from cds.errors import Unauthorized
from cds.trust.clients import parse_trusted_clients
from cds.trust.key_sets import JwksCache
from cds.trust.tokens import ClientVerifier, MemoryReplayCache, VerifiedClient
from tests.trust.conftest import ISS, JwksServer, KeyPair, claims, new_ec_key, sign

AUD = "https://cds.hospital.test/cds-services"
MIN_REFRESH = 30.0
MAX_AGE = 3600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Check = Callable[[KeyPair], Awaitable[VerifiedClient]]


def run_with_verifier(jwks_url: str, body: Callable[[Check, FakeClock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with httpx.AsyncClient() as http:
            cache = JwksCache(
                http, min_refresh_seconds=MIN_REFRESH, max_age_seconds=MAX_AGE, clock=clock
            )
            clients = parse_trusted_clients(
                {"clients": [{"iss": ISS, "jwks_url": jwks_url}]}, "test"
            )
            verifier = ClientVerifier(
                clients, cache, MemoryReplayCache(), leeway_seconds=60, max_lifetime_seconds=3600
            )

            async def check(key: KeyPair) -> VerifiedClient:
                return await verifier.verify(sign(key, claims(AUD)), [AUD])

            await body(check, clock)

    asyncio.run(main())


def reason_of(exc_info: pytest.ExceptionInfo[Unauthorized]) -> str:
    return exc_info.value.reason


def test_a_rotated_key_is_accepted_after_one_refresh(jwks_server: JwksServer) -> None:
    old, new = new_ec_key(), new_ec_key()
    url = jwks_server.publish("/keys.json", old)

    async def body(check: Check, clock: FakeClock) -> None:
        assert (await check(old)).kid == old.kid
        jwks_server.publish("/keys.json", old, new)  # the EHR rotates
        clock.now += MIN_REFRESH + 1
        assert (await check(new)).kid == new.kid
        assert (await check(new)).kid == new.kid  # now cached
        assert (await check(old)).kid == old.kid

    run_with_verifier(url, body)
    assert jwks_server.hits["/keys.json"] == 2


def test_unknown_kid_refreshes_are_rate_limited(jwks_server: JwksServer) -> None:
    known = new_ec_key()
    url = jwks_server.publish("/keys.json", known)
    strangers = [new_ec_key() for _ in range(5)]

    async def body(check: Check, clock: FakeClock) -> None:
        await check(known)
        for stranger in strangers:  # a burst of made-up kids inside the refresh interval
            clock.now += 1
            with pytest.raises(Unauthorized) as refused:
                await check(stranger)
            assert reason_of(refused) == "unknown_kid"
        assert jwks_server.hits["/keys.json"] == 1
        clock.now += MIN_REFRESH
        with pytest.raises(Unauthorized):
            await check(strangers[0])
        assert jwks_server.hits["/keys.json"] == 2

    run_with_verifier(url, body)


def test_concurrent_unknown_kids_cause_one_fetch(jwks_server: JwksServer) -> None:
    first, rotated = new_ec_key(), new_ec_key()
    url = jwks_server.publish("/keys.json", first, rotated)

    async def body(check: Check, clock: FakeClock) -> None:
        results = await asyncio.gather(*(check(rotated) for _ in range(10)))
        assert {r.kid for r in results} == {rotated.kid}

    run_with_verifier(url, body)
    assert jwks_server.hits["/keys.json"] == 1


def test_an_outage_keeps_the_keys_already_fetched(jwks_server: JwksServer) -> None:
    key = new_ec_key()
    url = jwks_server.publish("/keys.json", key)

    async def body(check: Check, clock: FakeClock) -> None:
        await check(key)
        jwks_server.failing.add("/keys.json")
        clock.now += MAX_AGE + 1  # stale: a refresh is attempted and fails
        assert (await check(key)).kid == key.kid

    run_with_verifier(url, body)
    assert jwks_server.hits["/keys.json"] == 2


def test_a_jwks_url_that_never_answered_refuses(jwks_server: JwksServer) -> None:
    key = new_ec_key()
    url = jwks_server.url("/missing.json")

    async def body(check: Check, clock: FakeClock) -> None:
        with pytest.raises(Unauthorized) as refused:
            await check(key)
        assert reason_of(refused) == "jwks_unavailable"

    run_with_verifier(url, body)


def test_a_revoked_key_goes_when_the_cached_set_expires(jwks_server: JwksServer) -> None:
    revoked, kept = new_ec_key(), new_ec_key()
    url = jwks_server.publish("/keys.json", revoked, kept)

    async def body(check: Check, clock: FakeClock) -> None:
        await check(revoked)
        jwks_server.publish("/keys.json", kept)
        clock.now += MAX_AGE + 1
        with pytest.raises(Unauthorized) as refused:
            await check(revoked)
        assert reason_of(refused) == "unknown_kid"
        assert (await check(kept)).kid == kept.kid

    run_with_verifier(url, body)


def test_oversized_or_invalid_jwk_sets_are_not_used(jwks_server: JwksServer) -> None:
    key = new_ec_key()
    jwks_server.sets["/huge.json"] = {"keys": [key.public_jwk] * 2000}  # > 256 KiB
    jwks_server.sets["/empty.json"] = {"keys": []}

    for path in ("/huge.json", "/empty.json"):

        async def body(check: Check, clock: FakeClock) -> None:
            with pytest.raises(Unauthorized) as refused:
                await check(key)
            assert reason_of(refused) == "jwks_unavailable"

        run_with_verifier(jwks_server.url(path), body)
