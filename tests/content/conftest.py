"""Fixtures of the content tests (education pages, originality of every text)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.content.readability import flesch_kincaid_grade, install_offline_cmudict


@pytest.fixture(scope="session")
def fk_grade(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], float]:
    """Flesch-Kincaid grade of a markdown text, with textstat's dictionary installed offline."""
    install_offline_cmudict(tmp_path_factory.mktemp("nltk_data"))
    return flesch_kincaid_grade
