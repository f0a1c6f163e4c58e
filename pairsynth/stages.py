"""The stages of a run, each a plain function over one batch of work.

plan → generate → score → accept → write. The run engine (:mod:`pairsynth.run`) calls them in
order; because each takes and returns plain data, a distributed backend (Ray Data actor pools) can
map the same functions over its blocks.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pairsynth.alignment.acceptance import AcceptanceRule, Decision, check_pair, decide_for_caption, ranking_value
from pairsynth.alignment.embedding_scorer import BoundedDistractors, EmbeddingScorer
from pairsynth.candidates import Candidate, Condition, derive_seed, sample_key
from pairsynth.early_rejection import rejection as early_rejection
from pairsynth.interpolation import generate_batch
from pairsynth.media import medium
from pairsynth.modalities.screening import ScreenRequest
from pairsynth.writers.base import PairWriter, encode_media

logger = logging.getLogger(__name__)


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


_TIMES_LOCK = threading.Lock()  # module-level, so StageTimes stays picklable for distributed backends

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

    @property
    def shown(self) -> str:
        """The key for people: a composite key's fields (balance's, interpolation's units) joined by `` · ``."""
        return self.key.replace("\x1f", " · ")


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
        """Add the block's seconds to ``stage`` (safe from the background writer thread too)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with _TIMES_LOCK:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed

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
    # at most chunk_size captions fit in a chunk (each asks for at least one candidate): pick those without
    # sorting all (heapq.nsmallest is sorted(...)[:n], ties included, in O(captions · log chunk_size))
    for state in heapq.nsmallest(plan.chunk_size, open_states, key=lambda s: (s.attempts, s.index)):
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
                        batch_size: int | Mapping[str, int], sources: Mapping[str, Any] | None = None,
                        screens: Mapping[str, Callable[[Sequence[Candidate]], ScreenRequest]] | None = None
                        ) -> list[Candidate]:
    """Run each modality's generator over ``conditions`` in batches.

    With one generator (image or audio pairs) the provenance is that generator's; with two (triplets)
    it is nested per modality. The key hashes all of it, so changing any parameter makes new keys.
    With ``sources`` (variations), each generator also gets the source medium of each condition's pair.
    ``batch_size`` may differ per medium (``{"image": 32, "audio": 8}``). With ``screens`` (early
    rejection, :mod:`pairsynth.early_rejection`) each batch is previewed and only the candidates the
    screen keeps are finished; a triplet dropped by its first medium never makes its second.
    Interpolation points are not screened.
    """
    provenance = _provenance(generators)
    candidates = [Candidate(condition=c, key=sample_key(c.unit, provenance, c.seed), provenance=provenance)
                  for c in conditions]
    for modality, generator in generators.items():
        attach = medium(modality).attach
        size = batch_size if isinstance(batch_size, int) else batch_size[modality]
        live = [c for c in candidates if not c.dropped_early]
        for start in range(0, len(live), size):
            batch = live[start : start + size]
            arguments = ([c.condition.prompt_for(modality) for c in batch], [c.condition.seed for c in batch])
            blends = [c.condition.blend for c in batch]
            if sources is not None:
                outputs = generator.generate([sources[c.condition.unit] for c in batch], *arguments)
            elif screens and modality in screens and not any(blends):
                outputs = generator.generate(*arguments, screen=screens[modality](batch))
            else:  # interpolation points too
                outputs = generate_batch(generator, *arguments, blends)
            for candidate, output in zip(batch, outputs):
                if output is not None:  # None: dropped by the screen
                    attach(candidate, output)
    return candidates


def score_candidates(scorers: Mapping[str, EmbeddingScorer], candidates: Sequence[Candidate],
                     distractors: Mapping[str, Sequence[str] | BoundedDistractors]) -> list[Decision | None]:
    """Score the usable candidates with every medium's judge, against that medium's prompt.

    ``distractors`` holds, per medium, the captions the pair's own must outrank: one list for every
    pair, or a :class:`BoundedDistractors` that picks a bounded set per pair (recorded on the
    candidate's ``retrieval``, and so in the manifest).

    Returns, per candidate, a rejection when one of its media is unusable (NaN, blank, silent …:
    such media are never scored or written), else ``None``.
    """
    problems: list[Decision | None] = [early_rejection(c) for c in candidates]
    for modality, scorer in scorers.items():
        usable = []
        for position, candidate in enumerate(candidates):
            problem = medium(modality).problem(candidate) if problems[position] is None else None
            if problem is not None:
                problems[position] = Decision.reject(*problem)
            elif problems[position] is None:
                usable.append(candidate)
        prompts = [c.condition.prompt_for(modality) for c in usable]
        texts, records = pick_distractors(distractors.get(modality, ()), prompts, usable)
        for candidate, record in zip(usable, records):
            candidate.retrieval[scorer.kind] = record
        results = scorer.score_pairs([judge_input(c, modality) for c in usable], prompts, texts)
        for candidate, score in zip(usable, results):
            candidate.scores[scorer.kind] = score
            if score.caption_truncated:
                candidate.notes.append(f"caption truncated to the {scorer.kind.upper()} text context "
                                       f"({scorer.context_length} tokens)")
    for position, candidate in enumerate(candidates):  # a triplet rejected by its audio keeps no image score
        if problems[position] is not None:
            candidate.scores.clear()
            candidate.retrieval.clear()
    return problems


def pick_distractors(texts: Sequence[str] | BoundedDistractors, prompts: Sequence[str],
                     candidates: Sequence[Candidate]) -> tuple[Sequence[str] | list[list[str]], list[Any]]:
    """The distractors each candidate's prompt is ranked against, and what to record of them.

    One list for all (and nothing to record), or, for :class:`BoundedDistractors`, a seeded pick per
    candidate with its record (which captions, how chosen).
    """
    if not isinstance(texts, BoundedDistractors):
        return texts, []
    picks = [texts.pick(prompt, c.condition.seed) for prompt, c in zip(prompts, candidates)]
    return [chosen for chosen, _ in picks], [record for _, record in picks]


def bound_distractors(distractors: Mapping[str, Sequence[str]], scorers: Mapping[str, EmbeddingScorer],
                      count: int | None, hard: int = 0) -> dict[str, Sequence[str] | BoundedDistractors]:
    """Per medium, the distractor list as is, or a per-sample bounded set when there are more than ``count``.

    A pool of at most ``count + 1`` captions (each pair's own among them) keeps today's check exactly:
    every pair against all the others. Only larger pools are bounded, so recipes with few captions
    keep their keys and accepted sets.
    """
    if count is None:
        return dict(distractors)
    return {name: BoundedDistractors(pool, count, hard, scorers[name]) if len(pool) > count + 1 else pool
            for name, pool in distractors.items()}


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


def encode_accepted(candidates: Sequence[Candidate], image_format: str, audio_format: str,
                    pool: ThreadPoolExecutor | None = None) -> None:
    """Encode each accepted candidate's media once (PNG/FLAC), on ``pool`` when given.

    The bytes are cached on the candidate (:func:`~pairsynth.writers.base.encode_media`), so every
    writer then stores the same bytes without encoding again. PIL's encoders and libsndfile release
    the GIL, so a pool of threads encodes in parallel.
    """
    accepted = [c for c in candidates if c.accepted and (c.image is not None or c.audio is not None)]
    encode = lambda c: encode_media(c, image_format=image_format, audio_format=audio_format)  # noqa: E731
    if pool is None or len(accepted) < 2:
        for candidate in accepted:
            encode(candidate)
    else:
        for _ in pool.map(encode, accepted):
            pass


def write_workers(generation_threads: int, cores: int | None = None, most: int = 8) -> int:
    """Encoder threads for the cores generation leaves free: never more, so nothing is oversubscribed.

    Args:
        generation_threads: cores the generator keeps busy in this process (its torch threads on a
            CPU run; about one, the driving thread, when a GPU or remote workers generate).
        cores: cores this process may use (default: its CPU affinity).
        most: a cap; beyond a few threads PNG encoding stops being the bottleneck.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # one core for the writer thread itself (manifest rows, tar members), the rest encode
    return max(0, min(most, cores - generation_threads - 1))


class PartCommitter:
    """Writes and commits each part, in order, optionally on a background thread.

    With ``background`` the part of chunk N is encoded, written and committed while the backend
    makes chunk N+1: :meth:`submit` returns at once after waiting for the part before (so at most one
    part is in flight, and parts are committed strictly in order). The commit itself is unchanged
    (``commit`` still makes every file durable before recording the part), so a run killed at any
    moment resumes from its last recorded commit exactly as a serial run would. Without
    ``background`` each part is written inline: the serial engine.

    Args:
        write: writes one part's candidates (every file, no commit).
        commit: makes the part durable and records it (the commit point).
        encode: encodes one part's media ahead of writing (on the encoder pool), or ``None``.
        background: overlap writing with the next chunk's generation.
        workers: encoder threads (0: encode on the writer thread itself).
        times: where the ``write`` (and ``write_wait``: the engine waiting for a part) seconds go.
    """

    def __init__(self, write: Callable[[Sequence[Candidate]], None], commit: Callable[[], None], *,
                 encode: Callable[[Sequence[Candidate], ThreadPoolExecutor | None], None] | None = None,
                 background: bool = False, workers: int = 0, times: StageTimes | None = None) -> None:
        self._write, self._commit, self._encode = write, commit, encode
        self.times = times or StageTimes()
        self.background = background
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pairsynth-encode") if workers > 0 else None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pairsynth-write") if background else None
        self._pending: Future | None = None
        self._pending_done: Callable[[], None] | None = None

    def submit(self, candidates: Sequence[Candidate], on_done: Callable[[], None] | None = None) -> None:
        """Write and commit ``candidates`` as the next part; ``on_done`` runs (on this thread) once committed."""
        self.wait()
        if self._thread is None:
            self._part(candidates)
            if on_done is not None:
                on_done()
            return
        self._pending = self._thread.submit(self._part, list(candidates))
        self._pending_done = on_done

    def wait(self) -> None:
        """Block until the part in flight is committed; re-raise its error, if it had one."""
        if self._pending is None:
            return
        future, done = self._pending, self._pending_done
        self._pending = self._pending_done = None
        with self.times.timing("write_wait"):
            future.result()
        if done is not None:
            done()

    def close(self) -> None:
        """Finish the part in flight (a part started is committed, as a serial run would) and stop the threads."""
        try:
            self.wait()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _part(self, candidates: Sequence[Candidate]) -> None:
        with self.times.timing("write"):
            if self._encode is not None:
                self._encode(candidates, self._pool)
            self._write(candidates)
            self._commit()
