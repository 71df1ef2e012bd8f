"""The trusted-clients file: what loads, and a clear error (file and field) for what does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jwt.algorithms import RSAAlgorithm

from cds.errors import ConfigurationError
from cds.trust.clients import load_trusted_clients, parse_trusted_clients
from tests.conftest import REPO
from tests.trust.conftest import KeyPair, new_rsa_key, write_clients


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ConfigurationError) as error:
        parse_trusted_clients(data, "clients.yaml")
    return error.value.problems


def test_a_complete_file_loads(tmp_path: Path, ec_key: KeyPair) -> None:
    path = write_clients(
        tmp_path / "clients.yaml",
        [
            {
                "iss": "https://ehr.example",
                "jwks_url": "https://ehr.example/jwks.json",
                "jku": ["https://ehr.example/next.json"],
                "tenant": "t-1",
                "allow_rs256_es256": True,
            },
            {"iss": "https://other.example", "jwks": {"keys": [ec_key.public_jwk]}},
        ],
    )
    clients = load_trusted_clients(path)
    first, second = clients["https://ehr.example"], clients["https://other.example"]
    assert first.allowed_jku == {"https://ehr.example/jwks.json", "https://ehr.example/next.json"}
    assert first.tenants == {"t-1"}
    assert first.algorithms == {"RS384", "ES384", "RS256", "ES256"}
    assert second.algorithms == {"RS384", "ES384"}
    assert set(second.inline_keys) == {ec_key.kid}
    assert second.jwks_url is None


def test_yaml_with_comments_loads(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text(
        "# our EHR\nclients:\n  - iss: https://ehr.example  # production\n"
        "    jwks_url: https://ehr.example/.well-known/jwks.json\n",
        encoding="utf-8",
    )
    assert list(load_trusted_clients(path)) == ["https://ehr.example"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "expected a mapping with a `clients` list"),
        ({"clients": [{"iss": "https://a.example"}]}, "clients[0]: give `jwks_url`"),
        (
            {"clients": [{"iss": "https://a.example", "jwks_url": "http://a.example/k"}]},
            "clients[0].jwks_url",
        ),
        (
            {"clients": [{"iss": "https://a.example", "jku": ["ftp://a.example/k"]}]},
            "clients[0].jku: Value error, 'ftp://a.example/k' must be an https URL",
        ),
        (
            {"clients": [{"iss": "https://a.example", "jwks_uri": "https://a.example/k"}]},
            "clients[0].jwks_uri: Extra inputs are not permitted",
        ),
        (
            {
                "clients": [
                    {"iss": "https://a.example", "jwks_url": "https://a.example/k"},
                    {"iss": "https://a.example", "jwks_url": "https://a.example/k2"},
                ]
            },
            "clients[1].iss: 'https://a.example' is listed twice",
        ),
        ({"clients": [{"jwks_url": "https://a.example/k"}]}, "clients[0].iss: Field required"),
        (
            {"clients": [{"iss": "https://a.example", "jwks": {"keys": [{"kty": "oct"}]}}]},
            "clients[0].jwks: the JWK Set has no usable",
        ),
    ],
)
def test_bad_entries_are_reported_with_file_and_field(data: Any, expected: str) -> None:
    assert any(expected in problem for problem in problems_of(data)), problems_of(data)
    assert all(problem.startswith("clients.yaml") for problem in problems_of(data))


def test_a_private_key_pasted_inline_is_refused() -> None:
    jwk = RSAAlgorithm.to_jwk(new_rsa_key().private, as_dict=True) | {"kid": "k"}
    problems = problems_of({"clients": [{"iss": "https://a.example", "jwks": {"keys": [jwk]}}]})
    assert any("private key material" in p for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({"clients": [{"iss": "https://a.example"}, {"iss": ""}]})
    assert len(problems) == 2


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the trusted clients file"):
        load_trusted_clients(tmp_path / "absent.yaml")


def test_loopback_http_key_urls_are_allowed_for_local_clients() -> None:
    clients = parse_trusted_clients(
        {"clients": [{"iss": "local", "jwks_url": "http://127.0.0.1:9999/jwks.json"}]}, "x"
    )
    assert clients["local"].jwks_url == "http://127.0.0.1:9999/jwks.json"


def test_the_documented_example_is_a_valid_file() -> None:
    doc = (REPO / "docs" / "connecting-an-ehr.md").read_text(encoding="utf-8")
    section = doc.split("## Registering the EHR", 1)[1].split("\n## ", 1)[0]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    clients = parse_trusted_clients(yaml.safe_load(example), "docs/connecting-an-ehr.md")
    assert set(clients) == {"https://ehr.hospital.example", "https://clinic-ehr.example"}
    assert clients["https://clinic-ehr.example"].algorithms >= {"RS256", "ES256"}
