"""The README and docs/ as a newcomer reads them: short README, working links, complete settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cds.protocol.wire import FeedbackRequest
from cds.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
    quick = _section(text, "Quick start")
    block = quick.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands == ["make run", "make test"]
    assert "curl -s http://127.0.0.1:8080/cds-services/" in quick
    assert "docs/README.md" in _section(text, "Where to go next")


def test_every_setting_is_in_the_readme_settings_table() -> None:
    table = _section(README.read_text(encoding="utf-8"), "Settings")
    rows = set(re.findall(r"^\| `(CDS_[A-Z0-9_]+)` \|", table, re.MULTILINE))
    assert {f"CDS_{name.upper()}" for name in Settings.model_fields} <= rows


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_lead_to_files_and_headings_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_docs_cite_nothing_a_reader_of_the_repository_cannot_open(page: Path) -> None:
    assert "clinical-codes.md" not in page.read_text(encoding="utf-8")


def test_the_feedback_example_is_a_valid_feedback_request() -> None:
    text = (REPO / "docs" / "connecting-an-ehr.md").read_text(encoding="utf-8")
    example = _section(text, "Feedback: telling the service what the clinician did")
    body = example.split("-d '", 1)[1].split("'\n```", 1)[0]
    request = FeedbackRequest.model_validate(json.loads(body))
    assert {item.outcome for item in request.feedback} == {"accepted", "overridden"}
