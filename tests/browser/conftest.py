"""Browser tests: a real `cds serve` on a loopback port, driven by Debian's chromium.

Playwright never downloads a browser here: the session fixture ``browser_type_launch_args``
(pytest-playwright's, overridden) points it at /usr/bin/chromium, and every test skips cleanly
when that binary is missing.

The browser lives for one module, not the session: while Playwright's sync API is open it keeps
an event loop running in the main thread, and ``asyncio.run`` in any test collected after this
folder (rule cases, the CLI) would then fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.processes import REPO, free_port, start_cds, stop

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cds serve` with its own SQLite; its URL (also the public base URL of card links)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    data_dir = tmp_path_factory.mktemp("browser-server")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CDS_DATA_DIR": str(data_dir),
        "CDS_PUBLIC_BASE_URL": base,
        "CDS_REQUIRE_JWT": "false",
        "CDS_LOG_LEVEL": "WARNING",
    }
    process = start_cds(port, env)
    try:
        yield base
    finally:
        stop(process)


@pytest.fixture(scope="session")
def base_url(server: str) -> str:
    """pytest-playwright resolves relative ``page.goto`` URLs against this."""
    return server


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and PDFs go (git ignores test-artifacts/)."""
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**browser_type_launch_args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh context per test, resolving relative URLs against the server."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()
