"""Find runs of words that a text shares with the source document.

Facts of the source document carry over into the product, its sentences do not. These helpers
gather every piece of text that the knowledge and content files hold (every string of every
YAML file, every markdown file with its front matter, found by globbing the folders, so files
added later are covered without a change here) and report each run of ``MIN_RUN`` or more
consecutive words that also occurs in the document. Words are compared after lower-casing and
dropping punctuation, so a copy with changed capitals, quotes or line breaks is still found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MIN_RUN = 10
TEXT_GLOBS = (
    "knowledge/**/*.yaml",
    "knowledge/**/*.md",
    "cards/**/*.yaml",
    "cards/**/*.md",
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_FRONT_MATTER = re.compile(r"^---\n(.*?)\n---\n(.*)$", re.DOTALL)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class Text:
    """One piece of text and where it comes from (``file: field``)."""

    origin: str
    text: str


@dataclass(frozen=True)
class SharedRun:
    origin: str
    words: str

    def __str__(self) -> str:
        return f"{self.origin}: shares {len(self.words.split())} words: {self.words!r}"


def words_of(text: str) -> list[str]:
    """Lower-cased words of ``text``, punctuation and markup dropped."""
    return _WORD.findall(text.translate(_APOSTROPHES).lower())


class SourceIndex:
    """Every run of ``MIN_RUN`` words of the source document, for constant-time look-up."""

    def __init__(self, document: str, min_run: int = MIN_RUN) -> None:
        self.min_run = min_run
        words = words_of(document)
        self._runs = {tuple(words[i : i + min_run]) for i in range(len(words) - min_run + 1)}

    def shared_runs(self, text: str) -> list[str]:
        """The longest runs of ``text`` that the document also holds, each as one string.

        Hits that start on consecutive words are merged, so a copied sentence of 15 words is
        reported once, as 15 words.
        """
        words = words_of(text)
        hits = [
            i
            for i in range(len(words) - self.min_run + 1)
            if tuple(words[i : i + self.min_run]) in self._runs
        ]
        runs: list[str] = []
        start = previous = -1
        for i in hits:
            if i != previous + 1 or start < 0:
                if start >= 0:
                    runs.append(" ".join(words[start : previous + self.min_run]))
                start = i
            previous = i
        if start >= 0:
            runs.append(" ".join(words[start : previous + self.min_run]))
        return runs


def strings_of(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside parsed YAML, with its dotted field path (``suggestions.0.label``)."""
    if isinstance(data, str):
        yield path or "(document)", data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from strings_of(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from strings_of(value, f"{path}.{index}" if path else str(index))


def texts_of_file(path: Path, label: str) -> Iterator[Text]:
    """The texts of one YAML or markdown file; a markdown front matter is read as YAML.

    Each YAML string is its own text, so short values that happen to sit next to each other
    (a list of section headings) never join into a run. Table cells of markdown are split
    apart for the same reason.
    """
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".yaml":
        for field, value in strings_of(yaml.safe_load(raw)):
            yield Text(f"{label}: {field}", value)
        return
    match = _FRONT_MATTER.match(raw)
    body = raw
    if match:
        for field, value in strings_of(yaml.safe_load(match.group(1))):
            yield Text(f"{label}: {field}", value)
        body = match.group(2)
    for index, cell in enumerate(body.split("|")):
        yield Text(f"{label}: body" if index == 0 else f"{label}: body cell {index}", cell)


def repository_texts(repo: Path, globs: tuple[str, ...] = TEXT_GLOBS) -> Iterator[Text]:
    """Every text of the files matched by ``globs`` under ``repo``, in a stable order."""
    seen: set[Path] = set()
    for pattern in globs:
        for path in sorted(repo.glob(pattern)):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            yield from texts_of_file(path, path.relative_to(repo).as_posix())


def find_shared_runs(texts: Iterator[Text], index: SourceIndex) -> list[SharedRun]:
    return [SharedRun(t.origin, run) for t in texts for run in index.shared_runs(t.text)]
