"""Write a probe's ``summary.json`` and its HTML page (jinja2, inline SVG chart, opens from disk).

The page leads with the question the probe answers — is real + synthetic better than the best of
real and real + classic augmentation, on the same draws? — and every number on it says how many
draws it rests on. The chart reuses the QA report's geometry (:mod:`pairsynth.alignment.qa_charts`)
and its SVG macro, so both reports draw alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from pairsynth.alignment.qa_charts import BOTTOM, LEFT, RIGHT, TOP, Chart, Dot, Line, Tick

PALETTE = ("#777777", "#2e8b57", "#3b6ea8", "#b5632a", "#7b4ea8", "#a83b6e", "#3ba8a0", "#a8953b")


def write_report(summary: Mapping[str, Any], out: str | Path) -> Path:
    """Write ``summary.json`` and ``index.html`` into ``out``; return the page's path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=_plain) + "\n",
                                         encoding="utf-8")
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader("pairsynth.probe", "templates"),
                                    jinja2.PackageLoader("pairsynth.alignment", "templates")]),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    environment.filters["pct"] = percent
    environment.filters["signed"] = signed_points
    environment.filters["metric_label"] = label
    template = environment.get_template("probe_report.html")
    charts = [metric_chart(summary, metric) for metric in summary["metrics"][:2]]
    page = template.render(s=summary, charts=charts)
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def metric_chart(summary: Mapping[str, Any], metric: str) -> Chart:
    """Mean ``metric`` (%) against shots per class, one line per condition."""
    results = summary["results"]
    conditions = summary["conditions"]
    means = [100 * r["metrics"][metric][c]["mean"] for r in results for c in conditions]
    low = max(0.0, math.floor((min(means, default=0) - 2) / 5) * 5)
    high = min(100.0, math.ceil((max(means, default=100) + 2) / 5) * 5)
    count = len(results)

    def x(i: int) -> float:
        return LEFT + 40 + (RIGHT - LEFT - 80) * (i / (count - 1) if count > 1 else 0.5)

    def y(value: float) -> float:
        return round(BOTTOM - (value - low) / ((high - low) or 1) * (BOTTOM - TOP), 2)

    lines, dots = [], []
    for n, condition in enumerate(conditions):
        colour = PALETTE[n % len(PALETTE)]
        points = [(x(i), y(100 * r["metrics"][metric][condition]["mean"])) for i, r in enumerate(results)]
        lines.append(Line(" ".join(f"{px:.1f},{py:.1f}" for px, py in points), colour, condition))
        dots.extend(Dot(x=px, y=py, colour=colour, label="") for px, py in points)
    step = 5 if high - low <= 30 else 10
    ticks = [Tick(y(v), f"{v:g}") for v in range(int(low), int(high) + 1, step)]
    draws = sorted({r["draws"] for r in results})
    title = f"Mean {label(metric)} per condition ({'/'.join(map(str, draws))} draws per point)"
    return Chart(title=title,
                 x_label="real examples per class" if summary["task"] == "classify" else "real pairs per caption",
                 y_label=f"{label(metric)} (%)", x_ticks=[Tick(x(i), str(r["shots"])) for i, r in enumerate(results)],
                 y_ticks=ticks, lines=lines, dots=dots, legend=True)


METRIC_LABELS = {"accuracy": "accuracy", "t2i_r1": "text→sample R@1", "t2i_r5": "text→sample R@5",
                 "i2t_r1": "sample→text R@1", "i2t_r5": "sample→text R@5"}


def label(metric: str) -> str:
    """A metric's name for people."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def percent(value: float | None, digits: int = 1) -> str:
    """``0.912`` → ``91.2``; ``None`` → ``–``."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def signed_points(value: float | None, digits: int = 1) -> str:
    """A difference of shares in percentage points with its sign: ``0.021`` → ``+2.1``."""
    return "–" if value is None else f"{100 * value:+.{digits}f}"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
