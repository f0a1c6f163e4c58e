"""Any pair dataset → alignment QA report: the flow of ``pairsynth score``, top to bottom.

read (any layout) → embed (CLIP for images, CLAP for audio, in batches) → score each pair against its
own caption and rank that caption among distractors → flag near-duplicates, blank or silent media and
truncated captions → decide pass/fail against the threshold → write the report.

The same report ends every ``pairsynth generate`` run (:func:`write_run_report`), built from the
manifest's scores instead of scoring again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pairsynth.alignment import qa
from pairsynth.alignment.acceptance import ACCEPTED
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.alignment.qa_report import DuplicateGroup, JudgeSetup, QaReport, QaRow, write_qa_report
from pairsynth.alignment.scores import PairScores
from pairsynth.checks import check_score
from pairsynth.errors import DatasetError, PairsynthError
from pairsynth.readers import LAYOUTS, PairRecord, ReadError, detect_layout, read_manifest, read_pairs

logger = logging.getLogger(__name__)

JUDGES = {"image": "clip", "audio": "clap"}
"""Which judge scores which medium."""

MEDIA_PROBLEMS = frozenset({"bad_shape", "nan_output", "blank_image", "silent_audio", "dc_only_audio", "clipped_audio"})
UNSCORABLE = frozenset({"bad_shape", "nan_output"})
"""Media a judge cannot embed at all; other problems (blank, silent, clipped) are scored and flagged."""


@dataclass(frozen=True)
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

    clip: str = "toy-shapes-clip"
    clap: str = "toy-sounds-clap"
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
        ]
        for ok, name, value, accepted in checks:
            if not ok:
                raise PairsynthError(f"{name} = {value!r} is invalid; expected {accepted}")


@dataclass
class ScoreOutcome:
    """What :func:`score_dataset` wrote and whether the gate passed (``None``: no gate asked for)."""

    report_dir: Path
    summary: dict[str, Any]
    gate_passed: bool | None


@dataclass
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
    report = QaReport(
        title=f"Alignment QA: {Path(path).name or path}",
        source={"path": str(path), "layout": layout},
        rows=rows_out,
        grouping=grouping,
        judges={scorer.kind: JudgeSetup(scorer.kind, scorer.model_id, settings.threshold, settings.distractors)
                for scorer in judges.loaded.values()},
        duplicate_cosine=settings.duplicate_cosine,
        duplicates=duplicates,
        generation=generation_parameters(read_manifest(path)) if layout == "pairsynth" else None,
        fail_under=settings.fail_under,
        settings={"distractors": settings.distractors, "seed": settings.seed},
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


def write_run_report(out_dir: Path, manifest_rows: Sequence[dict[str, Any]], summary: Any,
                     thresholds: Mapping[str, float | None] | None = None, gallery_size: int = 12) -> Path:
    """The report at the end of ``pairsynth generate``, from the manifest's scores (no re-scoring).

    Args:
        out_dir: the run's output folder; the report goes to ``out_dir/report``.
        manifest_rows: every candidate, as :class:`~pairsynth.writers.ManifestWriter` wrote them.
        summary: the run's :class:`~pairsynth.generate.RunSummary`.
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


class _Judges:
    """Loads each medium's judge the first time an item of that medium turns up."""

    def __init__(self, settings: ScoreSettings, given: dict[str, EmbeddingScorer]) -> None:
        self.settings = settings
        self.loaded = given

    def get(self, medium: str) -> EmbeddingScorer:
        if medium not in self.loaded:
            s = self.settings
            if medium == "image":
                from pairsynth.alignment.clip_scorer import ClipScorer

                self.loaded[medium] = ClipScorer.from_pretrained(s.clip, pretrained=s.pretrained, device=s.device,
                                                                 batch_size=s.batch_size, precision=s.precision)
            else:
                from pairsynth.alignment.clap_scorer import ClapScorer

                self.loaded[medium] = ClapScorer.from_pretrained(s.clap, device=s.device, batch_size=s.batch_size,
                                                                 precision=s.precision)
            logger.info("%s judge: %s", JUDGES[medium].upper(), self.loaded[medium].model_id)
        return self.loaded[medium]


def _entry(item: PairRecord | ReadError, seen: Counter[str]) -> _Entry:
    """The item's entry; a key met before gets a ``#N`` suffix, so every report row is its own."""
    key = (item.key or item.source) if isinstance(item, ReadError) else item.key
    seen[key] += 1
    if seen[key] > 1:
        logger.warning("key %r appears %d times in the dataset; this one is reported as %r", key, seen[key],
                       f"{key}#{seen[key]}")
        key = f"{key}#{seen[key]}"
    if isinstance(item, ReadError):
        return _Entry(key, "", item.source, None, error=item.reason)
    return _Entry(key, item.caption, item.source, item.modality, item.label, item.meta.get("folder"))


