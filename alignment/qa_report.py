"""The alignment QA report: ``index.html`` + ``media/`` + ``summary.json`` + ``scores.jsonl``.

The same report serves ``pairsynth score`` (any dataset, scored here) and the end of
``pairsynth generate`` (a run's candidates, scored while generating). Both build a :class:`QaReport`
of per-pair rows and hand it to :func:`write_qa_report`.

The HTML opens from disk without a server: thumbnails and audio previews sit in ``media/`` beside it
under relative paths, charts are inline SVG, styles are inline, and nothing is fetched from the network.
``summary.json`` is the machine-readable twin; its keys are stable and ``schema_version`` changes
when they do.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pairsynth.media import MEDIA
from pairsynth.alignment import qa
from pairsynth.alignment.qa_charts import Chart, histogram_chart, sweep_chart
from pairsynth.alignment.scores import COSINE_UNIT, SCORE_UNITS
from pairsynth.writers.base import MappedRows

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
JUDGE_MEDIA = {spec.judge: (spec.name, "triplet") for spec in MEDIA.values()}
"""The modalities whose pairs each judge kind scores."""
"""Which rows a judge's numbers are about: its medium's pairs, and triplets (which have both)."""
SWEEP_THRESHOLDS = [float(t) for t in range(101)]
THUMBNAIL_PX = 160
"""Thumbnails larger than this are downscaled (JPEG); smaller images are kept as lossless PNG."""
AUDIO_PREVIEW_S = 30.0
"""Audio previews are cut to this length, so a report of long recordings stays small."""
SHOWN_DUPLICATE_GROUPS, SHOWN_GROUP_MEMBERS, SHOWN_TABLE_ROWS = 12, 10, 60
"""The page shows a bounded number of pairs, whatever the dataset's size (the gallery is
``gallery_size`` worst + best); every pair is in ``scores.jsonl``, so the page opens as fast at a
million pairs as at a hundred."""
CLAMP_CHARS = 140
"""Captions longer than this get a "whole caption" details element under their three clamped lines."""
# plot-*.png: charts of reports written before the charts became inline SVG
_OWN_MEDIA = re.compile(r"^(\d{5}\.(png|jpg|wav)|plot-[a-z]+-[a-z]+\.png)$")


@dataclass(kw_only=True)
class QaRow:
    """One pair (or one candidate of a run) as the report sees it.

    Attributes:
        key, caption, source, modality: what the pair is and where it came from.
        group: the caption, class label or folder the per-group table puts it under.
        scores: per judge, :meth:`pairsynth.alignment.scores.PairScores.as_dict` (score with its unit, rank …).
        passed: reached the threshold with usable media (a run: accepted).
        reason: ``accepted``, a media problem, ``below_threshold``, ``unreadable`` … (a run: its reason).
        detail: the numbers behind the reason, for people.
        flags: problems worth a look: media problems, ``caption_truncated``, ``near_duplicate``.
        duplicate_group: the number of its near-duplicate group, if any.
        has_media: its media can be fetched for the gallery (a run's rejected candidates were never written).
        usable: its media were fit to be judged (readable; not NaN, blank or silent).
    """

    key: str
    caption: str
    source: str
    modality: str | None
    group: str
    scores: dict[str, dict[str, Any]]
    passed: bool
    reason: str
    detail: str = ""
    flags: list[str] = field(default_factory=list)
    duplicate_group: int | None = None
    has_media: bool = True
    usable: bool = True

    @property
    def primary_score(self) -> float | None:
        """The score the report sorts by: the lower of a triplet's two; ``None`` when unscored."""
        return min((s["score"] for s in self.scores.values()), default=None)

    @property
    def primary_rank(self) -> int | None:
        ranks = [s["rank"] for s in self.scores.values() if s.get("rank") is not None]
        return max(ranks, default=None)

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "caption": self.caption, "source": self.source, "modality": self.modality,
                "group": self.group, "passed": self.passed, "reason": self.reason, "detail": self.detail,
                "flags": self.flags, "duplicate_group": self.duplicate_group, "scores": self.scores}


