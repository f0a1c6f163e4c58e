"""The Ray Data backend: a job's generate and score stages on actor pools, every GPU of a cluster.

One streaming Ray Data pipeline lives for the whole run:

    conditions (fed by the driver, chunk by chunk) → map_batches(generate [+ judge]) → [map_batches(judge)]
    → iter_batches back in the driver → accept → write → commit (the engine's own steps)

Each ``map_batches`` stage is a callable class on an :class:`ray.data.ActorPoolStrategy` pool: the
job travels to the actors pickled without models (``Job.__getstate__``) and each actor loads its
own once. The run engine plans a chunk only after the previous one is accepted (the plan depends on
the acceptance rate so far), so the pipeline's input is a queue the driver fills with one chunk at a
time instead of a dataset known up front: the actors and their models then stay loaded across
chunks, where a dataset per chunk would start new actors (and reload the models) every commit.

Determinism: a chunk is cut into the job's own generator batches (``job.batch_size``, counted from
the chunk's start, as the local loop does), each batch is one row of the pipeline, and keys and seeds
are per sample, so which actor ran a batch changes nothing; each batch is judged as one group, as
the local loop judges (:func:`pairsynth.run.judge_batches`), so the scores are the local ones to the
bit; the driver puts the batches back in condition order before acceptance.

Faults: a killed actor is restarted and its batch retried (``max_restarts`` / ``max_task_retries``,
unlimited by default); a batch that arrives twice is kept once. A killed driver leaves the output
at its last commit, and re-running the command resumes from there, exactly as locally.

Memory: at most one chunk (``commit_every`` candidates) is in flight, so the object store holds at
most that many candidates' media (a 512² float32 image is 3 MB, 1024² 12 MB, a 10 s 16 kHz clip
0.6 MB); Ray's default object store (30 % of the node's memory) spills to disk beyond that, and
Ray's memory monitor kills (and Ray then retries) a worker that pushes the node past 95 %.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

IMPORT_STARTED = time.time()  # in an actor: when its class first arrived (see startup_line)

from pairsynth.errors import PairsynthError  # noqa: E402
from pairsynth.stages import StageTimes  # noqa: E402

if TYPE_CHECKING:
    from pairsynth.alignment.acceptance import Decision
    from pairsynth.candidates import Candidate, Condition
    from pairsynth.recipe import RayConfig
    from pairsynth.run import Job

logger = logging.getLogger(__name__)

INSTALL_HINT = "the ray backend needs Ray Data, an optional extra: pip install 'pairsynth[ray]'"

READ_CPUS = 0.05
"""The feeding task mostly waits on the queue; reserving a whole CPU for it would starve the actors."""

HEADROOM_CPUS = 1.0
"""Left unreserved by the actors so the feeding task (and the driver's own writing) always get a CPU:
on a 2-CPU Ray, two actors reserving 1 CPU each deadlock the pipeline (the read never schedules)."""


def import_ray() -> Any:
    """``ray`` with Ray Data, or one line naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PairsynthError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True, kw_only=True)
class ActorLayout:
    """How many actors of each stage, and what each reserves and uses.

    Attributes:
        generators: generator actors.
        scorers: judge actors; 0 judges inside the generator actors.
        threads: ``torch.set_num_threads`` inside each actor.
        cpus: the CPUs each actor reserves with Ray (may be fractional, see :data:`HEADROOM_CPUS`).
        gpus_per_generator, gpus_per_scorer: GPUs each actor reserves.
    """

    generators: int
    scorers: int
    threads: int
    cpus: float
    gpus_per_generator: float
    gpus_per_scorer: float


