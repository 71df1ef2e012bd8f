"""The Kubernetes manifests validate offline and keep the production guarantees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds.settings import Settings

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _by_kind(kind: str) -> dict[str, Any]:
    return next(doc for _, doc in _documents() if doc["kind"] == kind)


@pytest.mark.parametrize(
    ("name", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_manifest_is_valid_kubernetes(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_rejects_a_broken_manifest() -> None:
    broken = _by_kind("Deployment")
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret-example.yaml",
    }
    assert listed == files


def test_deployment_probes_security_and_resources() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert pod["terminationGracePeriodSeconds"] > 20  # longer than cds serve --graceful-seconds


def test_configmap_sets_only_real_settings() -> None:
    fields = {f"CDS_{name.upper()}" for name in Settings.model_fields}
    keys = set(_by_kind("ConfigMap")["data"])
    assert keys <= fields, f"unknown settings: {sorted(keys - fields)}"
    assert _by_kind("ConfigMap")["data"]["CDS_REQUIRE_JWT"] == "true"


def test_the_ingress_routes_only_the_api_and_what_cards_link_to() -> None:
    ingress = _by_kind("Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {"/cds-services", "/education", "/knowledge", "/static"}
    configmap = _by_kind("ConfigMap")
    assert configmap["data"]["CDS_PAGES"] == "false"


def test_the_migration_job_is_named_for_its_release() -> None:
    job = _by_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    tag = container["image"].rsplit(":", 1)[1]
    assert job["metadata"]["name"] == "cds-db-upgrade-" + tag.replace(".", "-")
