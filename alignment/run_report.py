"""The report at the end of a run: ``report/summary.json`` and a self-contained ``report/index.html``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from alignment.scores import COSINE_UNIT, SCORE_UNITS
from pairsynth.writers.base import atomic_write_bytes

SUMMARY_SCHEMA_VERSION = 1
FOLDERS = {"image": "imagefolder", "audio": "audiofolder"}


def run_summary(rows: list[dict[str, Any]], summary: Any) -> dict[str, Any]:
    """The machine-readable summary of a run (stable keys; ``schema_version`` bumps on change)."""
    judges: dict[str, dict[str, Any]] = {}
    for row in rows:
        for judge, scores in row["scores"].items():
            entry = judges.setdefault(judge, {"model": scores["model"], "score_unit": SCORE_UNITS[judge], "scores": []})
            entry["scores"].append(scores["score"])
    for entry in judges.values():
        values = entry.pop("scores")
        entry["mean_score"] = round(sum(values) / len(values), 4)
        entry["scored"] = len(values)
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "modality": rows[0]["modality"] if rows else None,
        "k": summary.k,
        "captions": len(summary.captions),
        "candidates": summary.candidates,
        "accepted": summary.accepted,
        "acceptance_rate": round(summary.accepted / summary.candidates, 4) if summary.candidates else None,
        "reasons": dict(Counter(row["reason"] for row in rows).most_common()),
        "generator": rows[0].get("model") if rows else None,
        "judges": judges,
        "cosine_unit": COSINE_UNIT,
        "shortfall": [{"caption": s.caption, "accepted": s.accepted, "attempts": s.attempts} for s in summary.shortfall],
        "per_caption": [{"caption": s.caption, "accepted": s.accepted, "attempts": s.attempts} for s in summary.captions],
    }


def write_run_report(out_dir: Path, rows: list[dict[str, Any]], summary: Any) -> Path:
    """Write ``summary.json`` and ``index.html`` under ``out_dir/report``; return the HTML path."""
    report_dir = Path(out_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    data = run_summary(rows, summary)
    atomic_write_bytes(report_dir / "summary.json", json.dumps(data, indent=2).encode())
    env = Environment(loader=PackageLoader("alignment", "templates"), autoescape=select_autoescape())
    html = env.get_template("run_report.html").render(
        summary=data,
        histograms={judge: _histogram([r["scores"][judge]["score"] for r in rows if judge in r["scores"]])
                    for judge in data["judges"]},
        gallery=_gallery(Path(out_dir), rows),
    )
    path = report_dir / "index.html"
    atomic_write_bytes(path, html.encode())
    return path


def _histogram(values: list[float], bins: int = 20) -> list[dict[str, float]]:
    """Counts of a 0–100 score in equal bins, as bar heights in percent of the tallest."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value / 100 * bins), bins - 1)] += 1
    tallest = max(counts) or 1
    return [{"low": 100 * i / bins, "count": c, "height": 100 * c / tallest} for i, c in enumerate(counts)]


def _gallery(out_dir: Path, rows: list[dict[str, Any]], size: int = 48) -> list[dict[str, Any]]:
    """The lowest-scoring accepted pairs, with relative links into the folder dataset."""
    files = {}
    for modality, folder in FOLDERS.items():
        metadata = out_dir / folder / "metadata.jsonl"
        if metadata.exists():
            for line in metadata.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                files[entry["key"]] = (modality, f"../{folder}/{entry['file_name']}")
    accepted = [row for row in rows if row["accepted"] and row["key"] in files]
    accepted.sort(key=lambda row: min(s["score"] for s in row["scores"].values()))
    return [{"caption": row["caption"], "kind": files[row["key"]][0], "src": files[row["key"]][1],
             "scores": {judge: s["score"] for judge, s in row["scores"].items()}} for row in accepted[:size]]
