"""Any pair dataset → alignment QA report: the flow of ``pairsynth score``, top to bottom.

read (any layout) → embed (CLIP for images, CLAP for audio, in batches) → score each pair against its
own caption and rank that caption among distractors → flag near-duplicates, blank or silent media and
truncated captions → decide pass/fail against the threshold → write the report.

The same report ends every run (:func:`pairsynth.run_report.write_run_report`), built from the
manifest's scores instead of scoring again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pairsynth.alignment import qa
from pairsynth.alignment.acceptance import ACCEPTED, AcceptanceRule, check_pair
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.alignment.fidelity import against_reference
from pairsynth.alignment.qa_report import DuplicateGroup, JudgeSetup, QaReport, QaRow, write_qa_report
from pairsynth.alignment.scores import PairScores
from pairsynth.checks import check_score
from pairsynth.errors import DatasetError, PairsynthError
from pairsynth.judges import PRECISIONS, JudgeSettings, load_judge
from pairsynth.media import MEDIA
from pairsynth.readers import LAYOUTS, PairRecord, ReadError, detect_layout, read_manifest, read_pairs
from pairsynth.run_report import generation_parameters

logger = logging.getLogger(__name__)

UNSCORABLE = frozenset({"bad_shape", "nan_output"})
"""Media a judge cannot embed at all; other problems (blank, silent, clipped) are scored and flagged."""


@dataclass(frozen=True, kw_only=True)
class ScoreSettings:
    """How ``pairsynth score`` judges a dataset.

    Attributes:
        clip, clap: the judges' model references (see :mod:`pairsynth.refs`).
        pretrained: an open_clip tag or checkpoint, for a bare CLIP architecture.
        device, batch_size, precision: as for the scorers.
        threshold: the score (``100·max(cos, 0)``) a pair must reach, for every judge that scores it.
        distractors: distractor captions each pair's own caption is ranked among (sampled from the
            dataset's other captions; all of them when there are at most ``distractors + 1``).
        seed: seeds that sample.
        duplicate_cosine: embedding cosine at which two samples are near-duplicates.
        gallery_size: worst and best pairs shown (each).
        fail_under: the gate: the run fails when fewer than this share of pairs reach the threshold.
        layout: the dataset layout, or ``auto``.
        allow_outside_root: read files the dataset names outside its folder (refused by default).
    """

    clip: str = JudgeSettings().clip
    clap: str = JudgeSettings().clap
    pretrained: str | None = None
    device: str = "auto"
    batch_size: int = 64
    precision: str = "fp32"
    threshold: float = qa.DEFAULT_THRESHOLD
    distractors: int = qa.DEFAULT_DISTRACTORS
    seed: int = 0
    duplicate_cosine: float = qa.DEFAULT_DUPLICATE_COSINE
    gallery_size: int = 12
    fail_under: float | None = None
    layout: str = "auto"
    allow_outside_root: bool = False
    reference: str | Path | None = None  # fidelity/diversity vs this real dataset (issue 16, alignment/fidelity.py)

    @property
    def judges(self) -> JudgeSettings:
        """The judge options, as every command takes them."""
        return JudgeSettings(clip=self.clip, pretrained=self.pretrained, clap=self.clap, batch_size=self.batch_size,
                             precision=self.precision)

    def check(self) -> None:
        """Raise :class:`PairsynthError` naming the first bad setting, before anything loads."""
        checks = [
            (0.0 <= self.threshold <= 100.0, "threshold", self.threshold, "a score in [0, 100]"),
            (self.fail_under is None or 0.0 <= self.fail_under <= 1.0, "fail_under", self.fail_under, "a share in [0, 1]"),
            (self.distractors >= 1, "distractors", self.distractors, "at least 1"),
            (-1.0 <= self.duplicate_cosine <= 1.0, "duplicate_cosine", self.duplicate_cosine, "a cosine in [-1, 1]"),
            (self.batch_size >= 1, "batch_size", self.batch_size, "at least 1"),
            (self.gallery_size >= 0, "gallery_size", self.gallery_size, "0 or more"),
            (self.layout in LAYOUTS, "layout", self.layout, f"one of {', '.join(LAYOUTS)}"),
            (self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}"),
            (self.reference is None or Path(self.reference).exists(), "reference", self.reference, "an existing dataset"),
        ]
        for ok, name, value, accepted in checks:
            if not ok:
                raise PairsynthError(f"{name} = {value!r} is invalid; expected {accepted}")


@dataclass
class ScoreOutcome:
    """What :func:`score_dataset` wrote and whether the gate passed (``None``: no gate asked for).

    ``summary`` is ``summary.json``'s content, except ``per_group``: an iterable producing one row per
    group as it is read (``list()`` it to keep them), so a dataset of a million captions is never one list.
    """

    report_dir: Path
    summary: dict[str, Any]
    gate_passed: bool | None


@dataclass(kw_only=True)
class _Entry:
    """One dataset item as the judges saw it."""

    key: str
    caption: str
    source: str
    modality: str | None
    label: str | None = None
    folder: str | None = None
    error: str | None = None
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # medium -> (reason, detail)
    scores: dict[str, PairScores] = field(default_factory=dict)  # judge -> scores


def score_dataset(path: str | Path, out: str | Path, settings: ScoreSettings = ScoreSettings(), *,
                  scorers: Mapping[str, EmbeddingScorer] | None = None,
                  on_progress: Callable[[int], None] | None = None) -> ScoreOutcome:
    """Score every pair of a dataset and write ``index.html``, ``summary.json`` and ``scores.jsonl``.

    Args:
        path: the dataset (any layout :mod:`pairsynth.readers` knows).
        out: the report folder.
        settings: judges, threshold, distractors, gate …
        scorers: already-loaded judges by medium (``{"image": clip}``), instead of the settings' models.
        on_progress: called with the number of items read so far, after each embedded batch.
    """
    # 1. Check inputs before any model loads.
    settings.check()
    check_score(settings, path, out, scorers=scorers)
    layout = detect_layout(path) if settings.layout == "auto" else settings.layout
    outside = settings.allow_outside_root
    # A judge loads when the first item of its medium is read (an image dataset needs no CLAP), so a
    # bad model reference fails after one item, before any real work.
    judges = _Judges(settings, dict(scorers or {}))

    # 2. Read and embed, each medium by its judge in batches; media are dropped once embedded.
    entries: list[_Entry] = []
    features: dict[str, list[np.ndarray]] = {}
    owners: dict[str, list[int]] = {}  # medium -> entry index of each feature row
    pending: dict[str, list[tuple[int, Any]]] = {}
    seen: Counter[str] = Counter()
    for item in read_pairs(path, layout=layout, allow_outside_root=outside):
        entries.append(_entry(item, seen))
        for medium, sample in _samples(item, entries[-1]):
            pending.setdefault(medium, []).append((len(entries) - 1, sample))
            if len(pending[medium]) >= settings.batch_size:
                _embed(judges.get(medium), pending.pop(medium), features, owners, medium)
                if on_progress is not None:
                    on_progress(len(entries))
    for medium, batch in pending.items():
        _embed(judges.get(medium), batch, features, owners, medium)

    # 3. Score each pair with its own caption, rank it among distractors, find near-duplicates.
    duplicates: list[DuplicateGroup] = []
    for medium, chunks in features.items():
        matrix = np.concatenate(chunks)
        rows = owners[medium]
        _score_medium(judges.get(medium), matrix, [entries[i] for i in rows], settings)
        for group in qa.duplicate_groups(matrix, settings.duplicate_cosine):
            duplicates.append(DuplicateGroup(medium, [entries[rows[i]].key for i in group]))

    # 4. Decide each pair against the threshold, and write the report.
    rows_out, grouping = _rows(entries, settings.threshold, duplicates)
    # 5. Fidelity and diversity against a real reference set, embedded by the same judges (issue 16).
    fidelity_results = None if settings.reference is None else against_reference(
        settings.reference, features, owners, rows_out, grouping, judges.get, settings.batch_size)
    report = QaReport(
        title=f"Alignment QA: {Path(path).name or path}",
        source={"path": str(path), "layout": layout},
        rows=rows_out,
        grouping=grouping,
        judges={scorer.kind: JudgeSetup(kind=scorer.kind, model=scorer.model_id, threshold=settings.threshold,
                                        distractors=settings.distractors)
                for scorer in judges.loaded.values()},
        duplicate_cosine=settings.duplicate_cosine,
        duplicates=duplicates,
        generation=generation_parameters(read_manifest(path)) if layout == "pairsynth" else None,
        fail_under=settings.fail_under,
        settings={"distractors": settings.distractors, "seed": settings.seed},
        fidelity=fidelity_results,  # issue 16
    )
    summary = write_qa_report(out, report, lambda keys: read_pairs(path, layout=layout, keys=keys,
                                                                   allow_outside_root=outside),
                              gallery_size=settings.gallery_size)
    _check_readable(path, entries, Path(out))
    return ScoreOutcome(Path(out), summary, summary["gate"]["passed"])


def _check_readable(path: str | Path, entries: list[_Entry], out: Path) -> None:
    """A dataset without one readable pair cannot be scored: exit 2, not a 0 % pass rate (the report is written)."""
    if any(entry.error is None for entry in entries):
        return
    if not entries:
        raise DatasetError(f"{path}: no items found (check --layout; auto detects it)")
    count = f"{len(entries)} items, all unreadable" if len(entries) != 1 else "1 item, unreadable"
    raise DatasetError(f"{path}: not one readable pair ({count}; the first: {entries[0].error}); every reason is "
                       f"in {out / 'index.html'}")


class _Judges:
    """Loads each medium's judge the first time an item of that medium turns up."""

    def __init__(self, settings: ScoreSettings, given: dict[str, EmbeddingScorer]) -> None:
        self.settings = settings
        self.loaded = given

    def get(self, medium_name: str) -> EmbeddingScorer:
        if medium_name not in self.loaded:
            self.loaded[medium_name] = load_judge(medium_name, self.settings.judges, device=self.settings.device)
        return self.loaded[medium_name]


