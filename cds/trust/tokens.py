"""Verify the JWT a CDS client sends (CDS Hooks 2.0.1, "Trusting CDS Clients").

Checks, in order, each failure raising :class:`~cds.errors.Unauthorized` with a short reason
(for metrics and logs; the client only ever sees "unauthorized"):

1. the header: ``alg`` RS384 or ES384 (RS256/ES256 when the client allows them; never ``none``,
   never HMAC), ``typ`` JWT when given, a ``kid``;
2. the issuer: ``iss`` is a trusted client, and a ``jku`` header, when sent, is on its allowlist;
3. the key: the client's inline key with that ``kid``, or the one in its JWK Set (cached);
4. the signature, ``aud`` (the URL of the endpoint being called, string or array), ``exp``
   (future), ``iat`` (not future), with ``CDS_JWT_LEEWAY_SECONDS`` of clock skew;
5. ``tenant`` when the client is bound to tenants, a bounded lifetime;
6. ``jti`` never seen before while the token is valid (the replay cache is shared by replicas
   through the database).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import jwt
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
    PyJWTError,
)

from cds.errors import Unauthorized
from cds.trust.clients import TrustedClient
from cds.trust.key_sets import JwksCache, VerificationKey

__all__ = [
    "ClientVerifier",
    "MemoryReplayCache",
    "ReplayCache",
    "VerifiedClient",
    "bearer_token",
    "replay_key",
]

_MAX_TOKEN_CHARS = 16 * 1024
_SIGNING_ALGORITHMS = frozenset({"RS256", "RS384", "ES256", "ES384"})
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


@runtime_checkable
class ReplayCache(Protocol):
    def remember_jti(self, token_key: str, expires_at: datetime, now: datetime) -> bool:
        """Record a token id until ``expires_at``; False if it is already recorded and live."""


class MemoryReplayCache:
    """A per-process replay cache, for runs without a database (one process only)."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def remember_jti(self, token_key: str, expires_at: datetime, now: datetime) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: at for k, at in self._seen.items() if at >= now}
            previous = self._seen.get(token_key)
            if previous is not None and previous >= now:
                return False
            self._seen[token_key] = expires_at
            return True


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    tenant: str | None
    kid: str


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when there is no header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("malformed_header")
    return token


def replay_key(iss: str, jti: str) -> str:
    """What the replay cache stores: a fixed-size digest of issuer and token id."""
    return hashlib.sha256(f"{iss}\n{jti}".encode()).hexdigest()


def _claims_error_reason(exc: PyJWTError) -> str:
    # Most specific first: several of these subclass DecodeError or InvalidTokenError.
    reasons: list[tuple[type[PyJWTError], str]] = [
        (InvalidSignatureError, "bad_signature"),
        (ExpiredSignatureError, "expired"),
        (ImmatureSignatureError, "not_yet_valid"),
        (InvalidAudienceError, "wrong_aud"),
        (InvalidIssuerError, "unknown_iss"),
        (MissingRequiredClaimError, "missing_claim"),
        (InvalidAlgorithmError, "alg_not_allowed"),
        (InvalidKeyError, "weak_key"),
        (DecodeError, "malformed_token"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "invalid_token"


class ClientVerifier:
    """Verifies client JWTs against the trusted clients. One per process."""

    def __init__(
        self,
        clients: dict[str, TrustedClient],
        keys: JwksCache,
        replay: ReplayCache,
        *,
        leeway_seconds: int,
        max_lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.keys = keys
        self.replay = replay
        self.leeway = leeway_seconds
        self.max_lifetime = max_lifetime_seconds
        self._clock = clock

    async def verify(self, token: str, audiences: Sequence[str]) -> VerifiedClient:
        """Check ``token`` for a call whose endpoint URL is one of ``audiences``."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except InvalidTokenError:
            raise Unauthorized("malformed_token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _SIGNING_ALGORITHMS:
            raise Unauthorized("alg_not_allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise Unauthorized("wrong_typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("missing_kid")
        iss = unverified.get("iss")
        client = self.clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise Unauthorized("unknown_iss")
        if alg not in client.algorithms:
            raise Unauthorized("alg_not_allowed")
        key = await self._key(client, header.get("jku"), kid)
        if not key.fits(alg):
            raise Unauthorized("key_mismatch")
        claims = self._decode(token, key, alg, client, audiences)
        now = self._clock()
        iat = claims["iat"]
        if not isinstance(iat, int | float):
            raise Unauthorized("malformed_token")
        if iat > now + self.leeway:
            raise Unauthorized("iat_in_future")
        exp = claims["exp"]
        if exp > now + self.max_lifetime + self.leeway:
            raise Unauthorized("lifetime_too_long")
        tenant = claims.get("tenant")
        if client.tenants and not (isinstance(tenant, str) and tenant in client.tenants):
            raise Unauthorized("wrong_tenant")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("missing_claim")
        fresh = await asyncio.to_thread(
            self.replay.remember_jti,
            replay_key(client.iss, jti),
            datetime.fromtimestamp(exp + self.leeway, UTC),
            datetime.fromtimestamp(now, UTC),
        )
        if not fresh:
            raise Unauthorized("replayed_jti")
        return VerifiedClient(
            iss=client.iss, tenant=tenant if isinstance(tenant, str) else None, kid=kid
        )

    async def _key(self, client: TrustedClient, jku: Any, kid: str) -> VerificationKey:
        if jku is not None and (not isinstance(jku, str) or jku not in client.allowed_jku):
            raise Unauthorized("jku_not_allowed")
        key = client.inline_keys.get(kid)
        if key is not None:
            return key
        url = jku or client.jwks_url
        if url is None:
            raise Unauthorized("unknown_kid")
        return await self.keys.key(url, kid)

    def _decode(
        self,
        token: str,
        key: VerificationKey,
        alg: str,
        client: TrustedClient,
        audiences: Sequence[str],
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[alg],
                audience=list(audiences),
                issuer=client.iss,
                leeway=self.leeway,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_iat": False,  # checked by us, to tell it apart from `nbf`
                    "enforce_minimum_key_length": True,
                },
            )
        except (InvalidTokenError, InvalidKeyError) as exc:
            raise Unauthorized(_claims_error_reason(exc)) from None
        return claims