def plan_actors(settings: RayConfig, cpus: float, gpus: float) -> ActorLayout:
    """Size the actor pools for a cluster with ``cpus`` CPUs and ``gpus`` GPUs in all.

    ``auto`` means one generator actor per GPU, or per core on a CPU-only cluster; threads split the
    cores among the actors; reservations leave :data:`HEADROOM_CPUS` unreserved.
    """
    gpus_per_generator = (1.0 if gpus >= 1 else 0.0) if settings.gpus_per_actor == "auto" else settings.gpus_per_actor
    gpus_per_scorer = gpus_per_generator if settings.gpus_per_scorer == "auto" else settings.gpus_per_scorer
    if settings.generator_actors != "auto":
        generators = settings.generator_actors
    elif gpus_per_generator > 0:
        generators = max(1, int((gpus - settings.scorer_actors * gpus_per_scorer) // gpus_per_generator))
    else:
        threads = 1 if settings.cpus_per_actor == "auto" else settings.cpus_per_actor
        generators = max(1, int(cpus // threads) - settings.scorer_actors)
    actors = generators + settings.scorer_actors
    needed = generators * gpus_per_generator + settings.scorer_actors * gpus_per_scorer
    if needed > gpus + 1e-9:
        raise PairsynthError(f"backend.ray: {generators} generator actors × {gpus_per_generator:g} GPUs + "
                             f"{settings.scorer_actors} scorer actors × {gpus_per_scorer:g} GPUs need {needed:g} GPUs; "
                             f"the Ray cluster has {gpus:g} (lower generator_actors or gpus_per_actor)")
    threads = settings.cpus_per_actor if settings.cpus_per_actor != "auto" else max(1, int(cpus // actors))
    reserve = min(float(threads), max(0.01, (cpus - HEADROOM_CPUS) / actors))
    return ActorLayout(generators=generators, scorers=settings.scorer_actors, threads=threads, cpus=round(reserve, 4),
                       gpus_per_generator=gpus_per_generator, gpus_per_scorer=gpus_per_scorer)


class RayDataBackend:
    """Runs a job's model stages on Ray Data actor pools (see the module docstring).

    Args:
        settings: the actor layout (the recipe's ``backend.ray``, CLI flags applied).
        address: the Ray cluster; default: ``RAY_ADDRESS`` (set by ``ray job submit``) or a new local Ray.
    """

    def __init__(self, settings: RayConfig, *, address: str | None = None) -> None:
        self.ray = import_ray()  # fail before the output directory is locked or anything loads
        self.settings = settings
        self.address = address
        self.layout: ActorLayout | None = None
        self._started_ray = False
        self._queue: Any = None
        self._results: Iterator[Any] | None = None
        self._job_ref: Any = None
        self._batch_size = 1
        self._chunk = 0  # chunk 0: the start-up probe
        self.startup_lines: list[str] = []  # each actor's start-up, as its first result brought it

    def start(self, job: Job) -> None:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        resources = ray.cluster_resources()
        self.layout = layout = plan_actors(self.settings, resources.get("CPU", 0.0), resources.get("GPU", 0.0))
        logger.info("ray backend: %s", layout)
        from ray.util.queue import Queue

        self._queue = Queue(actor_options={"num_cpus": 0})
        self._job_ref = ray.put(job)  # held here for the whole run: restarted actors read it again
        self._batch_size = max(1, int(getattr(job, "batch_size", 1)))
        self._results = iter(self._pipeline(layout).iter_batches(batch_size=None, batch_format="pyarrow",
                                                                 prefetch_batches=0))  # prefetching holds a block back
        self._run_chunk([])  # an empty batch through every stage: start() returns once an actor has its models

    def _run_chunk(self, batches: list[Sequence[Condition]], times: StageTimes | None = None) -> list[tuple[bytes, bytes]]:
        """Put a chunk's batches on the feed; their results, in batch order, once all have arrived."""
        chunk = self._chunk
        self._chunk += 1
        payloads = [pickle.dumps(list(batch), protocol=5) for batch in batches or [[]]]
        self._queue.put_nowait_batch([(chunk, index, payload) for index, payload in enumerate(payloads)])
        arrived: dict[int, tuple[bytes, bytes]] = {}
        while len(arrived) < len(payloads):
            for row in self._next_block().to_pylist():
                if row["startup"]:
                    logger.info("ray backend: %s", row["startup"])
                    self.startup_lines += row["startup"].split("; ")
                if row["chunk"] != chunk or row["batch"] in arrived:  # a retried batch may arrive twice: keep one
                    continue
                arrived[row["batch"]] = (row["candidates"], row["rejections"])
                for stage in ("generate", "score", "encode"):
                    if times is not None:
                        key = f"actors: {stage}"
                        times.seconds[key] = times.seconds.get(key, 0.0) + row[f"{stage}_s"]
        return [arrived[index] for index in range(len(payloads))]

    def _pipeline(self, layout: ActorLayout) -> Any:
        ray = self.ray
        context = ray.data.DataContext.get_current()
        shaping, progress = context.target_max_block_size, context.enable_progress_bars
        # A block per generator batch, passed on at once: with the default 128 MiB target the read
        # would hold small blocks back until it has 128 MiB, and a chunk would never complete.
        context.target_max_block_size, context.enable_progress_bars = 1, False
        try:
            data = ray.data.read_datasource(_ConditionFeed(self._queue), override_num_blocks=1, num_cpus=READ_CPUS)
            fused = layout.scorers == 0
            data = data.map_batches(_GenerateStage, fn_constructor_args=(self._job_ref, layout.threads, fused),
                                    batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=layout.generators),
                                    num_cpus=layout.cpus, num_gpus=layout.gpus_per_generator, zero_copy_batch=True)
            if not fused:
                data = data.map_batches(_JudgeStage, fn_constructor_args=(self._job_ref, layout.threads), batch_size=1,
                                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=layout.scorers),
                                        num_cpus=layout.cpus, num_gpus=layout.gpus_per_scorer, zero_copy_batch=True)
        finally:
            context.target_max_block_size, context.enable_progress_bars = shaping, progress
        return data

    def process(self, conditions: Sequence[Condition], times: StageTimes) -> tuple[list[Candidate], list[Decision | None]]:
        assert self._results is not None, "start() first"
        size = self._batch_size
        with times.timing("generate"):  # the driver's wait: generation, judging and transfers on the actors
            results = self._run_chunk([conditions[start : start + size] for start in range(0, len(conditions), size)],
                                      times)
            candidates: list[Candidate] = []
            rejections: list[Decision | None] = []
            for batch_candidates, batch_rejections in results:
                candidates += pickle.loads(batch_candidates)
                rejections += pickle.loads(batch_rejections)
        return candidates, rejections

    def _next_block(self) -> Any:
        assert self._results is not None
        try:
            return next(self._results)
        except StopIteration:
            raise PairsynthError("the ray pipeline ended before the chunk was complete") from None
        except Exception as error:  # Ray wraps a worker's error; a user's problem is re-raised as is
            cause = _pairsynth_cause(error)
            if cause is not None:
                raise cause from None
            raise

    def close(self) -> None:
        if self._queue is not None:
            try:
                self._queue.put(None)  # the feed ends, the pipeline drains and releases its actors
                for _ in self._results or ():
                    pass
            except Exception:  # a pipeline that already failed has nothing left to drain
                logger.debug("ray pipeline ended with an error while closing", exc_info=True)
            self.ray.kill(self._queue.actor)
        self._queue = self._results = self._job_ref = None
        if self._started_ray:
            self.ray.shutdown()
            self._started_ray = False


def _pairsynth_cause(error: BaseException) -> PairsynthError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PairsynthError) and type(current).__module__.startswith("pairsynth"):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None


class _ConditionFeed:
    """A Ray Data datasource whose one read task yields the batches the driver puts on a queue.

    Subclasses ``ray.data.Datasource`` at first use (see :func:`_feed_class`), so that importing this
    module does not import Ray.
    """

    def __new__(cls, queue: Any) -> Any:
        return _feed_class()(queue)


def _feed_class() -> type:
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class ConditionFeed(Datasource):
        def __init__(self, queue: Any) -> None:
            super().__init__()
            self.queue = queue

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            queue = self.queue

            def read() -> Iterator[Any]:
                import pyarrow as pa

                while (item := queue.get()) is not None:
                    chunk, batch, payload = item
                    yield pa.table({"chunk": [chunk], "batch": [batch], "conditions": pa.array([payload], pa.large_binary())})

            return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))]

    return ConditionFeed