def _samples(item: PairRecord | ReadError, entry: _Entry) -> list[tuple[str, Any]]:
    """The item's media a judge can embed; problems (blank, silent …) are recorded on the entry."""
    if isinstance(item, ReadError):
        return []
    from pairsynth.alignment.image_checks import image_problem

    media: list[tuple[str, Any]] = []
    if item.image is not None:
        media.append(("image", item.image))
        problem = image_problem(item.image.astype(np.float32) / 255.0)
        if problem:
            entry.problems["image"] = problem
    if item.audio is not None:
        from pairsynth.alignment.audio_checks import audio_problem

        media.append(("audio", (item.audio, item.sample_rate)))
        problem = audio_problem(item.audio, item.sample_rate)
        if problem:
            entry.problems["audio"] = problem
    return [(medium, sample) for medium, sample in media
            if medium not in entry.problems or entry.problems[medium][0] not in UNSCORABLE]


def _embed(scorer: EmbeddingScorer, batch: list[tuple[int, Any]], features: dict[str, list[np.ndarray]],
           owners: dict[str, list[int]], medium: str) -> None:
    features.setdefault(medium, []).append(scorer.embed_samples([sample for _, sample in batch]))
    owners.setdefault(medium, []).extend(index for index, _ in batch)


def _score_medium(scorer: EmbeddingScorer, matrix: np.ndarray, entries: list[_Entry], settings: ScoreSettings) -> None:
    """Cosine with the own caption and rank among the distractor pool, as the scorer would give them."""
    captions = [entry.caption for entry in entries]
    unique = sorted(set(captions))
    text = dict(zip(unique, scorer.embed_texts(unique)))
    cosines = np.einsum("nd,nd->n", matrix, np.stack([text[c] for c in captions]))
    pool = qa.distractor_pool(captions, settings.distractors, settings.seed)
    ranks = qa.own_caption_ranks(matrix, cosines, captions, pool, np.stack([text[c] for c in pool]), settings.distractors)
    truncated = {caption: scorer.is_truncated(caption) for caption in unique}
    for i, entry in enumerate(entries):
        counted = int(ranks.distractors[i])
        entry.scores[scorer.kind] = PairScores(
            scorer.kind, scorer.model_id, float(cosines[i]), rank=int(ranks.rank[i]) if counted else None,
            distractors=counted, best_distractor=pool[ranks.best[i]] if counted else None,
            best_distractor_cosine=float(ranks.best_cosine[i]) if counted else None,
            caption_truncated=truncated[entry.caption])


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
        rows.append(QaRow(entry.key, entry.caption, entry.source, entry.modality, group or "(unreadable)",
                          {judge: s.as_dict() for judge, s in entry.scores.items()}, reason == ACCEPTED,
                          reason, detail, flags, group_of.get(entry.key), has_media=entry.error is None,
                          usable=entry.error is None and not entry.problems))
    return rows, grouping


def _verdict(entry: _Entry, threshold: float) -> tuple[str, str]:
    """Why a pair passes or fails, first cause first: unreadable, unusable media, low score."""
    if entry.error is not None:
        return "unreadable", entry.error
    if entry.problems:
        return next(iter(entry.problems.values()))
    for judge, scores in entry.scores.items():
        if scores.score < threshold:
            return "below_threshold", f"{judge.upper()}Score {scores.score:.2f} < {threshold:.2f}"
    return ACCEPTED, ", ".join(f"{judge.upper()}Score {s.score:.2f}" for judge, s in entry.scores.items())


def _manifest_row(row: dict[str, Any]) -> QaRow:
    scores = row.get("scores") or {}
    flags = [row["reason"]] if row.get("reason") in MEDIA_PROBLEMS else []
    flags += ["caption_truncated"] * any(s.get("caption_truncated") for s in scores.values())
    source = row.get("source") if isinstance(row.get("source"), dict) else {}
    group = source.get("key") or row["caption"] or source.get("path", "")
    return QaRow(row["key"], row["caption"] or "", "", row.get("modality"), group, scores, bool(row["accepted"]),
                 row.get("reason") or "", row.get("detail") or "", flags, None, has_media=bool(row["accepted"]),
                 usable=row.get("reason") not in MEDIA_PROBLEMS)


def _state(state: Any) -> dict[str, Any]:
    return {"caption": state.caption, "key": getattr(state, "key", state.caption), "accepted": state.accepted,
            "attempts": state.attempts}
