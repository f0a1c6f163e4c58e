"""The report at the end of a run: ``report/summary.json`` and a self-contained ``report/index.html``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from alignment.scores import CLIP_SCORE_UNIT, COSINE_UNIT
from pairsynth.writers.base import atomic_write_bytes

SUMMARY_SCHEMA_VERSION = 1


def run_summary(rows: list[dict[str, Any]], summary: Any) -> dict[str, Any]:
    """The machine-readable summary of a run (stable keys; ``schema_version`` bumps on change)."""
    reasons = Counter(row["reason"] for row in rows)
    scores = [row["scores"]["clip_score"] for row in rows if row["scores"]]
    first = rows[0] if rows else {}
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "k": summary.k,
        "captions": len(summary.captions),
        "candidates": summary.candidates,
        "accepted": summary.accepted,
        "acceptance_rate": round(summary.accepted / summary.candidates, 4) if summary.candidates else None,
        "reasons": dict(reasons.most_common()),
        "score_unit": CLIP_SCORE_UNIT,
        "cosine_unit": COSINE_UNIT,
        "models": {"generator": first.get("model"), "clip": (first.get("scores") or {}).get("model")},
        "clip_score_mean": round(sum(scores) / len(scores), 4) if scores else None,
        "shortfall": [
            {"caption": s.caption, "accepted": s.accepted, "attempts": s.attempts} for s in summary.shortfall
        ],
        "per_caption": [
            {"caption": s.caption, "accepted": s.accepted, "attempts": s.attempts} for s in summary.captions
        ],
    }


def write_run_report(out_dir: Path, rows: list[dict[str, Any]], summary: Any) -> Path:
    """Write ``summary.json`` and ``index.html`` under ``out_dir/report``; return the HTML path."""
    report_dir = Path(out_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    data = run_summary(rows, summary)
    atomic_write_bytes(report_dir / "summary.json", json.dumps(data, indent=2).encode())
    accepted = [row for row in rows if row["accepted"]]
    has_images = (Path(out_dir) / "imagefolder").is_dir()
    env = Environment(loader=PackageLoader("alignment", "templates"), autoescape=select_autoescape())
    html = env.get_template("run_report.html").render(
        summary=data,
        histogram=_histogram([row["scores"]["clip_score"] for row in rows if row["scores"]]),
        gallery=sorted(accepted, key=lambda row: row["scores"]["clip_score"])[:48] if has_images else [],
        image_ext=_image_ext(out_dir),
    )
    path = report_dir / "index.html"
    atomic_write_bytes(path, html.encode())
    return path


def _histogram(values: list[float], bins: int = 20) -> list[dict[str, float]]:
    """Counts of CLIPScore in equal bins over [0, 100], as bar heights in percent of the tallest."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value / 100 * bins), bins - 1)] += 1
    tallest = max(counts) or 1
    return [{"low": 100 * i / bins, "count": c, "height": 100 * c / tallest} for i, c in enumerate(counts)]


def _image_ext(out_dir: Path) -> str:
    metadata = Path(out_dir) / "imagefolder" / "metadata.jsonl"
    if metadata.exists():
        with open(metadata, encoding="utf-8") as handle:
            line = handle.readline()
        if line:
            return json.loads(line)["file_name"].rsplit(".", 1)[-1]
    return "png"