def _entry(item: PairRecord | ReadError, seen: Counter[str]) -> _Entry:
    """The item's entry; a key met before gets a ``#N`` suffix, so every report row is its own."""
    key = (item.key or item.source) if isinstance(item, ReadError) else item.key
    seen[key] += 1
    if seen[key] > 1:
        logger.warning("key %r appears %d times in the dataset; this one is reported as %r", key, seen[key],
                       f"{key}#{seen[key]}")
        key = f"{key}#{seen[key]}"
    if isinstance(item, ReadError):
        return _Entry(key=key, caption="", source=item.source, modality=None, error=item.reason)
    return _Entry(key=key, caption=item.caption, source=item.source, modality=item.modality, label=item.label,
                  folder=item.meta.get("folder"))


def _samples(item: PairRecord | ReadError, entry: _Entry) -> list[tuple[str, Any]]:
    """The item's media a judge can embed; problems (blank, silent …) are recorded on the entry."""
    if isinstance(item, ReadError):
        return []
    media: list[tuple[str, Any]] = []
    for spec in MEDIA.values():
        sample = spec.record_input(item)
        if sample is None:
            continue
        problem = spec.record_problem(item)
        if problem:
            entry.problems[spec.name] = problem
        if not problem or problem[0] not in UNSCORABLE:
            media.append((spec.name, sample))
    return media