def startup_line(marks: list[tuple[str, float]]) -> str:
    """One log line of where an actor's start-up went: its process's start, then each step's seconds.

    Each actor's first result carries it to the driver, which logs it (and keeps it on
    ``RayDataBackend.startup_lines``, which ``benchmarks/ray_startup.py`` prints).
    """
    try:
        import psutil

        began = psutil.Process().create_time()
    except ImportError:  # psutil comes with Ray, but the line does without it
        began = marks[0][1]
    steps, last = [], began
    for name, at in marks:
        steps.append(f"{name} +{at - last:.2f} s")
        last = at
    return f"actor {os.getpid()} start-up (process began at {began:.2f}): {', '.join(steps)}"


class _Stage:
    """What both actor classes share: the job, loaded once per actor, on its share of the cores."""

    def __init__(self, job_ref: Any, threads: int) -> None:
        marks = [("class arrived", IMPORT_STARTED), ("entered", time.time())]
        import ray
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        diffusers_logging.disable_progress_bar()  # one bar per actor per load, in the driver's log
        transformers_logging.disable_progress_bar()
        marks.append(("imported", time.time()))
        self.job = ray.get(job_ref) if isinstance(job_ref, ray.ObjectRef) else job_ref
        marks.append(("got the job", time.time()))
        self.job.load()
        marks.append(("loaded", time.time()))
        self.startup = startup_line(marks)  # sent back with this actor's first batch (see _output)
        logger.info("%s", self.startup)

    def take_startup(self) -> str:
        """This actor's start-up line the first time, then ``""``."""
        line, self.startup = self.startup, ""
        return line

    def judge(self, candidates: list[Candidate], times: StageTimes) -> list[Decision | None]:
        """Judge, then encode the media of candidates that may be accepted: the driver only writes bytes."""
        from pairsynth.run import judge_batches
        from pairsynth.writers.base import encode_media

        with times.timing("score"):  # one generator batch: the local loop's judging group
            rejections = judge_batches(self.job, candidates, times)
        output = self.job.output
        with times.timing("encode"):
            for candidate, rejection in zip(candidates, rejections):
                if rejection is None:
                    encode_media(candidate, image_format=output.image_format, audio_format=output.audio_format)
        return rejections


