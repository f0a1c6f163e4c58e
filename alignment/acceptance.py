"""Acceptance filters: pure functions from scores to a decision with a reason.

Three rules compose. An absolute threshold per judge (CLIPScore for images, CLAPScore for audio,
both ``100·max(cos, 0)``); a retrieval check (the pair's own caption must rank within ``max_rank``
among distractor captions for its sample, which is much stronger than a threshold because it is
relative to what the judge thinks of other captions); and per-caption top-k (keep the best
candidates of a caption rather than the first that pass). A triplet must pass every judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pairsynth.alignment.scores import PairScores

ACCEPTED = "accepted"


@dataclass(frozen=True)
class Decision:
    """Whether a candidate becomes a pair, and why.

    Attributes:
        accepted: the verdict.
        reason: a short machine-readable code: ``accepted``, a quality problem (``nan_output``,
            ``blank_image``, ``silent_audio`` …), ``below_threshold``, ``retrieval_rank``,
            ``not_in_top_k`` or ``caption_complete``.
        detail: the numbers behind the verdict, for people.
    """

    accepted: bool
    reason: str
    detail: str = ""

    @classmethod
    def reject(cls, reason: str, detail: str = "") -> Decision:
        return cls(False, reason, detail)


@dataclass(frozen=True)
class AcceptanceRule:
    """The rule a pair must pass. ``None`` (or a judge missing from ``min_scores``) skips a check."""

    min_scores: Mapping[str, float] = field(default_factory=dict)
    max_rank: int | None = 1
    top_k: bool = False


def check_pair(scores: Mapping[str, PairScores], rule: AcceptanceRule) -> Decision:
    """Apply the per-pair checks (threshold, retrieval) for every judge that scored the candidate."""
    for judge, score in scores.items():
        minimum = rule.min_scores.get(judge)
        if minimum is not None and score.score < minimum:
            return Decision.reject("below_threshold", f"{judge.upper()}Score {score.score:.2f} < {minimum:.2f}")
        if rule.max_rank is not None and score.rank is not None and score.rank > rule.max_rank:
            return Decision.reject(
                "retrieval_rank",
                f"{judge}: own caption ranks {score.rank} of {score.distractors + 1} (max {rule.max_rank}); "
                f"best: {score.best_distractor!r} cosine {score.best_distractor_cosine:.4f} > {score.cosine:.4f}",
            )
    summary = ", ".join(f"{judge.upper()}Score {score.score:.2f}" for judge, score in scores.items())
    return Decision(True, ACCEPTED, summary)


def ranking_value(scores: Mapping[str, PairScores]) -> float:
    """What top-k ranks by: the mean cosine over the judges (one judge: its cosine)."""
    return sum(score.cosine for score in scores.values()) / len(scores) if scores else float("-inf")


def decide_for_caption(
    checks: Sequence[Decision], values: Sequence[float], needed: int, rule: AcceptanceRule
) -> list[Decision]:
    """Turn one caption's per-pair checks into final decisions, accepting at most ``needed``.

    Args:
        checks: per-candidate results of the quality and per-pair checks, in sample-index order.
        values: the candidates' :func:`ranking_value`, for top-k ordering.
        needed: how many more pairs this caption may accept.
        rule: with ``top_k``, the best passing candidates win; otherwise the first ones in
            sample-index order, which makes the accepted set independent of how work was batched.
    """
    passing = [index for index, check in enumerate(checks) if check.accepted]
    if rule.top_k:
        passing.sort(key=lambda index: -values[index])
        surplus = Decision.reject("not_in_top_k", f"better-scoring candidates of the caption filled its {needed} places")
    else:
        surplus = Decision.reject("caption_complete", "the caption already had its k pairs")
    winners = set(passing[:needed])
    return [
        check if not check.accepted or index in winners else surplus
        for index, check in enumerate(checks)
    ]
