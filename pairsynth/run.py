"""The run engine: the numbered steps every command that makes pairs goes through, held once.

check inputs → lock and roll back to the last commit → count states from the manifest → load models
(only if work is left) → plan → generate → score → accept → write → commit → finish → report.

A :class:`Job` (``generate``, ``vary``, ``balance``) supplies only what differs: its fingerprint,
its units and how manifest rows count towards them, how its models load, how a chunk of conditions
becomes candidates, and any extra checks (``vary``'s similarity band). A backend runs the
generate and score stages (:class:`LocalBackend` in this process; a distributed backend maps the
same job methods over actors), while acceptance, writing and commits always stay here, so the commit
point and the resume rules are the same whatever ran the models.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.candidates import Candidate, Condition
from pairsynth.output_dir import OutputDir, disk_errors
from pairsynth.stages import (CaptionState, PartCommitter, Plan, StageTimes, accept_candidates, encode_accepted,
                              plan_chunk, write_candidates, write_workers)
from pairsynth.writers import ManifestWriter, PairWriter, WebDatasetWriter, dataset_writers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressUpdate:
    """Sent after every commit, for progress bars."""

    candidates: int
    accepted: int
    target: int

    @classmethod
    def of(cls, states: Iterable[CaptionState], k: int) -> ProgressUpdate:
        states = list(states)
        return cls(sum(s.attempts for s in states), sum(s.accepted for s in states), k * len(states))


@dataclass(kw_only=True)
class RunSummary:
    """What a run produced, and which captions (or source pairs) fell short of ``k``."""

    out_dir: Path
    k: int
    captions: list[CaptionState]
    elapsed_s: float
    resumed_parts: int = 0
    shards: list[Path] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)

    @property
    def candidates(self) -> int:
        return sum(state.attempts for state in self.captions)

    @property
    def accepted(self) -> int:
        return sum(state.accepted for state in self.captions)

    @property
    def shortfall(self) -> list[CaptionState]:
        """Units that used their whole attempt budget without reaching ``k`` pairs."""
        return [state for state in self.captions if state.accepted < self.k]


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """What a job writes: dataset formats, media encodings, and whether a report ends the run.

    ``overlap`` and ``write_workers`` change speed, never the outputs: with ``overlap`` the engine
    encodes, writes and commits chunk N on a background thread while the backend makes chunk N+1,
    encoding on ``write_workers`` threads. ``None`` picks both from ``generation_device`` (see
    :func:`overlap_settings`).
    """

    formats: Sequence[str]
    image_format: str = "png"
    audio_format: str = "flac"
    report: bool = True
    overlap: bool | None = None
    write_workers: int | None = None
    generation_device: str = "auto"


class Job(Protocol):
    """What a command supplies to the engine; everything else is the engine's.

    Attributes:
        k: accepted pairs wanted per unit (a caption, or a source pair for variations).
        plan: budgets, seed and chunk size for :func:`pairsynth.stages.plan_chunk`.
        rule: the acceptance rule.
        output: formats and report.
        batch_size: conditions the generate stage batches together; the judge stage judges the
            same batches (:func:`judge_batches`). A distributed backend cuts a chunk at multiples of
            it, from the chunk's start, so its batches, and so its scores, are the local loop's.
    """

    k: int
    batch_size: int
    plan: Plan
    rule: AcceptanceRule
    output: OutputSpec

    def check(self, out_dir: Path) -> None:
        """Raise on bad input (``out_dir`` included) before anything is locked or loaded; a job may
        read its inputs here, and fill in what depends on them (``rule``, ``output``)."""

    def fingerprint(self) -> str:
        """What decides the outputs; a directory written under another fingerprint is refused."""

    def units(self) -> dict[str, CaptionState]:
        """Every unit with zero attempts, keyed as :meth:`unit_of` names them."""

    def unit_of(self, row: Mapping[str, Any]) -> str | None:
        """The unit a committed manifest row counts towards; ``None``: the row is no candidate."""

    def first_rows(self) -> list[dict[str, Any]]:
        """Manifest rows for the first commit only (inputs that could not be read …)."""

    def load(self) -> None:
        """Load the models (called once, only when there is work left)."""

    def make(self, conditions: Sequence[Condition], times: StageTimes) -> list[Candidate]:
        """Generate stage: the candidates of ``conditions``, media attached, keys derived."""

    def judge(self, candidates: Sequence[Candidate], times: StageTimes) -> list[Decision | None]:
        """Score stage: scores on each candidate; a rejection where one is already certain."""

    def report_run(self, summary: RunSummary) -> dict[str, Any]:
        """What this kind of run adds to its report's "This run" section (balance: class counts before
        and after); ``{}``: nothing."""


class Backend(Protocol):
    """Runs a job's model stages; the engine keeps acceptance, writing and commits."""

    def start(self, job: Job) -> None:
        """Get the models ready (in this process, or on workers)."""

    def process(self, conditions: Sequence[Condition], times: StageTimes) -> tuple[list[Candidate], list[Decision | None]]:
        """Generate and judge one chunk; candidates in the order of ``conditions``."""

    def close(self) -> None:
        """Release workers."""


