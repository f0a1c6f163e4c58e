"""The report's charts: score histograms and threshold sweeps, as inline SVG.

This module works out the geometry (bars, lines, ticks, in pixels); the template's ``chart`` macro
draws it. Inline SVG rather than a plotting library's PNG: a chart costs microseconds instead of the
~0.1 s a matplotlib figure took (a fixed cost every ``pairsynth generate`` paid), the report needs no
extra files, stays sharp at any zoom, shows a bar's exact count on hover, and re-runs are byte-identical.
Scores live on a fixed 0–100 scale (``100·max(cos, 0)``), so the x axis never needs fitting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COLOURS = {"clip": "#3b6ea8", "clap": "#b5632a"}  # per judge; the template draws axes and thresholds itself
OTHER_COLOUR = "#555"
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 624, 30, 214  # the plot area inside the WIDTH × HEIGHT canvas
SCORE_TICKS = range(0, 101, 10)


@dataclass(frozen=True)
class Tick:
    at: float  # pixels along its axis
    label: str


@dataclass(frozen=True, kw_only=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    tip: str  # shown on hover


@dataclass(frozen=True)
class Line:
    points: str  # SVG polyline points, "x,y x,y …"
    colour: str
    label: str


@dataclass(frozen=True)
class Rule:
    """A dashed vertical line across the plot (a threshold), labelled at its top."""

    x: float
    label: str


@dataclass(frozen=True, kw_only=True)
class Dot:
    x: float
    y: float
    colour: str
    label: str

    @property
    def label_y(self) -> float:
        """Above the dot, or below it when the dot sits at the top of the plot."""
        return self.y - 5 if self.y > TOP + 14 else self.y + 14


@dataclass(frozen=True, kw_only=True)
class Chart:
    """Everything the template draws, in pixel coordinates of a ``WIDTH × HEIGHT`` canvas."""

    title: str
    x_label: str
    y_label: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    colour: str = OTHER_COLOUR
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    legend: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def histogram_chart(edges: Sequence[float], counts: Sequence[int], *, judge: str, threshold: float | None,
                    unit: str) -> Chart:
    """Bars of the score histogram, with the acceptance threshold as a labelled dashed line."""
    x = _scale(edges[0], edges[-1], LEFT, RIGHT)
    top_count, step = nice_ceiling(max(counts, default=0))
    y = _scale(0, top_count, BOTTOM, TOP)
    bars = [Bar(x=x(low), y=y(count), width=max(x(high) - x(low) - 1, 1), height=BOTTOM - y(count),
                tip=f"{low:g}–{high:g}: {count} pair{'s' if count != 1 else ''}")
            for low, high, count in zip(edges[:-1], edges[1:], counts) if count]
    title = f"{judge.upper()}Score per pair ({sum(counts)} scored)"
    rules = []
    if threshold is not None:
        below = sum(c for low, c in zip(edges[:-1], counts) if low < threshold)
        title = f"{judge.upper()}Score per pair ({sum(counts)} scored, about {below} below the threshold)"
        rules.append(Rule(x(threshold), f"threshold {threshold:g}"))
    return Chart(title=title, x_label=unit, y_label="pairs", x_ticks=_score_ticks(x),
                 y_ticks=[Tick(y(v), str(v)) for v in range(0, top_count + 1, step)],
                 colour=COLOURS.get(judge, OTHER_COLOUR), bars=bars, rules=rules)


def sweep_chart(sweeps: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                marks: Mapping[str, tuple[float, float]]) -> Chart:
    """The share of pairs kept as the threshold rises, one line per judge.

    Args:
        sweeps: per judge, the thresholds tried and the share kept at each.
        marks: per judge, the chosen threshold and the share it keeps (computed exactly, not read off
            the sampled sweep).
    """
    x = _scale(0, 100, LEFT, RIGHT)
    y = _scale(0, 100, BOTTOM, TOP)
    lines, rules, dots = [], [], []
    for judge, (values, kept) in sweeps.items():
        colour = COLOURS.get(judge, OTHER_COLOUR)
        lines.append(Line(" ".join(f"{x(v):.1f},{y(100 * k):.1f}" for v, k in zip(values, kept)), colour,
                          f"{judge.upper()}Score"))
        if judge in marks:
            threshold, at = marks[judge]
            rules.append(Rule(x(threshold), ""))
            dots.append(Dot(x=x(threshold), y=y(100 * at), colour=colour,
                            label=f"{100 * at:.1f}% kept at {threshold:g}"))
    return Chart(title="Share of pairs kept against the threshold", x_label="threshold (score = 100·max(cosine, 0))",
                 y_label="% of pairs kept", x_ticks=_score_ticks(x),
                 y_ticks=[Tick(y(v), str(v)) for v in range(0, 101, 20)],
                 lines=lines, rules=rules, dots=dots, legend=len(lines) > 1)


def nice_ceiling(largest: int, max_ticks: int = 5) -> tuple[int, int]:
    """An axis top ≥ ``largest`` and an integer tick step of 1, 2 or 5 × 10ⁿ giving at most ``max_ticks`` steps.

    Counts get whole-number ticks: no "0.2 pairs" on a small dataset.
    """
    largest = max(int(largest), 1)
    magnitude = 10 ** max(int(math.log10(largest / max_ticks)), 0) if largest > max_ticks else 1
    # magnitude ≤ largest / max_ticks < 10 · magnitude, so a step of 10 · magnitude always fits.
    step = next(f * magnitude for f in (1, 2, 5, 10) if math.ceil(largest / (f * magnitude)) <= max_ticks)
    return math.ceil(largest / step) * step, step


def _scale(low: float, high: float, start: float, end: float):
    span = (high - low) or 1.0
    return lambda value: round(start + (min(max(value, low), high) - low) / span * (end - start), 2)


def _score_ticks(x) -> list[Tick]:
    return [Tick(x(v), str(v)) for v in SCORE_TICKS]
