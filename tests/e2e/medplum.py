"""Run and drive the Medplum-based FHIR server of ``tests/e2e/fhir-server`` (server.mjs)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVER_DIR = Path(__file__).resolve().parent / "fhir-server"
START_SECONDS = 90  # indexing the FHIR definitions takes a few seconds on a busy machine
INSTALL_SECONDS = 600


def node_tools() -> tuple[str, str] | None:
    """Paths of node and npm, or None when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def install(npm: str) -> None:
    """``npm ci`` from the committed lock file, unless node_modules is already there."""
    if (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=SERVER_DIR,
        check=True,
        timeout=INSTALL_SECONDS,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class MedplumServer:
    """A running server.mjs. ``base`` is its FHIR base URL; ``token`` the bearer it wants."""

    process: subprocess.Popen[bytes]
    port: int
    token: str

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.origin}/fhir"

    def control(self, **changes: Any) -> None:
        response = httpx.post(f"{self.origin}/__control", json=changes, timeout=10)
        response.raise_for_status()

    def reset(self) -> None:
        self.control(token=self.token, mode="normal", delayMs=0, pageSize=20, slowPaths="")
        httpx.delete(f"{self.origin}/__requests", timeout=10).raise_for_status()

    def load(self, bundle: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.origin}/__load", json=bundle, timeout=60)
        response.raise_for_status()
        loaded: dict[str, Any] = response.json()
        return loaded

    def requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.origin}/__requests", timeout=10)
        response.raise_for_status()
        seen: list[dict[str, Any]] = response.json()
        return seen

    def search_all(self, query: str, *, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every resource a read or search returns, all pages (what a full prefetch holds)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        url: str | None = f"{self.base}/{query}"
        found: list[dict[str, Any]] = []
        for _ in range(max_pages):
            if url is None:
                return found
            response = httpx.get(url, headers=headers, timeout=30)
            response.raise_for_status()
            body = response.json()
            if body["resourceType"] != "Bundle":
                return [body]
            found += [e["resource"] for e in body.get("entry", [])]
            url = next((ln["url"] for ln in body.get("link", []) if ln["relation"] == "next"), None)
        raise AssertionError(f"more than {max_pages} pages for {query}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(node: str, token: str, log_path: Path) -> MedplumServer:
    """Start server.mjs on a free loopback port; returns once it listens."""
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [node, "server.mjs", "--port", "0", "--token", token],
            cwd=SERVER_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "NODE_OPTIONS": ""},
        )
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=START_SECONDS)
        port = int(json.loads(first)["port"])
    except (queue.Empty, ValueError, KeyError) as exc:
        process.kill()
        process.wait(timeout=10)
        stdout.close()
        raise RuntimeError(f"server.mjs did not start; see {log_path}") from exc
    return MedplumServer(process=process, port=port, token=token)