@dataclass(frozen=True, kw_only=True)
class JudgeSetup:
    """A judge model and the rule applied with it (``threshold`` in score units; ``None``: not used)."""

    kind: str
    model: str
    threshold: float | None
    distractors: int | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Near-duplicate pairs of one medium (their embeddings' cosine reaches the threshold, transitively)."""

    medium: str
    keys: list[str]


@dataclass(kw_only=True)
class QaReport:
    """Everything a report shows. ``run`` is set for a ``pairsynth generate`` run (k, shortfall)."""

    title: str
    source: dict[str, Any]
    rows: Iterable[QaRow]  # any re-iterable: a list, or rows streamed from disk on each pass
    judges: dict[str, JudgeSetup]
    grouping: str = "caption"
    duplicate_cosine: float | None = None  # None: duplicates were not searched for
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    generation: dict[str, list[Any]] | None = None
    run: dict[str, Any] | None = None
    fail_under: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    fidelity: list[dict[str, Any]] | None = None  # per medium, vs a reference set (fidelity.FidelityResult.as_dict)


MediaLoader = Callable[[set[str]], Iterable[Any]]
"""Given keys, yields :class:`pairsynth.readers.PairRecord`s (and ``ReadError``s) for them."""


def summarize(report: QaReport) -> dict[str, Any]:
    """The machine-readable summary (``summary.json``), schema version :data:`SCHEMA_VERSION`.

    Keys: ``schema_version``; ``mode`` (``dataset`` for ``pairsynth score``, ``run`` for a generate or
    vary run); ``title``; ``source`` (path, layout); ``candidates`` (pairs examined, unreadable ones
    included); ``accepted`` (pairs that passed); ``pass_rate``; ``rule`` (what passing means);
    ``gate`` (fail_under, pass_rate, passed: ``None`` without a gate); ``reasons`` (count per reason);
    ``modalities``; ``captions`` (distinct); ``judges`` (per judge: model, score_unit, threshold,
    score statistics, top1_rate, distractors_per_pair, histogram, sweep); ``cosine_unit``; ``flags``
    (count per flag); ``duplicates`` (searched, cosine_threshold, groups of keys); ``grouping`` and
    ``per_group``; ``unreadable`` (source, reason); ``generation`` (manifest parameters, or ``None``);
    ``run`` (k, shortfall, per_caption, or ``None``); ``settings``; ``fidelity`` (per medium against a
    reference set: overall and per-group precision/recall/density/coverage/frechet, per-group diversity
    and mode-collapse flags; ``None`` without ``--reference``). Per-pair rows are in ``scores.jsonl``.
    """
    tally = _Tally(report.judges)
    for row in report.rows:  # one pass: a run's rows stream from its manifest
        tally.add(row)
    summary = _summary(report, tally)
    return {**summary, "per_group": list(summary["per_group"])}


def _summary(report: QaReport, tally: _Tally) -> dict[str, Any]:
    accepted = tally.passed
    rate = qa.pass_rate(accepted, tally.n)
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": "run" if report.run is not None else "dataset",
        "title": report.title,
        "source": report.source,
        "candidates": tally.n,
        "accepted": accepted,
        "pass_rate": None if rate is None else round(rate, 6),
        "rule": "a pair passes when its media are usable and every judge's score reaches its threshold"
                if report.run is None else "the run's acceptance rule (threshold, retrieval rank, k per caption)",
        "gate": {"fail_under": report.fail_under, "pass_rate": None if rate is None else round(rate, 6),
                 "passed": qa.gate_passes(rate, report.fail_under)},
        "reasons": dict(tally.reasons.most_common()),
        "modalities": dict(tally.modalities.most_common()),
        "captions": len(tally.captions),
        "judges": {kind: tally.judges[kind].summary(setup) for kind, setup in report.judges.items()},
        "cosine_unit": COSINE_UNIT,
        "flags": dict(tally.flags.most_common()),
        "duplicates": {"searched": report.duplicate_cosine is not None, "cosine_threshold": report.duplicate_cosine,
                       "groups": [{"medium": g.medium, "keys": g.keys} for g in report.duplicates]},
        "grouping": report.grouping,
        "per_group": MappedRows(tally.groups, _group_row),  # streamed: a row per group
        "unreadable": tally.unreadable,
        "generation": report.generation,
        "run": report.run,
        "settings": report.settings,
        "fidelity": report.fidelity,
    }


