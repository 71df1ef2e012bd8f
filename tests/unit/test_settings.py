"""Settings: every invalid CDS_* value is one line naming the variable, the value and what is
allowed; the public patient-hash key is refused where it would protect real patient ids."""

from __future__ import annotations

import pytest

from cds.errors import ConfigurationError, SettingError
from cds.settings import DEFAULT_PATIENT_HASH_KEY, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CDS_MAX_BODY_BYTES", "abc", "whole number"),
        ("CDS_MAX_BODY_BYTES", "0", "greater than 0"),
        ("CDS_REQUIRE_JWT", "yes-please", "true or false"),
        ("CDS_PAGES", "maybe", "true or false"),
        ("CDS_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("CDS_FHIR_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("CDS_FHIR_TIMEOUT_SECONDS", "soon", "a number"),
        ("CDS_PUBLIC_BASE_URL", "cds.hospital.example", "http:// or https://"),
        ("CDS_PUBLIC_BASE_URL", "ftp://cds.hospital.example", "http:// or https://"),
        ("CDS_DATABASE_URL", "mysql://db/cds", "postgresql://"),
        ("CDS_FHIR_MAX_PAGES", "0", "at least 1"),
    ],
)
def test_a_bad_value_is_one_line_naming_variable_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}={value!r} is not valid: ")
    assert allowed in message
    assert isinstance(raised.value, ConfigurationError)  # the CLI's one error tree


def test_two_bad_values_are_both_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_MAX_BODY_BYTES", "abc")
    monkeypatch.setenv("CDS_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingError) as raised:
        load_settings()
    assert "\n" not in str(raised.value)
    assert "CDS_MAX_BODY_BYTES" in str(raised.value)
    assert "CDS_LOG_LEVEL" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/cds", "postgresql://u:p@db:5432/cds"),
        ("postgresql://u@db/cds", "postgresql://u@db/cds"),
        ("postgresql+psycopg://u@db/cds", "postgresql+psycopg://u@db/cds"),
        ("sqlite:////var/lib/cds/cds.sqlite3", "sqlite:////var/lib/cds/cds.sqlite3"),
    ],
)
def test_database_urls(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    settings = load_settings()
    assert settings.sqlalchemy_url == expected
    assert settings.database_backend == ("sqlite" if url.startswith("sqlite") else "postgresql")


def test_an_empty_database_url_means_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", "")
    assert load_settings().database_backend == "sqlite"


def test_log_level_is_case_blind_and_base_url_loses_its_slash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDS_LOG_LEVEL", "debug")
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.hospital.example/")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.public_base_url == "https://cds.hospital.example"


@pytest.mark.parametrize(
    "env",
    [
        {"CDS_REQUIRE_JWT": "true"},
        {"CDS_DATABASE_URL": "postgresql://u@127.0.0.1/test"},
        {"CDS_DATABASE_URL": "postgres://u@127.0.0.1/test"},
    ],
)
def test_the_default_hash_key_is_refused_with_jwts_or_postgresql(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.patient_hash_key == DEFAULT_PATIENT_HASH_KEY
    with pytest.raises(SettingError, match=r"^CDS_PATIENT_HASH_KEY is the public default") as e:
        settings.refuse_unsafe_defaults()
    assert "\n" not in str(e.value)
    assert "cds secrets generate" in str(e.value)
    monkeypatch.setenv("CDS_PATIENT_HASH_KEY", "a-key-of-our-own")
    load_settings().refuse_unsafe_defaults()


def test_the_default_hash_key_is_allowed_for_local_sqlite_without_jwts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDS_REQUIRE_JWT", "false")
    monkeypatch.delenv("CDS_DATABASE_URL", raising=False)
    load_settings().refuse_unsafe_defaults()
