"""Acceptance filters: pure functions from scores to a decision with a reason.

Three rules compose. An absolute threshold on CLIPScore; a retrieval check (the pair's own caption
must rank within ``max_rank`` among distractor captions for its sample, which is much stronger than
a threshold because it is relative to what the model thinks of other captions); and per-caption
top-k (keep the best candidates of a caption rather than the first that pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alignment.scores import PairScores

ACCEPTED = "accepted"


@dataclass(frozen=True)
class Decision:
    """Whether a candidate becomes a pair, and why.

    Attributes:
        accepted: the verdict.
        reason: a short machine-readable code: ``accepted``, ``nan_output``, ``blank_image``,
            ``below_threshold``, ``retrieval_rank``, ``not_in_top_k`` or ``caption_complete``.
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
    """The rule a pair must pass. ``None`` switches a check off."""

    min_clip_score: float | None = None
    max_rank: int | None = 1
    top_k: bool = False


def check_pair(scores: PairScores, rule: AcceptanceRule) -> Decision:
    """Apply the per-pair checks (threshold, retrieval) to one scored candidate."""
    if rule.min_clip_score is not None and scores.clip_score < rule.min_clip_score:
        return Decision.reject(
            "below_threshold", f"CLIPScore {scores.clip_score:.2f} < {rule.min_clip_score:.2f}"
        )
    if rule.max_rank is not None and scores.rank is not None and scores.rank > rule.max_rank:
        return Decision.reject(
            "retrieval_rank",
            f"own caption ranks {scores.rank} of {scores.distractors + 1} (max {rule.max_rank}); "
            f"best: {scores.best_distractor!r} cosine {scores.best_distractor_cosine:.4f} > {scores.cosine:.4f}",
        )
    return Decision(True, ACCEPTED, f"CLIPScore {scores.clip_score:.2f}")


def decide_for_caption(
    checks: Sequence[Decision], cosines: Sequence[float | None], needed: int, rule: AcceptanceRule
) -> list[Decision]:
    """Turn one caption's per-pair checks into final decisions, accepting at most ``needed``.

    Args:
        checks: per-candidate results of the quality and per-pair checks, in sample-index order.
        cosines: the candidates' cosines (``None`` where unscored), for top-k ordering.
        needed: how many more pairs this caption may accept.
        rule: with ``top_k``, the best passing candidates win; otherwise the first ones in
            sample-index order, which makes the accepted set independent of how work was batched.
    """
    passing = [index for index, check in enumerate(checks) if check.accepted]
    if rule.top_k:
        passing.sort(key=lambda index: -(cosines[index] or 0.0))
        surplus = Decision.reject("not_in_top_k", f"a better-scoring candidate of the caption filled its {needed} places")
    else:
        surplus = Decision.reject("caption_complete", "the caption already had its k pairs")
    winners = set(passing[:needed])
    return [
        check if not check.accepted or index in winners else surplus
        for index, check in enumerate(checks)
    ]
