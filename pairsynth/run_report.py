"""The QA report that ends every run (``generate``, ``vary`` …), built from the manifest's scores:
the same page ``pairsynth score`` writes for any dataset, without scoring anything again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairsynth.alignment.qa_report import JudgeSetup, QaReport, QaRow, write_qa_report
from pairsynth.readers import read_pairs
from pairsynth.writers.base import MappedRows

if TYPE_CHECKING:
    from pairsynth.run import RunSummary
    from pairsynth.stages import CaptionState

MEDIA_PROBLEMS = frozenset({"bad_shape", "nan_output", "blank_image", "silent_audio", "dc_only_audio", "clipped_audio"})
"""Reasons that say a sample itself is unusable (as opposed to a judge disagreeing with it)."""


UNIT_OF_GROUPING = {"caption": "caption", "source pair": "source pair", "class": "missing item"}
"""What k counts per, by the report's grouping: balance asks for one pair per missing item of a class."""


ManifestRows = Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]
"""A run's manifest rows: a re-iterable (a list), or a function that reads them afresh on each call
(:meth:`~pairsynth.writers.ManifestWriter.iter_rows`), so the report never holds them all."""


def write_run_report(out_dir: Path, manifest_rows: ManifestRows, summary: RunSummary,
                     thresholds: Mapping[str, float | None] | None = None, run_extra: Mapping[str, Any] | None = None,
                     gallery_size: int = 12) -> Path:
    """The report at the end of ``pairsynth generate``, from the manifest's scores (no re-scoring).

    The manifest is read twice, row by row (what it holds, then the report's numbers), so memory
    stays flat in the size of the run.

    Args:
        out_dir: the run's output folder; the report goes to ``out_dir/report``.
        manifest_rows: every candidate, as :class:`~pairsynth.writers.ManifestWriter` wrote them.
        summary: the run's :class:`~pairsynth.run.RunSummary`.
        thresholds: the recipe's minimum score per judge, marked on the plots (``None``: not used).
        run_extra: the job's own additions to the report's run block (:meth:`pairsynth.run.Job.report_run`).
    """
    thresholds = thresholds or {}
    read = manifest_rows if callable(manifest_rows) else (lambda: manifest_rows)
    # groups: a variation run's source pairs (its rows name the source), balance's classes (its rows
    # name the class), otherwise captions
    grouping = "caption"
    judges: dict[str, JudgeSetup] = {}
    parameters = _ParameterValues()
    for row in read():
        if isinstance(row.get("source"), dict):
            grouping = "class" if "class" in row["source"] else "source pair"
        for judge, scores in row["scores"].items():
            judges.setdefault(judge, JudgeSetup(kind=judge, model=scores["model"], threshold=thresholds.get(judge),
                                                distractors=scores.get("distractors")))
        parameters.add(row)
    run = {"k": summary.k, "unit": UNIT_OF_GROUPING[grouping], "shortfall": MappedRows(summary.shortfall, _state_row),
           "per_caption": MappedRows(summary.captions, _state_row), **(run_extra or {})}
    report = QaReport(title=f"pairsynth run: {Path(out_dir).name}", source={"path": str(out_dir), "layout": "pairsynth"},
                      rows=_QaRows(read), judges=judges, grouping=grouping, generation=parameters.values or None,
                      run=run)
    write_qa_report(Path(out_dir) / "report", report, lambda keys: read_pairs(out_dir, layout="pairsynth", keys=keys),
                    gallery_size=gallery_size)
    return Path(out_dir) / "report" / "index.html"


class _QaRows:
    """The manifest's rows as report rows, converted afresh on each pass (nothing kept)."""

    def __init__(self, read: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.read = read

    def __iter__(self) -> Iterator[QaRow]:
        return map(_manifest_row, self.read())


PER_SAMPLE = frozenset({"key", "caption", "caption_index", "sample_index", "seed", "modality", "scores", "accepted",
                        "reason", "detail", "notes", "lineage", "source", "prompts", "retrieval"})
"""Manifest columns that differ per sample; every other column is a generation parameter."""


class _ParameterValues:
    """The distinct values of each generation parameter, at most ``most`` each, gathered row by row."""

    def __init__(self, most: int = 8) -> None:
        self.most = most
        self.values: dict[str, list[Any]] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            if name in PER_SAMPLE:
                continue
            flat = {f"{name}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {name: value}
            for flat_name, flat_value in flat.items():
                seen = self.values.setdefault(flat_name, [])
                if flat_value not in seen and len(seen) < self.most:
                    seen.append(flat_value)


def generation_parameters(manifest_rows: Iterable[dict[str, Any]], most: int = 8) -> dict[str, list[Any]] | None:
    """The distinct values of each generation parameter in a manifest (model, scheduler, steps …).

    Nested provenance (a triplet's ``{"image": {...}, "audio": {...}}``) is flattened to ``image.model``.
    At most ``most`` values per parameter are listed; ``None`` when there is no manifest.
    """
    parameters = _ParameterValues(most)
    for row in manifest_rows:
        parameters.add(row)
    return parameters.values or None


def _manifest_row(row: dict[str, Any]) -> QaRow:
    scores = row.get("scores") or {}
    flags = [row["reason"]] if row.get("reason") in MEDIA_PROBLEMS else []
    flags += ["caption_truncated"] * any(s.get("caption_truncated") for s in scores.values())
    source = row.get("source") if isinstance(row.get("source"), dict) else {}
    group = source.get("key") or source.get("class") or row["caption"] or source.get("path", "")
    return QaRow(key=row["key"], caption=row["caption"] or "", source="", modality=row.get("modality"), group=group,
                 scores=scores, passed=bool(row["accepted"]), reason=row.get("reason") or "",
                 detail=row.get("detail") or "", flags=flags, duplicate_group=None, has_media=bool(row["accepted"]),
                 usable=row.get("reason") not in MEDIA_PROBLEMS)


def _state_row(state: CaptionState) -> dict[str, Any]:
    return {"caption": state.caption, "key": state.key, "accepted": state.accepted, "attempts": state.attempts}