class LocalBackend:
    """This process, one model stage after the other.

    With ``pipelined`` (the engine sets it when it overlaps writing, i.e. on an accelerator), a
    chunk is generated one generator batch at a time and each batch is judged on a second thread
    while the next one generates. The batches and the judge's groups are the ones
    :func:`judge_batches` uses, so the outputs are the same bytes either way. Jobs that judge
    while generating (early rejection) are never pipelined: their judge would run on two threads.
    """

    def __init__(self) -> None:
        self.job: Job | None = None
        self.pipelined = False

    def start(self, job: Job) -> None:
        self.job = job
        job.load()

    def process(self, conditions: Sequence[Condition], times: StageTimes) -> tuple[list[Candidate], list[Decision | None]]:
        assert self.job is not None, "start() first"
        job = self.job
        if not self.pipelined or getattr(job, "early", None) is not None:
            with times.timing("generate"):
                candidates = job.make(conditions, times)
            with times.timing("score"):
                rejections = judge_batches(job, candidates, times)
            return candidates, rejections

        def judge(batch: list[Candidate]) -> list[Decision | None]:
            with times.timing("score"):
                return job.judge(batch, times)

        size = max(1, int(job.batch_size))
        candidates, verdicts = [], []
        with ThreadPoolExecutor(1, thread_name_prefix="pairsynth-judge") as judging:
            for start in range(0, len(conditions), size):
                with times.timing("generate"):
                    batch = job.make(conditions[start : start + size], times)
                candidates += batch
                verdicts.append(judging.submit(judge, batch))
            with times.timing("score_wait"):
                rejections = [rejection for verdict in verdicts for rejection in verdict.result()]
        return candidates, rejections

    def close(self) -> None:
        self.job = None


def judge_batches(job: Job, candidates: Sequence[Candidate], times: StageTimes) -> list[Decision | None]:
    """Judge ``candidates`` (a chunk, from its start) one generator batch at a time.

    Every backend judges these groups: a judge's float results depend on which samples share a
    forward pass, so judging the same groups gives the same scores wherever the batches ran.
    """
    size = max(1, int(job.batch_size))
    rejections: list[Decision | None] = []
    for start in range(0, len(candidates), size):
        rejections += job.judge(candidates[start : start + size], times)
    return rejections


def overlap_settings(spec: OutputSpec, backend: Backend) -> tuple[bool, int]:
    """Whether to overlap writing with generation, and on how many encoder threads.

    A backend may say how many of this process's cores its generation keeps busy
    (``generation_threads``: a distributed backend's driver, about 1). Otherwise generation on an
    accelerator keeps one core busy (the thread that drives it), and on the CPU all of torch's threads.
    On a CPU run nothing overlaps by default: benchmarks/overlap.py measured the overlapped engine
    slower there, since the writer only takes cores from generation.
    """
    import torch

    from pairsynth.devices import resolve_device
    from pairsynth.errors import PairsynthError

    threads = getattr(backend, "generation_threads", None)
    if threads is None:
        try:
            on_cpu = resolve_device(spec.generation_device).type == "cpu"
        except PairsynthError:  # a finished run reopened where its device is missing: nothing will generate
            on_cpu = True
        threads = torch.get_num_threads() if on_cpu else 1
    else:
        on_cpu = False
    overlap = spec.overlap if spec.overlap is not None else not on_cpu
    workers = spec.write_workers if spec.write_workers is not None else (write_workers(threads) if overlap else 0)
    return overlap, workers


