"""The image, built and run: a real Docker engine, the Dockerfile as it is.

Skipped where no Docker engine answers. Where no image registry can be reached (this
project's machines), the Dockerfile's base is a stand-in made by ``stand_in_base.sh``
(debootstrap: Debian bookworm with python3, python3-venv, python-is-python3 and this host's
CA bundle), kept between runs. The image is built with ``--network host`` (pip reaches the
package index) and run with ``--network host`` on a free loopback port, read-only, with a
tmpfs for its data directory. The build time and the image size are printed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import REPO, TEST_PATIENT_HASH_KEY, free_port
from tests.trust.conftest import claims, new_ec_key, patient_view_request, sign, write_clients

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

BASE = "python:3.11-slim-bookworm"
TAG = "cds-breast-cancer-followup:test"
SERVICE = "breast-cancer-followup-patient-view"
ISS = "https://ehr.image.test"
KEY = new_ec_key("image-key")


def _docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker engine answers")
    started = time.monotonic()
    if not _docker("image", "ls", "-q", BASE):
        if shutil.which("debootstrap") is None:
            pytest.skip(f"no {BASE} image and no debootstrap to make a stand-in")
        subprocess.run(
            ["bash", str(Path(__file__).with_name("stand_in_base.sh")), BASE],
            check=True,
            timeout=1200,
        )
    based = time.monotonic()
    _docker("build", "--network", "host", "-t", TAG, str(REPO), timeout=1800)
    built = time.monotonic()
    size = int(_docker("image", "inspect", "--format", "{{.Size}}", TAG))
    print(
        f"\nimage {TAG}: {size / 1e6:.0f} MB; base ready in {based - started:.0f} s, "
        f"built in {built - based:.0f} s"
    )
    return TAG


class Container:
    def __init__(self, container_id: str, port: int) -> None:
        self.id = container_id
        self.base = f"http://127.0.0.1:{port}"

    def inspect(self) -> dict[str, object]:
        document: list[dict[str, object]] = json.loads(_docker("inspect", self.id))
        return document[0]

    def logs(self) -> str:
        result = subprocess.run(
            ["docker", "logs", self.id], capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout + result.stderr


def _run(image: str, tmp_path: Path, *env: str) -> Container:
    port = free_port()
    clients = write_clients(
        tmp_path / "clients.yaml", [{"iss": ISS, "jwks": {"keys": [KEY.public_jwk]}}]
    )
    clients.chmod(0o644)
    container_id = _docker(
        "run",
        "--detach",
        "--name",
        f"cds-test-{uuid.uuid4().hex[:8]}",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/app/var:uid=10001,gid=10001,mode=0700",
        "--tmpfs",
        "/tmp",
        "--volume",
        f"{clients}:/etc/cds/clients.yaml:ro",
        "--env",
        f"CDS_PORT={port}",
        "--env",
        "CDS_TRUSTED_CLIENTS_FILE=/etc/cds/clients.yaml",
        "--env",
        f"CDS_PATIENT_HASH_KEY={TEST_PATIENT_HASH_KEY}",
        *[part for variable in env for part in ("--env", variable)],
        # The Dockerfile's own health check command, probed every second instead of 30 s.
        "--health-interval",
        "1s",
        image,
        "cds",
        "serve",
        "--host",
        "127.0.0.1",  # the host's network: loopback only
    )
    return Container(container_id, port)


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[Container]:
    """The image as a site runs it once its rules are signed off (the repository's rules carry
    no sign-off yet, and the image runs unreviewed rules silent: see the pages test)."""
    running = _run(image, tmp_path, "CDS_REQUIRE_REVIEWED_RULES=false")
    try:
        yield running
    finally:
        _docker("rm", "--force", running.id, check=False)


def _wait_healthy(container: Container, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    status = "starting"
    while time.monotonic() < deadline:
        state = container.inspect()["State"]
        assert isinstance(state, dict)
        if not state.get("Running"):
            raise AssertionError(f"the container stopped:\n{container.logs()[-3000:]}")
        status = state.get("Health", {}).get("Status", "none")
        if status in ("healthy", "unhealthy"):
            return str(status)
        time.sleep(0.5)
    return status


def test_the_image_serves_securely(container: Container) -> None:
    assert _wait_healthy(container) == "healthy", container.logs()[-3000:]
    assert httpx.get(f"{container.base}/healthz").json() == {"status": "ok"}
    # uid 10001, read-only root file system
    assert _docker("exec", container.id, "id", "-u") == "10001"
    assert container.inspect()["HostConfig"]["ReadonlyRootfs"] is True  # type: ignore[index]
    denied = subprocess.run(
        ["docker", "exec", container.id, "touch", "/app/x"], capture_output=True, timeout=30
    )
    assert denied.returncode != 0
    # client JWTs: 401 without, cards with a valid one (aud: the URL it serves, no base set)
    url = f"{container.base}/cds-services/{SERVICE}"
    assert httpx.post(url, json=patient_view_request()).status_code == 401
    token = sign(KEY, claims(url, iss=ISS))
    answer = httpx.post(
        url, json=patient_view_request(), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["cards"]
    # pages off unless CDS_PAGES is set; what cards link to stays
    assert httpx.get(f"{container.base}/preview").status_code == 404
    assert httpx.get(f"{container.base}/analytics").status_code == 404
    link = answer.json()["cards"][0]["links"][0]["url"]
    assert httpx.get(link).status_code == 200
    assert '"event":"started"' in container.logs()
    _docker("stop", "--time", "30", container.id)
    assert container.inspect()["State"]["ExitCode"] == 0  # type: ignore[index]


def test_pages_follow_cds_pages_and_unreviewed_rules_stay_silent(
    image: str, tmp_path: Path
) -> None:
    running = _run(image, tmp_path, "CDS_PAGES=on")
    try:
        assert _wait_healthy(running) == "healthy", running.logs()[-3000:]
        assert httpx.get(f"{running.base}/preview").status_code == 200
        assert httpx.get(f"{running.base}/analytics").status_code == 200
        # the image's default CDS_REQUIRE_REVIEWED_RULES=true: unreviewed rules run silent
        url = f"{running.base}/cds-services/{SERVICE}"
        token = sign(KEY, claims(url, iss=ISS))
        answer = httpx.post(
            url, json=patient_view_request(), headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"cards": []}
    finally:
        _docker("rm", "--force", running.id, check=False)


def test_the_image_refuses_the_default_hash_key(image: str) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: CDS_PATIENT_HASH_KEY is the public default")
