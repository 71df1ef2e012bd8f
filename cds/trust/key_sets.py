"""Public keys of trusted EHR clients: JWK Set parsing and a per-URL cache keyed by ``kid``.

A JWK Set is fetched only from URLs the trusted-clients file allows (the caller checks that),
kept for ``max_age_seconds``, and fetched again early when a token names a ``kid`` the cached
set lacks (key rotation), but never more often than once per ``min_refresh_seconds`` per URL,
so a flood of tokens with made-up ``kid`` values cannot turn us into a traffic amplifier.
When a refresh fails, keys already cached stay usable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from cds.body_limit import BodyLimit
from cds.errors import Unauthorized
from cds.logs import logger

__all__ = ["JwksCache", "VerificationKey", "parse_jwk_set"]

_MAX_JWKS_BYTES = 256 * 1024
_MIN_RSA_BITS = 2048
_CURVE_OF_ALG = {"ES256": "P-256", "ES384": "P-384"}


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    kty: str
    curve: str | None
    alg: str | None  # the JWK's own `alg`, when it states one
    public_key: RSAPublicKey | EllipticCurvePublicKey

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a token signed with ``alg``."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg.startswith("RS"):
            return self.kty == "RSA"
        return self.kty == "EC" and self.curve == _CURVE_OF_ALG.get(alg)


def _parse_key(jwk: Any, *, reject_private: bool) -> VerificationKey | None:
    """One JWK as a verification key, or None when it cannot verify our tokens."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return None
    if "d" in jwk:
        if reject_private:
            raise ValueError(f"key {jwk['kid']!r} holds private key material; give the public key")
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
        return None
    if jwk["kty"] == "EC" and jwk.get("crv") not in ("P-256", "P-384"):
        return None
    try:
        public_key = PyJWK(jwk).key
    except (PyJWKError, ValueError, TypeError):
        return None
    if not isinstance(public_key, RSAPublicKey | EllipticCurvePublicKey):
        return None
    if isinstance(public_key, RSAPublicKey) and public_key.key_size < _MIN_RSA_BITS:
        return None
    alg = jwk.get("alg")
    return VerificationKey(
        kid=jwk["kid"],
        kty=jwk["kty"],
        curve=jwk.get("crv"),
        alg=alg if isinstance(alg, str) else None,
        public_key=public_key,
    )


def parse_jwk_set(data: Any, *, reject_private: bool = False) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWK Set by ``kid`` (the first key wins on a repeated kid).

    Keys that cannot verify an RS/ES token (encryption keys, other curves, short RSA keys) are
    left out. Raises ValueError when the set has no usable key at all.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWK Set is an object with a `keys` array")
    keys: dict[str, VerificationKey] = {}
    for jwk in data["keys"]:
        key = _parse_key(jwk, reject_private=reject_private)
        if key is not None:
            keys.setdefault(key.kid, key)
    if not keys:
        raise ValueError("the JWK Set has no usable RSA (2048+ bits) or EC P-256/P-384 signing key")
    return keys


@dataclass
class _CachedSet:
    keys: dict[str, VerificationKey] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # last successful fetch
    attempted_at: float = float("-inf")  # last fetch attempt, successful or not


class JwksCache:
    """JWK Sets by URL. One instance per process; safe for concurrent calls on one event loop."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        min_refresh_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        fetch_seconds: float = 5.0,
    ) -> None:
        self._fetch_seconds = fetch_seconds
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._sets: dict[str, _CachedSet] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key(self, url: str, kid: str) -> VerificationKey:
        """The key ``kid`` of the set at ``url``; raises :class:`Unauthorized` if there is none."""
        cached = self._fresh_key(url, kid)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._fresh_key(url, kid)  # another call may have refreshed meanwhile
            if cached is not None:
                return cached
            entry = self._sets.setdefault(url, _CachedSet())
            now = self._clock()
            if now - entry.attempted_at >= self._min_refresh:
                entry.attempted_at = now
                await self._refresh(url, entry, now)
            key = entry.keys.get(kid)
            if key is not None:
                return key
            if entry.fetched_at == float("-inf"):
                raise Unauthorized("jwks_unavailable")
            raise Unauthorized("unknown_kid")

    def _fresh_key(self, url: str, kid: str) -> VerificationKey | None:
        entry = self._sets.get(url)
        if entry is None or self._clock() - entry.fetched_at >= self._max_age:
            return None
        return entry.keys.get(kid)

    async def _refresh(self, url: str, entry: _CachedSet, now: float) -> None:
        try:
            # The whole fetch within fetch_seconds: a body that trickles in forever ends too.
            async with asyncio.timeout(self._fetch_seconds):
                document = await self._download(url)
            keys = parse_jwk_set(document)
        except (httpx.HTTPError, ValueError, orjson.JSONDecodeError, TimeoutError) as exc:
            # Keep whatever keys we had: a JWKS outage must not lock out a known client.
            logger.warning(
                "JWK Set fetch failed",
                extra={"fields": {"url": url, "error": type(exc).__name__}},
            )
            return
        entry.keys = keys
        entry.fetched_at = now

    async def _download(self, url: str) -> Any:
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
        async with self._http.stream(
            "GET", url, headers=headers, timeout=self._fetch_seconds
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"the JWK Set URL answered {response.status_code}")
            # Raw bytes, decoded here within the limit (aiter_bytes would decode each chunk
            # whole first): a gzip bomb ends at 256 KB, received or decompressed.
            body = BodyLimit(response.headers.get("Content-Encoding"), _MAX_JWKS_BYTES)
            async for chunk in response.aiter_raw():
                body.feed(chunk)
        return orjson.loads(body.body())
