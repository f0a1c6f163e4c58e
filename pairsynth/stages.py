"""The stages of a run, each a plain function over one batch of work.

plan → generate → score → accept → write. The run engine (:mod:`pairsynth.run`) calls them in
order; because each takes and returns plain data, a distributed backend (Ray Data actor pools) can
map the same functions over its blocks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pairsynth.alignment.acceptance import AcceptanceRule, Decision, check_pair, decide_for_caption, ranking_value
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.candidates import Candidate, Condition, derive_seed, sample_key
from pairsynth.interpolation import generate_batch
from pairsynth.media import medium
from pairsynth.writers.base import PairWriter


class Generator(Protocol):
    """What the generate stage needs of a modality adapter."""

    @property
    def provenance(self) -> dict[str, Any]: ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Any]: ...


class Varier(Protocol):
    """What the generate stage needs of a variation adapter: each output is made from a source sample
    (pixels, or a ``(waveform, rate)`` clip), its prompt and its seed."""

    @property
    def provenance(self) -> dict[str, Any]: ...

    def generate(self, sources: Sequence[Any], prompts: Sequence[str], seeds: Sequence[int]) -> list[Any]: ...


MIN_RATE_ESTIMATE = 1 / 8
"""Never plan more than 8 candidates per missing pair, however badly a caption has done so far."""


@dataclass(kw_only=True)
class CaptionState:
    """How far one caption (or, for variations, one source pair) has got.

    Derived from the manifest at start, never stored separately.
    """

    caption: str
    index: int
    attempts: int = 0
    accepted: int = 0
    prompts: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the source pair's key, when varying existing pairs

    @property
    def key(self) -> str:
        """What ``k`` counts per: the caption, or the source pair being varied."""
        return self.source if self.source is not None else self.caption


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to ask each caption for: ``k`` pairs in at most ``budget`` candidates."""

    k: int
    budget: int
    seed: int
    top_k: bool = False
    pool_factor: float = 2.0
    chunk_size: int = 256


@dataclass
class StageTimes:
    """Seconds a run spent in each stage: where the time went (the CLI prints it, benchmarks read it)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def __str__(self) -> str:
        return " · ".join(f"{stage} {seconds:.1f} s" for stage, seconds in self.seconds.items())


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
            Condition(caption=state.caption, caption_index=state.index, sample_index=sample,
                      seed=derive_seed(plan.seed, state.key, sample), prompts=state.prompts, source=state.source)
            for sample in range(state.attempts, state.attempts + count)
        )
    return conditions


def generate_candidates(generators: Mapping[str, Generator] | Mapping[str, Varier], conditions: Sequence[Condition],
                        batch_size: int | Mapping[str, int], sources: Mapping[str, Any] | None = None) -> list[Candidate]:
    """Run each modality's generator over ``conditions`` in batches.

    With one generator (image or audio pairs) the provenance is that generator's; with two (triplets)
    it is nested per modality. The key hashes all of it, so changing any parameter makes new keys.
    With ``sources`` (variations), each generator also gets the source medium of each condition's pair.
    ``batch_size`` may differ per medium (``{"image": 32, "audio": 8}``).
    """
    provenance = _provenance(generators)
    candidates = [Candidate(condition=c, key=sample_key(c.unit, provenance, c.seed), provenance=provenance)
                  for c in conditions]
    for modality, generator in generators.items():
        attach = medium(modality).attach
        size = batch_size if isinstance(batch_size, int) else batch_size[modality]
        for start in range(0, len(conditions), size):
            batch = candidates[start : start + size]
            arguments = ([c.condition.prompt_for(modality) for c in batch], [c.condition.seed for c in batch])
            if sources is not None:
                arguments = ([sources[c.condition.unit] for c in batch], *arguments)
            outputs = (generator.generate(*arguments) if sources is not None else  # interpolation points too:
                       generate_batch(generator, *arguments, [c.condition.blend for c in batch]))
            for candidate, output in zip(batch, outputs):
                attach(candidate, output)
    return candidates


def score_candidates(scorers: Mapping[str, EmbeddingScorer], candidates: Sequence[Candidate],
                     distractors: Mapping[str, Sequence[str]]) -> list[Decision | None]:
    """Score the usable candidates with every medium's judge, against that medium's prompt.

    ``distractors`` holds, per medium, the captions the pair's own must outrank.

    Returns, per candidate, a rejection when one of its media is unusable (NaN, blank, silent …:
    such media are never scored or written), else ``None``.
    """
    problems: list[Decision | None] = [None] * len(candidates)
    for modality, scorer in scorers.items():
        usable = []
        for position, candidate in enumerate(candidates):
            problem = medium(modality).problem(candidate) if problems[position] is None else None
            if problem is not None:
                problems[position] = Decision.reject(*problem)
            elif problems[position] is None:
                usable.append(candidate)
        results = scorer.score_pairs([judge_input(c, modality) for c in usable],
                                     [c.condition.prompt_for(modality) for c in usable], distractors.get(modality, ()))
        for candidate, score in zip(usable, results):
            candidate.scores[scorer.kind] = score
            if score.caption_truncated:
                candidate.notes.append(f"caption truncated to the {scorer.kind.upper()} text context "
                                       f"({scorer.context_length} tokens)")
    for position, candidate in enumerate(candidates):  # a triplet rejected by its audio keeps no image score
        if problems[position] is not None:
            candidate.scores.clear()
    return problems


def accept_candidates(candidates: Sequence[Candidate], rejections: Sequence[Decision | None],
                      states: dict[str, CaptionState], rule: AcceptanceRule, k: int) -> None:
    """Decide every candidate, caption by caption, and update the captions' states."""
    by_unit: dict[str, list[int]] = {}
    for position, candidate in enumerate(candidates):
        by_unit.setdefault(candidate.condition.unit, []).append(position)
    for unit, positions in by_unit.items():
        state = states[unit]
        checks = [rejections[p] or check_pair(candidates[p].scores, rule) for p in positions]
        values = [ranking_value(candidates[p].scores) for p in positions]
        for position, decision in zip(positions, decide_for_caption(checks, values, k - state.accepted, rule)):
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


def _provenance(generators: Mapping[str, Generator] | Mapping[str, Varier]) -> dict[str, Any]:
    if len(generators) == 1:
        return next(iter(generators.values())).provenance
    return {modality: generator.provenance for modality, generator in generators.items()}


def judge_input(candidate: Candidate, medium_name: str) -> Any:
    """The medium as it will be stored (8-bit pixels, 16-bit FLAC), so scores describe the files."""
    return medium(medium_name).judge_input(candidate)
