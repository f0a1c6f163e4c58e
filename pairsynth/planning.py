"""``pairsynth plan``: what a recipe will do, and roughly how long it will take, before a full run.

The plan comes from the recipe alone (captions, candidates, models, formats). The estimate comes from
a short calibration: the models load and one small batch of the run's own first conditions goes
through generate → score → accept. Its seconds per candidate and its acceptance rate, extrapolated
with the run's planning rule, give the expected candidates and time. One batch is a small sample, so
the estimate is a guide, not a promise; the calibration writes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pairsynth.candidates import Condition
from pairsynth.media import MEDIA
from pairsynth.recipe import Recipe
from pairsynth.stages import MIN_RATE_ESTIMATE, StageTimes, accept_candidates, plan_chunk


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """One small batch, timed.

    Attributes:
        candidates: candidates generated and scored.
        accepted: how many of them the recipe's acceptance rule kept.
        load_s: seconds to load the generators and judges.
        seconds: seconds to generate, score and decide the batch.
    """

    candidates: int
    accepted: int
    load_s: float
    seconds: float

    @property
    def seconds_per_candidate(self) -> float:
        return self.seconds / self.candidates if self.candidates else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.candidates if self.candidates else 0.0


@dataclass(kw_only=True)
class RecipePlan:
    """What a run of the recipe asks for, and the estimate of what it will take.

    Attributes:
        captions: the expanded captions.
        k: accepted pairs wanted per caption.
        first_round: candidates the run plans before it has any scores (``k`` per caption).
        max_candidates: the recipe's ceiling, ``max_attempts`` per caption.
        models: the generator of each medium and the judge of each medium.
        formats: the dataset formats written.
        calibration: the timed batch, when one was run.
    """

    captions: list[str]
    k: int
    first_round: int
    max_candidates: int
    models: dict[str, str]
    formats: list[str]
    calibration: Calibration | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> int:
        return self.k * len(self.captions)

    @property
    def expected_candidates(self) -> int | None:
        """Candidates the run will likely need at the calibration's acceptance rate, capped by the recipe.

        The run plans ``missing / rate`` candidates per caption, with the rate never taken below
        1/8, so that is the figure used here too.
        """
        if self.calibration is None:
            return None
        rate = max(self.calibration.acceptance_rate, MIN_RATE_ESTIMATE)
        return min(self.max_candidates, math.ceil(self.target / rate))

    @property
    def expected_seconds(self) -> float | None:
        """Load time plus expected candidates at the calibration's speed."""
        if self.calibration is None or self.expected_candidates is None:
            return None
        return self.calibration.load_s + self.expected_candidates * self.calibration.seconds_per_candidate


def plan_recipe(recipe: Recipe, *, calibrate: bool = True, calibration_size: int | None = None) -> RecipePlan:
    """The plan of ``recipe``, with a one-batch calibration unless ``calibrate`` is false.

    Args:
        recipe: a validated recipe.
        calibrate: load the models and time one batch (the slow part; minutes for hub-size models
            on a CPU).
        calibration_size: candidates in the batch; default the smallest generator batch size.
    """
    from pairsynth.generate import GenerateJob

    job = GenerateJob(recipe)
    states = list(job.units().values())
    first_round = plan_chunk(states, replace(job.plan, chunk_size=len(states) * recipe.k * 64))
    models = {f"generator ({name})": recipe.generator_model(name) for name in recipe.media}
    for name in recipe.media:
        models[f"judge ({name})"] = recipe.scorer.model_for(MEDIA[name].judge)
    if recipe.scorer.pretrained:
        models["judge weights (CLIP pretrained)"] = recipe.scorer.pretrained
    result = RecipePlan(captions=recipe.caption_list, k=recipe.k, first_round=len(first_round),
                        max_candidates=len(states) * recipe.attempts_per_caption,
                        models=models, formats=list(recipe.output_formats))
    if recipe.accept.top_k:
        result.notes.append(f"top_k: each caption draws {recipe.accept.pool_factor:g}·k candidates and keeps its best k")
    early = recipe.accept.early_rejection
    if early is not None:
        result.notes.append(f"early rejection: previews judged after {early.at:.0%} of the steps "
                            f"(score margin {early.score_margin:g}, rank slack {early.rank_slack}); "
                            + ("hopeless candidates are not finished" if early.drop else "verdicts recorded only"))
    if calibrate and first_round:
        size = calibration_size or min(config.batch_size for config in recipe.generator_configs.values())
        result.calibration = calibrate_batch(recipe, first_round[:size])
    return result


def calibrate_batch(recipe: Recipe, conditions: list[Condition]) -> Calibration:
    """Load the recipe's models and time ``conditions`` through generate, score and accept (nothing written)."""
    from pairsynth.generate import GenerateJob

    job = GenerateJob(recipe)
    started = time.perf_counter()
    job.load()
    loaded = time.perf_counter()
    times = StageTimes()
    candidates = job.make(conditions, times)
    accept_candidates(candidates, job.judge(candidates, times), job.units(), job.rule, job.k)
    finished = time.perf_counter()
    return Calibration(candidates=len(candidates), accepted=sum(c.accepted for c in candidates),
                       load_s=loaded - started, seconds=finished - loaded)