def _embed(scorer: EmbeddingScorer, batch: list[tuple[int, Any]], features: dict[str, list[np.ndarray]],
           owners: dict[str, list[int]], medium: str) -> None:
    features.setdefault(medium, []).append(scorer.embed_samples([sample for _, sample in batch]))
    owners.setdefault(medium, []).extend(index for index, _ in batch)


def _score_medium(scorer: EmbeddingScorer, matrix: np.ndarray, entries: list[_Entry], settings: ScoreSettings) -> None:
    """Cosine with the own caption and rank among a seeded sample of the dataset's other captions,
    by the scorer's own :meth:`~pairsynth.alignment.embedding_scorer.EmbeddingScorer.score_features`."""
    captions = [entry.caption for entry in entries]
    pool = qa.distractor_pool(captions, settings.distractors, settings.seed)
    distractors = [qa.distractors_for(caption, pool, settings.distractors) for caption in captions]
    for entry, scores in zip(entries, scorer.score_features(matrix, captions, distractors)):
        entry.scores[scorer.kind] = scores


def _rows(entries: list[_Entry], threshold: float, duplicates: list[DuplicateGroup]) -> tuple[list[QaRow], str]:
    """One report row per item, and what the per-group table groups by: label, folder or caption."""
    group_of = {key: number for number, group in enumerate(duplicates, start=1) for key in group.keys}
    labels = {e.label for e in entries if e.label is not None}
    folders = {e.folder for e in entries if e.folder is not None}
    grouping = "label" if labels else "folder" if len(folders) > 1 else "caption"
    rows = []
    for entry in entries:
        reason, detail = _verdict(entry, threshold)
        flags = [problem[0] for problem in entry.problems.values()]
        flags += ["caption_truncated"] * any(s.caption_truncated for s in entry.scores.values())
        flags += ["near_duplicate"] * (entry.key in group_of)
        group = {"label": entry.label, "folder": entry.folder}.get(grouping) or entry.caption
        rows.append(QaRow(key=entry.key, caption=entry.caption, source=entry.source, modality=entry.modality,
                          group=group or "(unreadable)",
                          scores={judge: s.as_dict() for judge, s in entry.scores.items()}, passed=reason == ACCEPTED, reason=reason, detail=detail, flags=flags,
                          duplicate_group=group_of.get(entry.key), has_media=entry.error is None,
                          usable=entry.error is None and not entry.problems))
    return rows, grouping


def _verdict(entry: _Entry, threshold: float) -> tuple[str, str]:
    """Why a pair passes or fails, first cause first: unreadable, unusable media, low score."""
    if entry.error is not None:
        return "unreadable", entry.error
    if entry.problems:
        return next(iter(entry.problems.values()))
    decision = check_pair(entry.scores, AcceptanceRule({judge: threshold for judge in entry.scores}, max_rank=None))
    return decision.reason, decision.detail
