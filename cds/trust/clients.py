"""The EHR clients this service trusts, read from ``CDS_TRUSTED_CLIENTS_FILE`` (YAML).

::

    clients:
      - iss: https://ehr.hospital.example            # the JWT `iss`, compared exactly
        jwks_url: https://ehr.hospital.example/.well-known/jwks.json
        jku: [https://ehr.hospital.example/keys-2.json]   # other `jku` URLs the client may send
        tenant: 2ddd6c3a-8e9a-44c6-a305-52111ad302a2      # or a list; absent: any tenant
        allow_rs256_es256: false                          # RS384 and ES384 are always allowed
      - iss: https://other-ehr.example
        jwks: {keys: [{kty: EC, crv: P-384, kid: k1, x: ..., y: ...}]}   # keys shared out of band

A client needs at least one key source: ``jwks_url``, inline ``jwks`` or allowed ``jku`` URLs.
Key URLs must be https (plain http only on loopback, for tests and local clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cds.errors import ConfigurationError
from cds.loopback import is_loopback_url
from cds.settings import Settings
from cds.strict_yaml import load_yaml_text
from cds.trust.key_sets import VerificationKey, parse_jwk_set

__all__ = [
    "RECOMMENDED_ALGORITHMS",
    "TrustedClient",
    "TrustedClientEntry",
    "configured_trusted_clients",
    "load_trusted_clients",
    "parse_trusted_clients",
]

RECOMMENDED_ALGORITHMS = frozenset({"RS384", "ES384"})
_OPTIONAL_ALGORITHMS = frozenset({"RS256", "ES256"})


def _check_key_url(url: str) -> str:
    if url.startswith("https://") or (url.startswith("http://") and is_loopback_url(url)):
        return url
    raise ValueError(f"{url!r} must be an https URL (plain http only on loopback)")


class TrustedClientEntry(BaseModel):
    """One entry of the YAML file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    jku: list[str] = Field(default_factory=list)
    tenant: str | list[str] | None = None
    allow_rs256_es256: bool = False

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_key_url(value)

    @field_validator("jku")
    @classmethod
    def _jku(cls, value: list[str]) -> list[str]:
        return [_check_key_url(url) for url in value]


@dataclass(frozen=True)
class TrustedClient:
    """A client ready for verification: inline keys parsed, allowlists as sets."""

    iss: str
    jwks_url: str | None
    inline_keys: dict[str, VerificationKey]
    allowed_jku: frozenset[str]
    tenants: frozenset[str]
    algorithms: frozenset[str]

    @classmethod
    def from_entry(cls, entry: TrustedClientEntry) -> TrustedClient:
        inline = parse_jwk_set(entry.jwks, reject_private=True) if entry.jwks is not None else {}
        allowed = set(entry.jku)
        if entry.jwks_url:
            allowed.add(entry.jwks_url)
        tenants = [entry.tenant] if isinstance(entry.tenant, str) else entry.tenant or []
        algorithms = RECOMMENDED_ALGORITHMS | (
            _OPTIONAL_ALGORITHMS if entry.allow_rs256_es256 else frozenset()
        )
        return cls(
            iss=entry.iss,
            jwks_url=entry.jwks_url,
            inline_keys=inline,
            allowed_jku=frozenset(allowed),
            tenants=frozenset(tenants),
            algorithms=algorithms,
        )


def parse_trusted_clients(data: Any, where: str) -> dict[str, TrustedClient]:
    """Validate the parsed YAML; every problem is reported with ``where`` and the field."""
    if not isinstance(data, dict) or not isinstance(data.get("clients"), list):
        raise ConfigurationError([f"{where}: expected a mapping with a `clients` list"])
    problems: list[str] = []
    clients: dict[str, TrustedClient] = {}
    for index, raw in enumerate(data["clients"]):
        at = f"{where}: clients[{index}]"
        try:
            entry = TrustedClientEntry.model_validate(raw)
        except ValidationError as exc:
            problems += [
                f"{at}.{'.'.join(str(p) for p in err['loc']) or '(entry)'}: {err['msg']}"
                for err in exc.errors()
            ]
            continue
        if entry.jwks_url is None and entry.jwks is None and not entry.jku:
            problems.append(f"{at}: give `jwks_url`, an inline `jwks` or allowed `jku` URLs")
            continue
        if entry.iss in clients:
            problems.append(f"{at}.iss: {entry.iss!r} is listed twice")
            continue
        try:
            clients[entry.iss] = TrustedClient.from_entry(entry)
        except ValueError as exc:
            problems.append(f"{at}.jwks: {exc}")
    if problems:
        raise ConfigurationError(problems)
    return clients


def load_trusted_clients(path: Path) -> dict[str, TrustedClient]:
    """Read and validate the trusted-clients file; raise :class:`ConfigurationError` if bad."""
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError([f"{path}: cannot read the trusted clients file ({exc})"]) from exc
    return parse_trusted_clients(data, str(path))


def configured_trusted_clients(settings: Settings) -> dict[str, TrustedClient] | None:
    """The clients of ``CDS_TRUSTED_CLIENTS_FILE``, None when unset.

    Requiring tokens without any trusted client would refuse every call, so that is a
    configuration error rather than a silent lock-out.
    """
    if settings.trusted_clients_file is None:
        if settings.require_jwt:
            raise ConfigurationError(
                ["CDS_REQUIRE_JWT=true needs CDS_TRUSTED_CLIENTS_FILE (see 'Connecting an EHR')"]
            )
        return None
    return load_trusted_clients(settings.trusted_clients_file)
