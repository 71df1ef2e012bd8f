"""A small grouped bar chart, laid out in Python and drawn as inline SVG by a template.

No JavaScript and no image files: the page stays one HTML document that works offline, and
every number is also in the table beside the chart.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "grouped_bar_chart"]

_LABEL_WIDTH = 280
_BAR_HEIGHT = 14
_BAR_GAP = 3
_GROUP_GAP = 16
_PLOT_WIDTH = 420
_TOP = 28
_RIGHT_MARGIN = 50
# A group label is wrapped to two lines of at most 30 characters (13 px text is under 8 px a
# character, so a line fits in the 272 px left of the bars); a longer label is cut with "…"
# (the table beside the chart has it whole).
_LABEL_CHARS = 30
_LABEL_LINES = 2
_LINE_HEIGHT = 15


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    title: str


@dataclass(frozen=True)
class GroupLabel:
    x: float
    y: float
    lines: tuple[str, ...]
    line_height: int = _LINE_HEIGHT

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def _label_lines(label: str) -> tuple[str, ...]:
    lines = textwrap.wrap(label, _LABEL_CHARS, break_on_hyphens=True) or [""]
    if len(lines) > _LABEL_LINES:
        last = " ".join(lines[_LABEL_LINES - 1 :])
        lines = [*lines[: _LABEL_LINES - 1], last[: _LABEL_CHARS - 1].rstrip() + "…"]
    return tuple(lines)


def _ticks(peak: int) -> tuple[int, ...]:
    """Whole-number ticks from 0 to ``peak`` (a count has no halves): 2 to 6 of them."""
    step = peak // 2 if peak % 2 == 0 else peak // 5 if peak % 5 == 0 else peak
    return tuple(range(0, peak + 1, max(step, 1)))


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: float
    bars: tuple[Bar, ...]
    labels: tuple[GroupLabel, ...]
    ticks: tuple[Tick, ...]
    description: str


def _nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def grouped_bar_chart(
    groups: list[tuple[str, list[int]]], series: tuple[str, ...], description: str
) -> BarChart:
    """One group of horizontal bars per label, one bar per series, on a shared scale."""
    peak = _nice_max(max((v for _, values in groups for v in values), default=1))
    scale = _PLOT_WIDTH / peak
    group_height = len(series) * (_BAR_HEIGHT + _BAR_GAP) - _BAR_GAP
    bars: list[Bar] = []
    labels: list[GroupLabel] = []
    y = float(_TOP)
    for label, values in groups:
        lines = _label_lines(label)
        first_line = y + group_height / 2 + 4 - (len(lines) - 1) * _LINE_HEIGHT / 2
        labels.append(GroupLabel(_LABEL_WIDTH - 8, first_line, lines))
        for name, value in zip(series, values, strict=True):
            bars.append(
                Bar(
                    x=_LABEL_WIDTH,
                    y=y,
                    width=max(value * scale, 0.0),
                    height=_BAR_HEIGHT,
                    series=name,
                    value=value,
                    title=f"{label}: {value} {name}",
                )
            )
            y += _BAR_HEIGHT + _BAR_GAP
        y += _GROUP_GAP - _BAR_GAP
    ticks = tuple(Tick(_LABEL_WIDTH + t * scale, str(t)) for t in _ticks(peak))
    return BarChart(
        width=_LABEL_WIDTH + _PLOT_WIDTH + _RIGHT_MARGIN,
        height=int(y) + 24,
        plot_left=_LABEL_WIDTH,
        plot_top=_TOP - 6,
        plot_bottom=y,
        bars=tuple(bars),
        labels=tuple(labels),
        ticks=ticks,
        description=description,
    )
