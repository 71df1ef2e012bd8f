"""Start real service processes on loopback ports for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CDS = str(Path(sys.executable).parent / "cds")
TEST_PATIENT_HASH_KEY = "test-patient-hash-key-not-the-default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(
    base_url: str, process: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} did not become healthy in {timeout} s")


def start_cds(
    port: int,
    env: Mapping[str, str],
    *,
    workers: int = 1,
    graceful_seconds: int = 10,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`cds serve` as a child process; returns once /healthz answers.

    The process starts isolated from the developer's environment: SQLite (under the
    ``CDS_DATA_DIR`` the caller gives), no JWT requirement and a patient-hash key of its own
    (``cds serve`` refuses the public default with JWTs or PostgreSQL), unless ``env`` says
    otherwise.
    """
    full_env = {
        **os.environ,
        "CDS_DATABASE_URL": "",
        "CDS_REQUIRE_JWT": "false",
        "CDS_PATIENT_HASH_KEY": TEST_PATIENT_HASH_KEY,
        **env,
    }
    log = log_path.open("ab") if log_path else None
    process = subprocess.Popen(
        [
            CDS,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--graceful-seconds",
            str(graceful_seconds),
        ],
        env=full_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL if log is None else log,
        stderr=subprocess.DEVNULL if log is None else log,
    )
    if log is not None:
        log.close()  # the child keeps its own descriptor
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process)
    except Exception:
        process.kill()
        process.wait()
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
