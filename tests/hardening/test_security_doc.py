"""docs/security.md names the tests that cover each threat: every one of them must exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
DOC = REPO / "docs" / "security.md"
# `file.py::test_name` names a test; a following `::test_name` is in the same file.
REFERENCE = re.compile(r"`((?:[\w/]+\.py)?)::(test_\w+)`")


def test_every_test_the_threat_model_names_exists() -> None:
    current: Path | None = None
    named = 0
    for file_part, test_name in REFERENCE.findall(DOC.read_text(encoding="utf-8")):
        if file_part:
            current = REPO / "tests" / file_part
            assert current.is_file(), f"{file_part} (named in docs/security.md) does not exist"
        assert current is not None, f"::{test_name} follows no file"
        assert re.search(rf"^def {test_name}\(", current.read_text(), re.MULTILINE), (
            f"{current.relative_to(REPO)} has no {test_name} (named in docs/security.md)"
        )
        named += 1
    assert named >= 50


def test_the_readme_links_the_threat_model() -> None:
    assert "(docs/security.md)" in (REPO / "README.md").read_text(encoding="utf-8")
