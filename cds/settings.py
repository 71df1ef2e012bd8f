"""Service settings, read from ``CDS_*`` environment variables (see README).

:func:`load_settings` reads them and turns every invalid value into one
:class:`~cds.errors.SettingError` line that names the variable, the value and what is allowed.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cds.errors import SettingError

__all__ = ["DEFAULT_PATIENT_HASH_KEY", "Settings", "load_settings"]

_REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATIENT_HASH_KEY = "change-me"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# SQLAlchemy URL schemes the store opens; `postgres://` (Heroku, many operators) is PostgreSQL.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")


class Settings(BaseSettings):
    """All settings. Every field is listed in README's settings table with its default."""

    model_config = SettingsConfigDict(env_prefix="CDS_", extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Where the SQLite database lives.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; a postgresql:// URL replaces the SQLite default."
    )
    migrate_on_start: bool = Field(
        True, description="Bring the database schema up to date (Alembic) when the app starts."
    )
    knowledge_dir: Path = Field(_REPO_ROOT / "knowledge", description="Rules and value sets.")
    cards_dir: Path = Field(_REPO_ROOT / "cards", description="Card templates and education.")
    terminology_dir: Path | None = Field(
        None,
        description="Site terminology folder written by `cds terminology import` (RxNorm "
        "product table merged over the shipped one; see docs/terminology.md).",
    )
    synthea_dir: Path | None = Field(
        _REPO_ROOT.parent / "shared" / "data" / "synthea",
        description="Synthea bundles (*.json.bz2) the preview page offers, when the folder exists.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="The URL EHRs use to reach us; JWT `aud` and links are built from it. "
        "Unset, `cds serve` builds it from its own --host and --port.",
    )
    port: int = Field(
        8080, ge=1, le=65535, description="The port `cds serve` listens on, unless --port."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    fhir_timeout_seconds: float = Field(
        2.0, gt=0, description="Time budget for all FHIR server fetches of one call."
    )
    fhir_max_pages: int = Field(
        10, ge=1, description="Most Bundle `next` pages followed per query."
    )
    allow_http_fhir: bool = Field(
        False, description="Allow plain-http FHIR servers that are not on loopback."
    )
    require_jwt: bool = Field(False, description="Reject calls without a valid client JWT.")
    trusted_clients_file: Path | None = Field(
        None, description="YAML file of trusted EHR clients (iss, jwks_url or jwks, jku)."
    )
    jwt_leeway_seconds: int = Field(60, ge=0, description="Clock skew allowed on exp and iat.")
    jwt_max_lifetime_seconds: int = Field(
        3600, gt=0, description="Refuse client JWTs whose exp is further than this in the future."
    )
    jwks_min_refresh_seconds: float = Field(
        30.0,
        ge=0,
        description="Least time between two fetches of one JWK Set (unknown kid refresh).",
    )
    jwks_max_age_seconds: int = Field(
        3600, gt=0, description="Fetch a client's JWK Set again when the cached copy is this old."
    )
    cors_origins: str = Field(
        "", description="Comma-separated allowed CORS origins, or `*`; empty allows none."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    pages: bool = Field(
        True,
        description="Serve the web pages (home, preview, knowledge, analytics, education); "
        "off, only the CDS Hooks routes, /healthz, /readyz and /metrics answer.",
    )
    suppression_days: int = Field(
        30, ge=0, description="Days a card overridden as 'already addressed' stays hidden."
    )
    suppression_refresh_seconds: float = Field(
        2.0,
        gt=0,
        description="How often each process re-reads suppressing feedback given elsewhere.",
    )
    repeat_limits: bool = Field(
        True, description="Hold back a card shown to the patient with the same facts recently."
    )
    silent_rules: str = Field(
        "",
        description="Comma-separated rule ids, or `all`, evaluated and logged but not shown.",
    )
    require_reviewed_rules: bool = Field(
        False, description="Run rules without a current sign-off silent (the Docker image: true)."
    )
    patient_hash_key: str = Field(
        DEFAULT_PATIENT_HASH_KEY,
        description="Key for the keyed hash of patient ids in the card log.",
    )
    log_level: str = Field("INFO", description="Python log level.")

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:  # an empty variable means "the SQLite default"
            return None
        scheme = value.partition("://")[0] if "://" in value else ""
        if scheme not in _DATABASE_SCHEMES:
            raise ValueError("expected a sqlite:///PATH, postgresql://... or postgres://... URL")
        if scheme == "postgres":
            return "postgresql" + value.removeprefix("postgres")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError("expected one of " + ", ".join(_LOG_LEVELS))
        return value.upper()

    @property
    def uses_postgresql(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def database_backend(self) -> str:
        """The backend's name, for logs and /readyz (never the URL: it may hold a password)."""
        return "postgresql" if self.uses_postgresql else "sqlite"

    def refuse_unsafe_defaults(self) -> None:
        """Raise :class:`SettingError` when a production setting keeps a public default.

        The patient-hash key keys the hash of patient ids in the card log; with the published
        default, low-entropy ids (MRNs) are brute-forced in seconds. A service that requires
        client JWTs, or logs to PostgreSQL, is taken to be a real deployment.
        """
        if self.patient_hash_key != DEFAULT_PATIENT_HASH_KEY:
            return
        if self.require_jwt or self.uses_postgresql:
            why = "CDS_REQUIRE_JWT=true" if self.require_jwt else "a PostgreSQL CDS_DATABASE_URL"
            raise SettingError(
                f"CDS_PATIENT_HASH_KEY is the public default {DEFAULT_PATIENT_HASH_KEY!r}; "
                f"with {why} set a secret key (`cds secrets generate` prints one)"
            )

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cds.sqlite3').resolve()}"

    @cached_property
    def silent_rule_ids(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.silent_rules.split(",") if r.strip())

    @cached_property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


_PROBLEMS = {
    "bool_parsing": "expected true or false (also 1/0, yes/no, on/off)",
    "bool_type": "expected true or false (also 1/0, yes/no, on/off)",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "greater_than": "expected a number greater than {gt}",
    "greater_than_equal": "expected a number of at least {ge}",
}


def _setting_problem(error: Any) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    variable = f"CDS_{field.upper()}"
    kind = error.get("type", "")
    if kind == "value_error":
        allowed = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in _PROBLEMS:
        allowed = _PROBLEMS[kind].format(**error.get("ctx", {}))
    else:
        allowed = str(error["msg"]).lower()
    return f"{variable}={error.get('input')!r} is not valid: {allowed}"


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment; raises :class:`SettingError` (one line) when a
    variable holds a value that is not allowed."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingError("; ".join(_setting_problem(e) for e in exc.errors())) from None