def write_qa_report(out_dir: str | Path, report: QaReport, load_media: MediaLoader, *,
                    gallery_size: int = 12) -> dict[str, Any]:
    """Write the report folder and return the summary.

    Args:
        out_dir: the report folder (created; media files of an earlier report there are replaced).
        report: the rows and settings.
        load_media: fetches the few pairs the page shows (gallery, duplicates) by key.
        gallery_size: how many worst and how many best pairs the gallery shows.
    """
    from pairsynth.writers.base import atomic_write_bytes, write_json

    out = Path(out_dir)
    media_dir = out / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    for stale in media_dir.iterdir():  # only files this module names, never a user's
        if _OWN_MEDIA.match(stale.name):
            stale.unlink()
    shown_groups = [g.keys[:SHOWN_GROUP_MEMBERS] for g in report.duplicates[:SHOWN_DUPLICATE_GROUPS]]
    tally = _Tally(report.judges, gallery_size, {key for keys in shown_groups for key in keys})
    _write_scores(out / "scores.jsonl", report.rows, tally)  # one pass over the rows: scores.jsonl and the numbers
    summary = _summary(report, tally)
    write_json(out / "summary.json", summary)  # per_group streams into the file, one group at a time

    worst, best = tally.gallery.worst_and_best()
    wanted = {row.key for row in worst + best} | {key for keys in shown_groups for key in keys}
    media = _export_media(load_media(wanted) if wanted else [], media_dir)
    by_key = tally.kept
    html = _template().render(
        report=report, summary=summary, charts=_charts(summary),
        worst=[_card(row, media) for row in worst], best=[_card(row, media) for row in best],
        duplicates=[{"medium": g.medium, "size": len(g.keys), "members": [_card(by_key[k], media) for k in keys]}
                    for g, keys in zip(report.duplicates, shown_groups)],
        unreadable=summary["unreadable"][:SHOWN_TABLE_ROWS], groups=summary["per_group"].head(SHOWN_TABLE_ROWS),
        clamp_chars=CLAMP_CHARS, shown_from=tally.galleried,
    )
    atomic_write_bytes(out / "index.html", html.encode("utf-8"))
    logger.info("QA report: %s", out / "index.html")
    return summary


def _group_row(g: qa.GroupStats) -> dict[str, Any]:
    return {"group": g.group, "pairs": g.pairs, "passed": g.passed, "pass_rate": round(g.pass_rate, 6),
            "mean_score": _round(g.mean_score), "top1_rate": _round(g.top1)}


@cache
def _template():
    """The page template, compiled once per process (compiling costs more than rendering)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pairsynth.alignment", "templates"), autoescape=select_autoescape())
    return env.get_template("qa_report.html")


def _write_scores(path: Path, rows: Iterable[QaRow], tally: _Tally | None = None) -> None:
    """One JSON line per pair, streamed (a million rows need not fit in one string), then renamed into place."""
    import os

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.as_json(), ensure_ascii=False) + "\n")
            if tally is not None:
                tally.add(row)
    os.replace(tmp, path)


class _JudgeTally:
    """One judge's numbers over a stream of rows, in memory that does not grow with their number."""

    def __init__(self, kind: str, threshold: float | None) -> None:
        self.kind, self.threshold = kind, threshold
        self.pairs = 0
        self.scored = qa.ScoreCounts()
        self.usable = qa.ScoreCounts()
        self.ranks: Counter[int] = Counter()
        self.truncated = 0

    def add(self, row: QaRow) -> None:
        if row.modality not in JUDGE_MEDIA.get(self.kind, ()):
            return
        self.pairs += 1
        scores = row.scores.get(self.kind)
        if not scores:
            return
        self.scored.add(scores["score"])
        if row.usable:
            self.usable.add(scores["score"])
        if scores.get("rank") is not None:
            self.ranks[scores["rank"]] += 1
        self.truncated += bool(scores.get("caption_truncated"))

    def summary(self, setup: JudgeSetup) -> dict[str, Any]:
        values, threshold = self.scored, setup.threshold
        empty = not values.n

        def stats(statistic: Callable[[], float]) -> float | None:
            return None if empty else _round(float(statistic()))

        ranked = sum(self.ranks.values())
        return {
            "model": setup.model,
            "score_unit": SCORE_UNITS.get(setup.kind, "100 * max(cosine, 0)"),
            "threshold": threshold,
            "pairs": self.pairs,
            "scored": values.n,
            "mean_score": stats(values.mean), "median_score": stats(lambda: values.percentile(50)),
            "p05_score": stats(lambda: values.percentile(5)), "p95_score": stats(lambda: values.percentile(95)),
            "min_score": stats(values.min), "max_score": stats(values.max),
            "reached_threshold": None if threshold is None else self.usable.reaching([threshold])[0],
            "kept_share": None if threshold is None else self.usable.sweep(self.pairs, [threshold])[0],
            "ranked": ranked,
            "top1_rate": _round(self.ranks[1] / ranked) if ranked else None,
            "median_rank": _counter_median(self.ranks) if ranked else None,
            "distractors_per_pair": setup.distractors,
            "caption_truncated": self.truncated,
            "histogram": dict(zip(("edges", "counts"), values.histogram())),
            "sweep": {"thresholds": SWEEP_THRESHOLDS, "kept": self.usable.sweep(self.pairs, SWEEP_THRESHOLDS),
                      "of": self.pairs},
        }


