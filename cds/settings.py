"""Service settings, read from ``CDS_*`` environment variables (see README)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

_REPO_ROOT = Path(__file__).resolve().parent.parent


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
        description="The URL EHRs use to reach us; JWT `aud` and links are built from it.",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, description="Largest request body accepted.")
    fhir_timeout_seconds: float = Field(
        2.0, description="Time budget for all FHIR server fetches of one call."
    )
    fhir_max_pages: int = Field(10, description="Most Bundle `next` pages followed per query.")
    allow_http_fhir: bool = Field(
        False, description="Allow plain-http FHIR servers that are not on loopback."
    )
    require_jwt: bool = Field(False, description="Reject calls without a valid client JWT.")
    trusted_clients_file: Path | None = Field(
        None, description="YAML file of trusted EHR clients (iss, jwks_url or jwks, jku)."
    )
    jwt_leeway_seconds: int = Field(60, description="Clock skew allowed on exp and iat.")
    jwt_max_lifetime_seconds: int = Field(
        3600, description="Refuse client JWTs whose exp is further than this in the future."
    )
    jwks_min_refresh_seconds: float = Field(
        30.0, description="Least time between two fetches of one JWK Set (unknown kid refresh)."
    )
    jwks_max_age_seconds: int = Field(
        3600, description="Fetch a client's JWK Set again when the cached copy is this old."
    )
    cors_origins: str = Field(
        "", description="Comma-separated allowed CORS origins, or `*`; empty allows none."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    suppression_days: int = Field(
        30, description="Days a card overridden as 'already addressed' stays hidden."
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
        "change-me", description="Key for the keyed hash of patient ids in the card log."
    )
    log_level: str = Field("INFO", description="Python log level.")

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
