"""The stages of a run, each a plain function over one batch of work.

plan → generate → score → accept → write. The local loop in :mod:`pairsynth.generate` calls them in
order; because each takes and returns plain data, a distributed backend (Ray Data actor pools) can
map the same functions over its blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from alignment.acceptance import AcceptanceRule, Decision, check_pair, decide_for_caption
from alignment.clip_scorer import ClipScorer
from alignment.image_checks import image_problem
from modalities.text_to_image import TextToImage
from pairsynth.candidates import Candidate, Condition, derive_seed, sample_key
from pairsynth.writers.base import PairWriter

MIN_RATE_ESTIMATE = 1 / 8
"""Never plan more than 8 candidates per missing pair, however badly a caption has done so far."""


@dataclass
class CaptionState:
    """How far one caption has got; derived from the manifest, never stored separately."""

    caption: str
    index: int
    attempts: int = 0
    accepted: int = 0


@dataclass(frozen=True)
class Plan:
    """What to ask each caption for: ``k`` pairs in at most ``budget`` candidates."""

    k: int
    budget: int
    seed: int
    top_k: bool = False
    pool_factor: float = 2.0
    chunk_size: int = 256


def plan_chunk(states: Sequence[CaptionState], plan: Plan) -> list[Condition]:
    """The next chunk of conditions, or ``[]`` when every caption is done.

    Captions with the fewest attempts go first, so all get a first round before any gets a second.
    A caption's request is never split across chunks, since its accept decisions are made together.
    The plan is a pure function of the committed state: a resumed run plans exactly what an
    uninterrupted one would have.
    """
    attempts = sum(state.attempts for state in states)
    accepted = sum(state.accepted for state in states)
    rate = max(accepted / attempts, MIN_RATE_ESTIMATE) if attempts else 1.0
    open_states = [s for s in states if s.accepted < plan.k and s.attempts < plan.budget]
    conditions: list[Condition] = []
    for state in sorted(open_states, key=lambda s: (s.attempts, s.index)):
        if conditions and len(conditions) >= plan.chunk_size:
            break
        needed = plan.k - state.accepted
        wanted = needed * plan.pool_factor if plan.top_k else needed / rate
        count = min(math.ceil(wanted), plan.budget - state.attempts)
        conditions.extend(
            Condition(state.caption, state.index, sample, derive_seed(plan.seed, state.caption, sample))
            for sample in range(state.attempts, state.attempts + count)
        )
    return conditions


def generate_candidates(generator: TextToImage, conditions: Sequence[Condition], batch_size: int) -> list[Candidate]:
    """Run the generator over ``conditions`` in batches; every sample gets its key and provenance."""
    provenance = generator.provenance
    candidates = []
    for start in range(0, len(conditions), batch_size):
        batch = conditions[start : start + batch_size]
        images = generator.generate([c.caption for c in batch], [c.seed for c in batch])
        for condition, image in zip(batch, images):
            candidate = Candidate(condition, sample_key(condition.caption, provenance, condition.seed),
                                  image.pixels, provenance)
            if image.flagged_nsfw:
                candidate.notes.append("the pipeline's safety checker flagged this image")
            candidates.append(candidate)
    return candidates


def score_candidates(scorer: ClipScorer, candidates: Sequence[Candidate], distractors: Sequence[str]) -> list[Decision | None]:
    """Score the usable candidates; return, per candidate, a rejection for unusable ones or ``None``."""
    problems = [image_problem(candidate.pixels) for candidate in candidates]
    usable = [candidate for candidate, problem in zip(candidates, problems) if problem is None]
    scores = scorer.score_pairs([c.image_uint8() for c in usable], [c.caption for c in usable], distractors)
    for candidate, score in zip(usable, scores):
        candidate.scores = score
        if score.caption_truncated:
            candidate.notes.append(f"caption truncated to the CLIP text context ({scorer.context_length} tokens)")
    return [Decision.reject(*problem) if problem else None for problem in problems]


def accept_candidates(candidates: Sequence[Candidate], rejections: Sequence[Decision | None],
                      states: dict[str, CaptionState], rule: AcceptanceRule, k: int) -> None:
    """Decide every candidate, caption by caption, and update the captions' states."""
    by_caption: dict[str, list[int]] = {}
    for position, candidate in enumerate(candidates):
        by_caption.setdefault(candidate.caption, []).append(position)
    for caption, positions in by_caption.items():
        state = states[caption]
        checks = [rejections[p] or check_pair(candidates[p].scores, rule) for p in positions]
        cosines = [candidates[p].scores.cosine if candidates[p].scores else None for p in positions]
        for position, decision in zip(positions, decide_for_caption(checks, cosines, k - state.accepted, rule)):
            candidates[position].decision = decision
        state.attempts += len(positions)
        state.accepted += sum(candidates[p].accepted for p in positions)


def write_candidates(candidates: Sequence[Candidate], manifest: PairWriter, writers: Sequence[PairWriter]) -> None:
    """Every candidate goes to the manifest; accepted ones to every dataset writer."""
    for candidate in candidates:
        manifest.write(candidate)
        if candidate.accepted:
            for writer in writers:
                writer.write(candidate)
