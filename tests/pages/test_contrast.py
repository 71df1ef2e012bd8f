"""The stylesheet's text colours meet WCAG 2.1 AA contrast (4.5:1) on their backgrounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cds

CSS = Path(cds.__file__).parent / "web" / "static" / "site.css"
# (text colour, background) pairs the pages use; names are the stylesheet's custom properties.
PAIRS = [
    ("text", "bg"),
    ("text", "panel"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("link", "bg"),
    ("link", "panel"),
    ("#ffffff", "brand"),
    ("#ffffff", "info"),
    ("#ffffff", "critical"),
    ("#ffffff", "link"),
    ("warning-text", "warning-bg"),
    ("ok", "bg"),
    ("ok", "panel"),
    ("critical", "bg"),
    ("critical", "#fdecea"),
    ("muted", "#e6edf5"),  # the patient banner
]


def _variables() -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6});", CSS.read_text()))


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _ratio(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_ratio_formula() -> None:
    assert _ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert _ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_contrast_is_aa(text: str, background: str) -> None:
    colours = _variables()
    fore = text if text.startswith("#") else colours[text]
    back = background if background.startswith("#") else colours[background]
    assert _ratio(fore, back) >= 4.5, (text, background, round(_ratio(fore, back), 2))
