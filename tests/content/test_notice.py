"""LICENSE is the Apache-2.0 text pyproject names; NOTICE names the source article and cites,
for every education page, the sections it draws on (as the page's own front matter does)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_licence_is_the_apache_2_text_pyproject_names() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    with (REPO / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    assert project["license"] == "Apache-2.0"  # an SPDX expression
    assert project["license-files"] == ["LICENSE", "NOTICE"]


def test_notice_cites_the_article_and_every_page_by_section() -> None:
    notice = (REPO / "NOTICE").read_text(encoding="utf-8")
    sources = yaml.safe_load((REPO / "knowledge" / "sources.yaml").read_text(encoding="utf-8"))
    assert f'"{sources["title"]}", {sources["publisher"]}' in notice
    pages = sorted((REPO / "cards" / "education").glob("*.md"))
    assert pages
    for page in pages:
        front = yaml.safe_load(page.read_text(encoding="utf-8").split("---")[1])
        (line,) = [x for x in notice.splitlines() if f"cards/education/{page.name}" in x]
        for section in front["sections"]:
            assert f'"{section}"' in line, (page.name, section)