def _row(table: Any, name: str) -> Any:
    return table.column(name)[0].as_py()


def _output(table: Any, candidates: bytes, rejections: bytes, times: StageTimes, startup: str) -> dict[str, list[Any]]:
    import pyarrow as pa

    return {"chunk": [_row(table, "chunk")], "batch": [_row(table, "batch")], "startup": [startup],
            "candidates": pa.array([candidates], pa.large_binary()), "rejections": pa.array([rejections], pa.large_binary()),
            **{f"{stage}_s": [times.seconds.get(stage, 0.0)] for stage in ("generate", "score", "encode")}}


class _GenerateStage(_Stage):
    """``map_batches`` callable: one generator batch of conditions → candidates (judged when fused)."""

    def __init__(self, job_ref: Any, threads: int, fused: bool) -> None:
        super().__init__(job_ref, threads)
        self.fused = fused

    def __call__(self, table: Any) -> dict[str, list[Any]]:
        times = StageTimes()
        conditions = pickle.loads(_row(table, "conditions"))
        with times.timing("generate"):
            candidates = self.job.make(conditions, times) if conditions else []
        rejections = self.judge(candidates, times) if self.fused else None
        return _output(table, pickle.dumps(candidates, protocol=5), pickle.dumps(rejections, protocol=5), times,
                       self.take_startup())


class _JudgeStage(_Stage):
    """``map_batches`` callable of a separate judge pool: candidates → rejections (and encoded media)."""

    def __call__(self, table: Any) -> dict[str, list[Any]]:
        times = StageTimes(dict(generate=_row(table, "generate_s")))
        candidates = pickle.loads(_row(table, "candidates"))
        rejections = self.judge(candidates, times)
        startup = "; ".join(line for line in (_row(table, "startup"), self.take_startup()) if line)
        return _output(table, pickle.dumps(candidates, protocol=5), pickle.dumps(rejections, protocol=5), times, startup)
