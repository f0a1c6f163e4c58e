"""Fidelity and diversity of a dataset against a real reference set, in the judge's embedding space.

A pair that passes CLIP/CLAP can still be useless for training when the samples sit off the real
data's manifold (low precision) or all look alike (low recall, coverage and diversity). This module
measures that, per class/caption where both sets have enough samples and over the whole set:

- precision, recall, density, coverage (Kynkäänniemi et al. 2019; Naeem et al. 2020) from the
  ``prdc`` package, with its k-nearest-neighbour balls;
- the Fréchet distance between Gaussians fitted to the two embedding sets (the FID formula, here in
  CLIP/CLAP space; ``scipy.linalg.sqrtm``), biased upward at small sample counts: compare like sizes;
- within each group of the dataset, the Vendi score (Friedman & Dieng 2023, ``vendi-score``): the
  exponential of the entropy of the cosine-similarity matrix's eigenvalues, read as an "effective
  number of distinct samples" (1 = all identical, n = all orthogonal), and the mean pairwise cosine.

A group is flagged ``mode_collapse`` when its spread beyond a single mode (Vendi − 1) falls below
:data:`COLLAPSE_RATIO` of the reference group's at the same sample count, or, without a reference group, when its mean pairwise
cosine reaches :data:`COLLAPSE_COSINE`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_NEAREST_K = 5
MIN_GROUP_SAMPLES = 10
"""Fewest samples, in each set, for a group's precision/recall/density/coverage and Fréchet distance."""
COLLAPSE_RATIO = 0.5
COLLAPSE_COSINE = 0.95
MIN_DIVERSITY_SAMPLES = 2


@dataclass(frozen=True, kw_only=True)
class SetComparison:
    """A synthetic set against a real one: ``prdc``'s four numbers and the Fréchet distance."""

    real: int
    synthetic: int
    nearest_k: int
    precision: float
    recall: float
    density: float
    coverage: float
    frechet: float


@dataclass(frozen=True, kw_only=True)
class GroupDiversity:
    """Diversity within one group (caption or class) of the dataset, beside its reference group's."""

    group: str
    samples: int
    vendi: float
    mean_cosine: float
    reference_vendi: float | None
    mode_collapse: bool
    why: str


@dataclass(kw_only=True)
class FidelityResult:
    """What the QA report shows: per medium, the whole-set and per-group comparisons and diversity."""

    medium: str
    judge: str
    reference: str
    overall: SetComparison | None
    per_group: dict[str, SetComparison] = field(default_factory=dict)
    skipped_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no comparison
    diversity: list[GroupDiversity] = field(default_factory=list)

    @property
    def collapsed(self) -> list[str]:
        return [d.group for d in self.diversity if d.mode_collapse]

    def as_dict(self) -> dict[str, Any]:
        return {"medium": self.medium, "judge": self.judge, "reference": self.reference,
                "overall": None if self.overall is None else _rounded(asdict(self.overall)),
                "per_group": {g: _rounded(asdict(c)) for g, c in self.per_group.items()},
                "skipped_groups": self.skipped_groups,
                "diversity": [_rounded(asdict(d)) for d in self.diversity],
                "mode_collapse": self.collapsed,
                "settings": {"min_group_samples": MIN_GROUP_SAMPLES, "collapse_ratio": COLLAPSE_RATIO,
                             "collapse_cosine": COLLAPSE_COSINE}}


def prdc_scores(real: np.ndarray, synthetic: np.ndarray, nearest_k: int = DEFAULT_NEAREST_K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``synthetic`` against ``real`` (``prdc.compute_prdc``).

    Args:
        real, synthetic: ``(n, d)`` feature rows; each set needs more than ``nearest_k`` rows.
        nearest_k: the k of the k-NN balls that stand for each manifold.
    """
    from prdc import compute_prdc

    for name, rows in (("real", real), ("synthetic", synthetic)):
        if len(rows) <= nearest_k:
            raise ValueError(f"{name} set has {len(rows)} samples; precision/recall need more than nearest_k={nearest_k}")
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        scores = compute_prdc(np.asarray(real, np.float32), np.asarray(synthetic, np.float32), nearest_k)
    return {name: float(value) for name, value in scores.items()}


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between Gaussians fitted to the two feature sets."""
    from scipy import linalg

    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if len(real) < 2 or len(synthetic) < 2:
        raise ValueError("a Fréchet distance needs at least 2 samples per set")
    mu1, mu2 = real.mean(0), synthetic.mean(0)
    sigma1, sigma2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(synthetic, rowvar=False))
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product (fewer samples than dimensions): regularise, as FID code does
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def vendi_score(features: np.ndarray) -> float:
    """The Vendi score of rows under cosine similarity: 1 (all alike) … n (all orthogonal).

    ``vendi_score.vendi.score_K`` on the cosine Gram matrix (its ``score_X`` ignores ``q``; the
    order-1 score used here is the same either way).
    """
    from vendi_score import vendi

    unit = _unit_rows(features)
    return float(vendi.score_K(unit @ unit.T, q=1))


