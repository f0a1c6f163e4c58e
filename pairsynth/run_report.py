"""The QA report that ends every run (``generate``, ``vary`` …), built from the manifest's scores:
the same page ``pairsynth score`` writes for any dataset, without scoring anything again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairsynth.alignment.qa_report import JudgeSetup, QaReport, QaRow, write_qa_report
from pairsynth.readers import read_pairs

if TYPE_CHECKING:
    from pairsynth.run import RunSummary
    from pairsynth.stages import CaptionState

MEDIA_PROBLEMS = frozenset({"bad_shape", "nan_output", "blank_image", "silent_audio", "dc_only_audio", "clipped_audio"})
"""Reasons that say a sample itself is unusable (as opposed to a judge disagreeing with it)."""


def write_run_report(out_dir: Path, manifest_rows: Sequence[dict[str, Any]], summary: RunSummary,
                     thresholds: Mapping[str, float | None] | None = None, gallery_size: int = 12) -> Path:
    """The report at the end of ``pairsynth generate``, from the manifest's scores (no re-scoring).

    Args:
        out_dir: the run's output folder; the report goes to ``out_dir/report``.
        manifest_rows: every candidate, as :class:`~pairsynth.writers.ManifestWriter` wrote them.
        summary: the run's :class:`~pairsynth.run.RunSummary`.
        thresholds: the recipe's minimum score per judge, marked on the plots (``None``: not used).
    """
    thresholds = thresholds or {}
    # a variation run counts k per source pair (its manifest rows name the source), others per caption
    grouping = "source pair" if any(isinstance(row.get("source"), dict) for row in manifest_rows) else "caption"
    rows = [_manifest_row(row) for row in manifest_rows]
    judges: dict[str, JudgeSetup] = {}
    for row in manifest_rows:
        for judge, scores in row["scores"].items():
            judges.setdefault(judge, JudgeSetup(judge, scores["model"], thresholds.get(judge), scores.get("distractors")))
    run = {"k": summary.k, "shortfall": [_state(s) for s in summary.shortfall],
           "per_caption": [_state(s) for s in summary.captions]}
    report = QaReport(title=f"pairsynth run: {Path(out_dir).name}", source={"path": str(out_dir), "layout": "pairsynth"},
                      rows=rows, judges=judges, grouping=grouping, generation=generation_parameters(manifest_rows),
                      run=run)
    write_qa_report(Path(out_dir) / "report", report, lambda keys: read_pairs(out_dir, layout="pairsynth", keys=keys),
                    gallery_size=gallery_size)
    return Path(out_dir) / "report" / "index.html"


def generation_parameters(manifest_rows: Sequence[dict[str, Any]], most: int = 8) -> dict[str, list[Any]] | None:
    """The distinct values of each generation parameter in a manifest (model, scheduler, steps …).

    Nested provenance (a triplet's ``{"image": {...}, "audio": {...}}``) is flattened to ``image.model``.
    At most ``most`` values per parameter are listed; ``None`` when there is no manifest.
    """
    per_sample = {"key", "caption", "caption_index", "sample_index", "seed", "modality", "scores", "accepted",
                  "reason", "detail", "notes", "lineage", "source", "prompts"}
    values: dict[str, list[Any]] = {}
    for row in manifest_rows:
        for name, value in row.items():
            if name in per_sample:
                continue
            flat = {f"{name}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {name: value}
            for flat_name, flat_value in flat.items():
                seen = values.setdefault(flat_name, [])
                if flat_value not in seen and len(seen) < most:
                    seen.append(flat_value)
    return values or None


def _manifest_row(row: dict[str, Any]) -> QaRow:
    scores = row.get("scores") or {}
    flags = [row["reason"]] if row.get("reason") in MEDIA_PROBLEMS else []
    flags += ["caption_truncated"] * any(s.get("caption_truncated") for s in scores.values())
    source = row.get("source") if isinstance(row.get("source"), dict) else {}
    group = source.get("key") or row["caption"] or source.get("path", "")
    return QaRow(row["key"], row["caption"] or "", "", row.get("modality"), group, scores, bool(row["accepted"]),
                 row.get("reason") or "", row.get("detail") or "", flags, None, has_media=bool(row["accepted"]),
                 usable=row.get("reason") not in MEDIA_PROBLEMS)


def _state(state: CaptionState) -> dict[str, Any]:
    return {"caption": state.caption, "key": state.key, "accepted": state.accepted, "attempts": state.attempts}
