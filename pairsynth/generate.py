"""Recipe → dataset: what ``pairsynth generate`` gives the run engine (:mod:`pairsynth.run`).

The job's units are the recipe's captions; its models are one generator and one judge per medium
(two of each for triplets); a candidate passes when every judge agrees with its medium's prompt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.candidates import Candidate, Condition
from pairsynth.checks import check_generate
from pairsynth.concepts.judging import concept_judges
from pairsynth.early_rejection import EarlyRule, screens
from pairsynth.interpolation import attach_blends, endpoint_captions, path_points
from pairsynth.judges import load_judge
from pairsynth.media import medium
from pairsynth.recipe import Recipe
from pairsynth.run import Backend, OutputSpec, ProgressUpdate, RunSummary, run_job
from pairsynth.stages import (CaptionState, Generator, Plan, StageTimes, bound_distractors, generate_candidates,
                              score_candidates)

logger = logging.getLogger(__name__)


class GenerateJob:
    """A recipe as a job: captions are the units, ``k`` accepted pairs each.

    Args:
        recipe: a validated recipe.
        generators, scorers: already-loaded models per medium to use instead of the recipe's.
    """

    def __init__(self, recipe: Recipe, *, generators: Mapping[str, Generator] | None = None,
                 scorers: Mapping[str, EmbeddingScorer] | None = None) -> None:
        self.recipe = recipe
        self.generators = dict(generators or {})
        self.scorers = dict(scorers or {})
        self._given = (dict(self.generators), dict(self.scorers))
        self.k = recipe.k
        accept = recipe.accept
        min_scores = {"clip": accept.min_clip_score, "clap": accept.min_clap_score}
        self.rule = AcceptanceRule({judge: value for judge, value in min_scores.items() if value is not None},
                                   accept.retrieval.max_rank if accept.retrieval else None, accept.top_k)
        self.plan = Plan(k=recipe.k, budget=recipe.attempts_per_caption, seed=recipe.seed, top_k=accept.top_k,
                         pool_factor=accept.pool_factor, chunk_size=recipe.output.commit_every)
        self.output = OutputSpec(formats=recipe.output_formats, image_format=recipe.output.image_format,
                                 audio_format=recipe.output.audio_format, report=recipe.output.report,
                                 generation_device=recipe.device)
        self.batch_sizes = {m: config.batch_size for m, config in recipe.generator_configs.items()}
        self.batch_size = math.lcm(*self.batch_sizes.values())  # every medium's batches end together
        self.distractors = recipe_distractors(recipe)
        self.points = path_points(recipe.interpolate)  # interpolate: one more unit per point of each path
        self._bounded: dict[str, Any] | None = None  # built on first use, once the judges are loaded
        early = accept.early_rejection
        self.early = None if early is None else EarlyRule(at=early.at, score_margin=early.score_margin,
                                                          rank_slack=early.rank_slack, drop=early.drop)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for workers) without the models :meth:`load` made: each worker loads its own."""
        state = dict(self.__dict__)
        state["generators"], state["scorers"] = map(dict, self._given)
        state["_bounded"] = None
        return state

    def check(self, out_dir: Path) -> None:
        check_generate(self.recipe, out_dir, generators=self.generators, scorers=self.scorers)

    def fingerprint(self) -> str:
        return self.recipe.fingerprint()

    def units(self) -> dict[str, CaptionState]:
        recipe = self.recipe
        nested = len(recipe.media) > 1  # each medium of a triplet has its own prompt
        units = {caption: CaptionState(caption=caption, index=index, prompts=recipe.prompts_for(caption) if nested else {})
                 for index, caption in enumerate(recipe.caption_list)}
        first = len(units)
        units.update({p.unit: CaptionState(caption=p.caption, index=first + i, source=p.unit)
                      for i, p in enumerate(self.points)})
        return units

    def unit_of(self, row: Mapping[str, Any]) -> str:
        return row.get("interpolation", {}).get("unit", row["caption"])

    def report_run(self, summary: RunSummary) -> dict[str, Any]:
        return {}

    def first_rows(self) -> list[dict[str, Any]]:
        return []

    def load(self) -> None:
        recipe = self.recipe
        for name in recipe.media:
            if name not in self.generators:
                self.generators[name] = medium(name).load_generator(recipe.generator_model(name),
                                                                    recipe.generator_configs[name], recipe.device)
                self.generators[name].load_concepts(recipe.concept_folders)  # a recipe's concepts:
            if name not in self.scorers:
                self.scorers[name] = load_judge(name, recipe.scorer, device=recipe.device)
        self.scorers = concept_judges(self.scorers, self.generators)  # judges read a concept token as its words

    def make(self, conditions: Sequence[Condition], times: StageTimes) -> list[Candidate]:
        conditions = attach_blends(conditions, self.points, self.recipe.seed)  # endpoint seeds and weight
        early = None if self.early is None else screens(self.early, self.rule, self.scorers, self.bounded_distractors)
        return generate_candidates(self.generators, conditions, self.batch_sizes, screens=early)

    def judge(self, candidates: Sequence[Candidate], times: StageTimes) -> list[Decision | None]:
        return score_candidates(self.scorers, candidates, self.bounded_distractors)

    @property
    def bounded_distractors(self) -> dict[str, Any]:
        """Per medium, the distractors each pair (and each preview) is ranked against."""
        if self._bounded is None:
            retrieval = self.recipe.accept.retrieval
            self._bounded = bound_distractors(self.distractors, self.scorers, retrieval and retrieval.distractors,
                                              retrieval.hard_negatives if retrieval else 0)
        return self._bounded


def generate_dataset(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    generators: Mapping[str, Generator] | None = None,
    scorers: Mapping[str, EmbeddingScorer] | None = None,
    backend: Backend | None = None,
    on_progress: Callable[[ProgressUpdate], None] | None = None,
) -> RunSummary:
    """Generate, score, filter and write pairs until each caption has ``recipe.k`` of them.

    Args:
        recipe: a validated recipe (see :func:`pairsynth.recipe.load_recipe`).
        out_dir: where the datasets, manifest and report go. A run killed at any point resumes from
            its last commit when called again with the same recipe.
        overwrite: discard whatever ``out_dir`` holds instead of resuming.
        generators, scorers: already-loaded models per medium (``image``, ``audio``) to use instead of
            the recipe's (tests, notebooks); media not given are loaded from the recipe.
        backend: where the models run (default: this process).
        on_progress: called after every commit.
    """
    job = GenerateJob(recipe, generators=generators, scorers=scorers)
    return run_job(job, out_dir, overwrite=overwrite, backend=backend, on_progress=on_progress)


def recipe_distractors(recipe: Recipe) -> dict[str, list[str]]:
    """Per medium, the texts a pair's own prompt must outrank: the recipe's others, and negatives."""
    retrieval = recipe.accept.retrieval
    if retrieval is None:
        return {}
    distractors = {}
    for name in recipe.media:
        own = [recipe.prompts_for(c)[name] for c in recipe.caption_list] if retrieval.use_recipe_captions else []
        own += endpoint_captions(recipe.interpolate)
        distractors[name] = list(dict.fromkeys(own + retrieval.negatives))
        if len(distractors[name]) < 2:
            logger.warning("the %s retrieval check has no distractors (one caption, no negatives); it passes every pair",
                           name)
    return distractors