def mean_pairwise_cosine(features: np.ndarray) -> float:
    """Mean cosine over distinct pairs of rows (1 = all the same direction)."""
    unit = _unit_rows(features)
    n = len(unit)
    if n < 2:
        raise ValueError("a pairwise cosine needs at least 2 samples")
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def compare_sets(real: np.ndarray, synthetic: np.ndarray, nearest_k: int = DEFAULT_NEAREST_K) -> SetComparison:
    """:func:`prdc_scores` and :func:`frechet_distance` together."""
    scores = prdc_scores(real, synthetic, nearest_k)
    return SetComparison(real=len(real), synthetic=len(synthetic), nearest_k=nearest_k,
                         frechet=frechet_distance(real, synthetic), **scores)


def compare_with_reference(
    features: np.ndarray,
    groups: Sequence[str],
    reference_features: np.ndarray,
    reference_groups: Sequence[str],
    *,
    medium: str = "image",
    judge: str = "",
    reference: str = "",
    nearest_k: int = DEFAULT_NEAREST_K,
    seed: int = 0,
) -> FidelityResult:
    """Fidelity of ``features`` against ``reference_features``, overall and per shared group, plus diversity.

    Args:
        features, groups: the dataset's embeddings and each row's class/caption.
        reference_features, reference_groups: the same for the real reference set.
        medium, judge, reference: labels for the report.
        nearest_k: k of the precision/recall balls.
        seed: seeds the subsample that puts a group's Vendi score and its reference's at the same size.
    """
    features, reference_features = np.asarray(features, np.float64), np.asarray(reference_features, np.float64)
    groups, reference_groups = np.asarray(groups, object), np.asarray(reference_groups, object)
    result = FidelityResult(medium=medium, judge=judge, reference=reference, overall=None)
    need = max(MIN_GROUP_SAMPLES, nearest_k + 1)
    if min(len(features), len(reference_features)) >= nearest_k + 1:
        result.overall = compare_sets(reference_features, features, nearest_k)
    rng = np.random.default_rng(seed)
    for group in sorted(set(groups.tolist())):
        mine, real = features[groups == group], reference_features[reference_groups == group]
        if len(real) == 0:
            result.skipped_groups[group] = "not in the reference set"
        elif min(len(mine), len(real)) < need:
            result.skipped_groups[group] = f"{len(mine)} samples vs {len(real)} real; needs {need} of each"
        else:
            result.per_group[group] = compare_sets(real, mine, nearest_k)
        if len(mine) >= MIN_DIVERSITY_SAMPLES:
            result.diversity.append(_group_diversity(group, mine, real, rng))
    collapsed = result.collapsed
    if collapsed:
        logger.warning("%s: %d group(s) look mode-collapsed: %s", medium, len(collapsed), ", ".join(collapsed[:10]))
    return result


def _group_diversity(group: str, mine: np.ndarray, real: np.ndarray, rng: np.random.Generator) -> GroupDiversity:
    vendi, cosine = vendi_score(mine), mean_pairwise_cosine(mine)
    if len(real) >= MIN_DIVERSITY_SAMPLES:
        size = min(len(mine), len(real))  # the Vendi score grows with n: compare at one size
        ours = vendi_score(mine[rng.choice(len(mine), size, replace=False)]) if size < len(mine) else vendi
        theirs = vendi_score(real[rng.choice(len(real), size, replace=False)])
        # Compare the spread beyond one mode (Vendi − 1): embeddings share a common direction, so
        # raw Vendi scores of unlike sets can sit close together just above 1.
        collapse = theirs - 1 > 1e-3 and (ours - 1) < COLLAPSE_RATIO * (theirs - 1)
        why = (f"Vendi {ours:.2f} vs real {theirs:.2f} at n={size}"
               + (f" (spread beyond one mode < {COLLAPSE_RATIO:g}× real's)" if collapse else ""))
        return GroupDiversity(group=group, samples=len(mine), vendi=vendi, mean_cosine=cosine, reference_vendi=theirs,
                              mode_collapse=collapse, why=why)
    collapse = cosine >= COLLAPSE_COSINE
    why = f"no reference group; mean cosine {cosine:.3f}" + (f" ≥ {COLLAPSE_COSINE:g}" if collapse else "")
    return GroupDiversity(group=group, samples=len(mine), vendi=vendi, mean_cosine=cosine, reference_vendi=None,
                          mode_collapse=collapse, why=why)


