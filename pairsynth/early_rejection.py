"""Early rejection: judge each candidate from a preview part-way through its denoising, finish the hopeful.

The recipe's ``accept.early_rejection`` says where to look (``at``: a fraction of the steps) and how
much slack the preview gets against the final rule: its judge score may fall ``score_margin`` below
the final minimum and its own caption may rank ``rank_slack`` places lower than ``max_rank``, since
a preview is blurrier than the sample it becomes. A candidate whose preview fails even that relaxed
rule is dropped: it is recorded in the manifest as ``early_rejection`` (with its preview scores),
counts as an attempt, and its batch slot's remaining steps are never run. With ``drop: false``
every candidate is finished and the preview verdict is only recorded, which is how to measure the
rule on one's own models (``benchmarks/early_rejection.py`` does) before letting it drop anything.

The previews are judged by the same judge, against the same prompts and distractors, as the final
samples (:func:`pairsynth.stages.score_candidates`); the mechanics of pausing and resuming the
denoising are in :mod:`pairsynth.modalities.screening`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pairsynth.alignment.acceptance import AcceptanceRule, Decision, check_pair
from pairsynth.alignment.embedding_scorer import BoundedDistractors, EmbeddingScorer
from pairsynth.candidates import Candidate
from pairsynth.media import medium
from pairsynth.modalities.screening import ScreenRequest

REASON = "early_rejection"


@dataclass(frozen=True, kw_only=True)
class EarlyRule:
    """Where the preview is taken and how much slack it gets (see the module docstring)."""

    at: float
    score_margin: float
    rank_slack: int
    drop: bool = True

    def relax(self, rule: AcceptanceRule) -> AcceptanceRule:
        """The final rule loosened by the slack: what a preview must pass to be finished."""
        return AcceptanceRule({judge: max(0.0, value - self.score_margin) for judge, value in rule.min_scores.items()},
                              None if rule.max_rank is None else rule.max_rank + self.rank_slack, rule.top_k)


def screens(early: EarlyRule, rule: AcceptanceRule, scorers: Mapping[str, EmbeddingScorer],
            distractors: Mapping[str, Sequence[str] | BoundedDistractors]
            ) -> dict[str, Callable[[Sequence[Candidate]], ScreenRequest]]:
    """Per medium, how to screen one generator batch of candidates (what ``generate_candidates`` takes)."""
    relaxed = early.relax(rule)

    def for_medium(name: str) -> Callable[[Sequence[Candidate]], ScreenRequest]:
        def request(batch: Sequence[Candidate]) -> ScreenRequest:
            return ScreenRequest(at=early.at, decide=lambda previews: _decide(
                batch, previews, name, scorers[name], distractors.get(name, ()), relaxed, early))
        return request

    return {name: for_medium(name) for name in scorers}


def rejection(candidate: Candidate) -> Decision | None:
    """The early verdict of a dropped candidate, else ``None``."""
    dropped = [(judge, record) for judge, record in candidate.early.items() if record.get("dropped")]
    if not dropped:
        return None
    judge, record = dropped[0]
    return Decision.reject(REASON, f"{judge} preview at {record['at']:.0%} of the steps: {record['detail']}")


def _decide(batch: Sequence[Candidate], previews: list[Any], name: str, scorer: EmbeddingScorer,
            texts: Sequence[str] | BoundedDistractors, relaxed: AcceptanceRule, early: EarlyRule) -> list[bool]:
    """Judge the previews of ``batch``; record each verdict on its candidate; say which to finish."""
    entry = medium(name)
    judged: list[tuple[int, Candidate]] = []
    for position, (candidate, output) in enumerate(zip(batch, previews)):
        scratch = copy.copy(candidate)  # the preview never touches the candidate's own media
        entry.attach(scratch, output)
        if entry.problem(scratch) is None:  # an unusable preview (NaN …) is finished: the final check decides
            judged.append((position, scratch))
    from pairsynth.stages import pick_distractors  # stages imports this module

    prompts = [c.condition.prompt_for(name) for _, c in judged]
    texts, _ = pick_distractors(texts, prompts, [c for _, c in judged])
    results = scorer.score_pairs([entry.judge_input(c) for _, c in judged], prompts, texts) if judged else []
    keep = [True] * len(batch)
    for (position, _), score in zip(judged, results):
        verdict = check_pair({scorer.kind: score}, relaxed)
        batch[position].early[scorer.kind] = {
            "at": early.at, "score": round(score.score, 4), "rank": score.rank,
            "passed": verdict.accepted, "dropped": early.drop and not verdict.accepted,
            "detail": verdict.detail,
        }
        keep[position] = verdict.accepted or not early.drop
    return keep