def run_job(job: Job, out_dir: str | Path, *, overwrite: bool = False, backend: Backend | None = None,
            on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunSummary:
    """Run ``job`` into ``out_dir`` until every unit has ``job.k`` pairs or used its budget.

    Args:
        job: what to make (see :class:`Job`).
        out_dir: the datasets, manifest and report. A run killed at any point resumes from its last
            commit when called again with the same job.
        overwrite: discard what ``out_dir`` holds instead of resuming.
        backend: where the models run; default :class:`LocalBackend`.
        on_progress: called after every commit.
    """
    started = time.perf_counter()
    # 1. Check inputs before any model loads.
    job.check(Path(out_dir))
    times = StageTimes()
    output = OutputDir(out_dir)
    backend = backend or LocalBackend()
    with output.locked():
        # 2. Return the output directory to its last commit: drop a killed run's unfinished part.
        progress = output.load_progress(job.fingerprint(), overwrite=overwrite)
        manifest = ManifestWriter(output.root)
        spec = job.output
        writers = dataset_writers(output.root, spec.formats, image_format=spec.image_format,
                                  audio_format=spec.audio_format)
        output.restore(progress, [manifest, *writers])
        resumed_parts = progress.parts
        if resumed_parts:
            logger.info("resuming %s after %d committed parts", output.root, resumed_parts)

        # 3. Count each unit's progress from the committed manifest, streamed row by row.
        states = count_states(job.units(), manifest.iter_rows(), job.unit_of)
        if resumed_parts == 0:
            for row in job.first_rows():
                manifest.write_row(row)

        # 4. Load the models, only when there is work left.
        try:
            if plan_chunk(list(states.values()), job.plan):
                with times.timing("load"):
                    backend.start(job)

            # 5. plan → generate → score → accept → write → commit, one chunk at a time. With overlap the
            #    write and commit of chunk N run on a background thread while the backend makes N+1;
            #    parts still commit in order, each only once its files are durable.
            overlap, workers = overlap_settings(spec, backend)
            if isinstance(backend, LocalBackend):
                backend.pipelined = overlap  # judge batch N while batch N+1 generates, when writing overlaps too

            def write(candidates: Sequence[Candidate]) -> None:
                with disk_errors(output.root):
                    write_candidates(candidates, manifest, writers)

            committer = PartCommitter(
                write, lambda: output.commit(progress, [manifest, *writers]), background=overlap, workers=workers,
                encode=(lambda c, pool: encode_accepted(c, spec.image_format, spec.audio_format, pool)) if writers
                else None, times=times)
            try:
                while conditions := plan_chunk(list(states.values()), job.plan):
                    candidates, rejections = backend.process(conditions, times)
                    with times.timing("score"):
                        accept_candidates(candidates, rejections, states, job.rule, job.k)
                    update = ProgressUpdate.of(states.values(), job.k)
                    committer.submit(candidates, None if on_progress is None else (lambda u=update: on_progress(u)))
            finally:
                committer.close()
        finally:
            backend.close()

        # 6. Finish: mark the run complete, log the units that never reached k.
        output.finish(progress, [manifest, *writers])
        summary = RunSummary(out_dir=output.root, k=job.k, captions=list(states.values()), elapsed_s=0.0,
                             resumed_parts=resumed_parts, shards=_shards(writers), times=times)
        if short := summary.shortfall:  # one line, not one per unit: balance asks for hundreds of one-pair units
            logger.warning("%d of %d units ended short of k = %d pairs (first: %s, %d after %d attempts); the "
                           "manifest's reasons say why", len(short), len(states), job.k, short[0].shown,
                           short[0].accepted, short[0].attempts)

        # 7. Report: the QA report of `pairsynth score`, from the manifest's scores.
        if spec.report:
            from pairsynth.run_report import write_run_report

            with times.timing("report"):
                write_run_report(output.root, manifest.iter_rows, summary, job.rule.min_scores,
                                 job.report_run(summary))
        summary.elapsed_s = time.perf_counter() - started
        return summary


def count_states(states: dict[str, CaptionState], rows: Iterable[Mapping[str, Any]],
                 unit_of: Callable[[Mapping[str, Any]], str | None]) -> dict[str, CaptionState]:
    """Add each committed manifest row to its unit's attempts (and accepted count), in one pass."""
    for row in rows:
        unit = unit_of(row)
        if unit is not None:
            state = states[unit]
            state.attempts += 1
            state.accepted += bool(row["accepted"])
    return states


def _shards(writers: list[PairWriter]) -> list[Path]:
    return [path for writer in writers if isinstance(writer, WebDatasetWriter) for path in writer.shard_paths]