def embed_records(records: Iterable[Any], embed: Callable[[str, list[Any]], np.ndarray], group_of: Callable[[Any], str],
                  batch_size: int = 64) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Embed a reference dataset's records per medium, in batches: ``{medium: (features, groups)}``.

    Args:
        records: :class:`pairsynth.readers.PairRecord` items (read errors are skipped, with a warning).
        embed: ``embed(medium, samples)`` → ``(n, d)`` unit features, the judge the dataset was scored with.
        group_of: a record's class/caption, by the same rule the dataset's rows were grouped by.
        batch_size: samples per judge call.
    """
    pending: dict[str, list[tuple[Any, str]]] = {}
    out: dict[str, tuple[list[np.ndarray], list[str]]] = {}

    def flush(medium: str) -> None:
        batch = pending.pop(medium, [])
        if batch:
            chunks, names = out.setdefault(medium, ([], []))
            chunks.append(embed(medium, [sample for sample, _ in batch]))
            names.extend(group for _, group in batch)

    skipped = 0
    for record in records:
        if not hasattr(record, "caption"):
            skipped += 1
            continue
        media = [("image", record.image)] if record.image is not None else []
        media += [("audio", (record.audio, record.sample_rate))] if record.audio is not None else []
        for medium, sample in media:
            pending.setdefault(medium, []).append((sample, group_of(record)))
            if len(pending[medium]) >= batch_size:
                flush(medium)
    for medium in list(pending):
        flush(medium)
    if skipped:
        logger.warning("reference set: %d unreadable item(s) skipped", skipped)
    return {medium: (np.concatenate(chunks), names) for medium, (chunks, names) in out.items()}


def _unit_rows(features: np.ndarray) -> np.ndarray:
    rows = np.asarray(features, np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def against_reference(reference: str | Path, features: dict[str, list[np.ndarray]], owners: dict[str, list[int]],
                      rows: Sequence[Any], grouping: str, judge_for: Callable[[str], Any],
                      batch_size: int = 64) -> list[dict[str, Any]]:
    """The QA report's fidelity section: read and embed ``reference`` with the dataset's own judges.

    Args:
        reference: a real dataset in any layout :mod:`pairsynth.readers` reads.
        features, owners: the scored dataset's embedding chunks per medium and each row's index in ``rows``.
        rows: the report rows (their ``group`` is the class/caption compared per group).
        grouping: what rows are grouped by (``label``, ``folder`` or ``caption``); reference items
            are grouped by the same field, falling back to their caption as the rows do.
        judge_for: the loaded judge of a medium (``embed_samples``, ``model_id``).
        batch_size: reference samples per judge call.

    Returns:
        One :meth:`FidelityResult.as_dict` per medium present in both sets.
    """
    from pairsynth.errors import PairsynthError
    from pairsynth.readers import read_pairs

    def group_of(record: Any) -> str:
        return {"label": record.label, "folder": record.meta.get("folder")}.get(grouping) or record.caption

    embedded = embed_records(read_pairs(reference), lambda medium, samples: judge_for(medium).embed_samples(samples),
                             group_of, batch_size)
    results = []
    for medium, chunks in features.items():
        if medium not in embedded:
            continue
        reference_features, reference_groups = embedded[medium]
        result = compare_with_reference(np.concatenate(chunks), [rows[i].group for i in owners[medium]],
                                        reference_features, reference_groups, medium=medium,
                                        judge=judge_for(medium).model_id, reference=str(reference))
        results.append(result.as_dict())
    if not results:
        raise PairsynthError(f"--reference {reference}: no {' or '.join(features) or 'media'} items to compare with "
                             f"(it has {', '.join(embedded) or 'none readable'})")
    return results