class _Tally:
    """Everything the report counts, gathered in one pass over its rows (a run's stream from disk).

    Memory grows with the distinct captions and groups, the unreadable inputs and ``gallery_size``,
    never with the number of pairs. ``keep``: keys whose rows are kept (duplicate groups' members).
    """

    def __init__(self, judges: dict[str, JudgeSetup], gallery_size: int = 0, keep: set[str] | None = None) -> None:
        self.n = self.passed = 0
        self.reasons: Counter[str] = Counter()
        self.modalities: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self.captions: set[str] = set()
        self.unreadable: list[dict[str, str]] = []
        self.groups = qa.GroupTally()
        self.judges = {kind: _JudgeTally(kind, setup.threshold) for kind, setup in judges.items()}
        self.gallery = qa.Extremes(gallery_size)
        self.galleried = 0  # rows the gallery could show: media at hand and a score
        self.keep, self.kept = keep or set(), {}

    def add(self, row: QaRow) -> None:
        self.n += 1
        self.passed += bool(row.passed)
        self.reasons[row.reason] += 1
        self.modalities[row.modality or "unreadable"] += 1
        self.flags.update(row.flags)
        if row.caption:
            self.captions.add(row.caption)
        if row.reason == "unreadable":
            self.unreadable.append({"source": row.source, "reason": row.detail})
        score = row.primary_score
        self.groups.add(row.group, row.passed, score, row.primary_rank)
        for judge in self.judges.values():
            judge.add(row)
        if row.has_media and score is not None:
            self.gallery.add(score, row)
            self.galleried += 1
        if row.key in self.keep:
            self.kept[row.key] = row


def _counter_median(counts: Counter[int]) -> float:
    """``np.median`` of the values a counter counts (the mean of the two middle ones for an even count)."""
    total = sum(counts.values())
    middle = [(total - 1) // 2, total // 2]
    found, seen = [], 0
    for value in sorted(counts):
        seen += counts[value]
        while len(found) < 2 and middle[len(found)] < seen:
            found.append(value)
    return float((found[0] + found[1]) / 2)


def _charts(summary: dict[str, Any]) -> dict[str, Chart]:
    charts: dict[str, Chart] = {}
    for kind, judge in summary["judges"].items():
        if judge["scored"]:
            charts[f"{kind}-histogram"] = histogram_chart(judge["histogram"]["edges"], judge["histogram"]["counts"],
                                                          judge=kind, threshold=judge["threshold"],
                                                          unit=judge["score_unit"])
    sweeps = {kind: (j["sweep"]["thresholds"], j["sweep"]["kept"]) for kind, j in summary["judges"].items() if j["pairs"]}
    if sweeps:
        marks = {kind: (j["threshold"], j["kept_share"]) for kind, j in summary["judges"].items()
                 if j["threshold"] is not None and kind in sweeps}
        charts["sweep"] = sweep_chart(sweeps, marks)
    return charts


def _export_media(records: Iterable[Any], media_dir: Path) -> dict[str, dict[str, str]]:
    """Write a thumbnail and/or an audio preview per record; return relative paths by key."""
    exported: dict[str, dict[str, str]] = {}
    for record in records:
        if not hasattr(record, "caption") or record.key in exported:  # a ReadError, or a repeated key
            continue
        stem, files = f"{len(exported) + 1:05d}", {}
        if record.image is not None:
            files["image"] = _write_thumbnail(record.image, media_dir, stem)
        if record.audio is not None:
            files["audio"] = _write_preview(record.audio, record.sample_rate, media_dir, stem)
        exported[record.key] = files
    return exported


def _write_thumbnail(pixels: np.ndarray, media_dir: Path, stem: str) -> str:
    from PIL import Image

    image = Image.fromarray(np.asarray(pixels, np.uint8)).convert("RGB")
    if max(image.size) <= THUMBNAIL_PX:
        name, fmt, options = f"{stem}.png", "PNG", {}
    else:
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
        name, fmt, options = f"{stem}.jpg", "JPEG", {"quality": 85}
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    (media_dir / name).write_bytes(buffer.getvalue())
    return f"media/{name}"


def _write_preview(waveform: np.ndarray, sample_rate: int, media_dir: Path, stem: str) -> str:
    """16-bit WAV: every browser plays it, unlike FLAC in some."""
    import soundfile

    samples = np.asarray(waveform, np.float32)
    samples = samples[..., : int(AUDIO_PREVIEW_S * sample_rate)]
    frames = np.clip(np.nan_to_num(samples if samples.ndim == 1 else samples.T), -1.0, 1.0)
    soundfile.write(media_dir / f"{stem}.wav", frames, int(sample_rate), subtype="PCM_16", format="WAV")
    return f"media/{stem}.wav"


def _card(row: QaRow, media: dict[str, dict[str, str]]) -> dict[str, Any]:
    files = media.get(row.key, {})
    return {"key": row.key, "caption": row.caption, "source": row.source, "passed": row.passed, "reason": row.reason,
            "flags": row.flags, "image": files.get("image"), "audio": files.get("audio"),
            "missing": row.key not in media, "scores": row.scores}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or value != value else round(value, digits)  # NaN (x != x) → None
