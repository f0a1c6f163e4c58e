"""Recipe → dataset: the whole flow of ``pairsynth generate``, top to bottom, in one function."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pairsynth.alignment.acceptance import AcceptanceRule
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.checks import check_generate
from pairsynth.output_dir import OutputDir, disk_errors
from pairsynth.recipe import Recipe
from pairsynth.stages import (CaptionState, Generator, Plan, StageTimes, accept_candidates, generate_candidates,
                              plan_chunk, score_candidates, write_candidates)
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


@dataclass
class RunSummary:
    """What a run produced, and which captions fell short of ``k``."""

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
        """Captions that used their whole attempt budget without reaching ``k`` pairs."""
        return [state for state in self.captions if state.accepted < self.k]


def generate_dataset(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    generators: Mapping[str, Generator] | None = None,
    scorers: Mapping[str, EmbeddingScorer] | None = None,
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
        on_progress: called after every commit.
    """
    started = time.perf_counter()
    # 1. Check inputs before any model loads: the captions were expanded and checked by the recipe.
    check_generate(recipe, out_dir, generators=generators, scorers=scorers)
    min_scores = {"clip": recipe.accept.min_clip_score, "clap": recipe.accept.min_clap_score}
    rule = AcceptanceRule({judge: value for judge, value in min_scores.items() if value is not None},
                          recipe.accept.retrieval.max_rank if recipe.accept.retrieval else None,
                          recipe.accept.top_k)
    distractors = _distractors(recipe)
    batch_sizes = {medium: config.batch_size for medium, config in recipe.generator_configs.items()}
    plan = Plan(recipe.k, recipe.attempts_per_caption, recipe.seed, recipe.accept.top_k,
                recipe.accept.pool_factor, recipe.output.commit_every)

    times = StageTimes()
    output = OutputDir(out_dir)
    with output.locked():
        # 2. Return the output directory to its last commit: drop a killed run's unfinished part.
        progress = output.load_progress(recipe.fingerprint(), overwrite=overwrite)
        manifest = ManifestWriter(output.root)
        writers = dataset_writers(output.root, recipe.output_formats, image_format=recipe.output.image_format,
                                  audio_format=recipe.output.audio_format)
        output.restore(progress, [manifest, *writers])
        states = _caption_states(recipe, manifest.rows())
        resumed_parts = progress.parts
        if resumed_parts:
            logger.info("resuming %s after %d committed parts", output.root, resumed_parts)

        # 3. Load the models (skipped entirely when there is nothing left to do).
        if plan_chunk(list(states.values()), plan):
            with times.timing("load"):
                generators = {m: (generators or {}).get(m) or load_generator(recipe, m) for m in recipe.media}
                scorers = {m: (scorers or {}).get(m) or load_scorer(recipe, m) for m in recipe.media}

        # 4. plan → generate → score → accept → write → commit, one chunk at a time.
        while conditions := plan_chunk(list(states.values()), plan):
            with times.timing("generate"):
                candidates = generate_candidates(generators, conditions, batch_sizes)
            with times.timing("score"):
                rejections = score_candidates(scorers, candidates, distractors)
                accept_candidates(candidates, rejections, states, rule, recipe.k)
            with times.timing("write"):
                with disk_errors(output.root):
                    write_candidates(candidates, manifest, writers)
                output.commit(progress, [manifest, *writers])
            if on_progress is not None:
                on_progress(ProgressUpdate.of(states.values(), recipe.k))

        # 5. Finish: mark the run complete, report the captions that never reached k.
        output.finish(progress, [manifest, *writers])
        summary = RunSummary(output.root, recipe.k, list(states.values()), 0.0, resumed_parts, _shards(writers), times)
        for state in summary.shortfall:
            logger.warning("caption %r reached %d of %d pairs in %d attempts", state.caption,
                           state.accepted, recipe.k, state.attempts)
        if recipe.output.report:  # the QA report of `pairsynth score`, from the manifest's scores
            from pairsynth.score import write_run_report

            with times.timing("report"):
                write_run_report(output.root, manifest.rows(), summary, min_scores)
        summary.elapsed_s = time.perf_counter() - started
        return summary


def load_generator(recipe: Recipe, medium: str) -> Generator:
    """The recipe's text→image or text→audio adapter, loaded."""
    g = recipe.generator_configs[medium]
    if medium == "image":
        from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

        sampling = ImageSampling(g.steps, g.guidance_scale, g.negative_prompt, g.scheduler, g.height, g.width)
        return TextToImage.from_pretrained(recipe.generator_model(medium), revision=g.revision, sampling=sampling,
                                           device=recipe.device)
    from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio

    sampling = AudioSampling(g.steps, g.guidance_scale, g.negative_prompt, g.scheduler, g.duration_s)
    return TextToAudio.from_pretrained(recipe.generator_model(medium), revision=g.revision, sampling=sampling,
                                       device=recipe.device)


def load_scorer(recipe: Recipe, medium: str) -> EmbeddingScorer:
    """The judge of a medium: CLIP for images, CLAP for audio."""
    s = recipe.scorer
    if medium == "image":
        from pairsynth.alignment.clip_scorer import ClipScorer

        return ClipScorer.from_pretrained(s.clip, pretrained=s.pretrained, device=recipe.device,
                                          batch_size=s.batch_size, precision=s.precision)
    from pairsynth.alignment.clap_scorer import ClapScorer

    return ClapScorer.from_pretrained(s.clap, device=recipe.device, batch_size=s.batch_size, precision=s.precision)


def _distractors(recipe: Recipe) -> dict[str, list[str]]:
    """Per medium, the texts a pair's own prompt must outrank: the recipe's others, and negatives."""
    retrieval = recipe.accept.retrieval
    if retrieval is None:
        return {}
    distractors = {}
    for medium in recipe.media:
        own = [recipe.prompts_for(c)[medium] for c in recipe.caption_list] if retrieval.use_recipe_captions else []
        distractors[medium] = list(dict.fromkeys(own + retrieval.negatives))
        if len(distractors[medium]) < 2:
            logger.warning("the %s retrieval check has no distractors (one caption, no negatives); it passes every pair",
                           medium)
    return distractors


def _caption_states(recipe: Recipe, rows: list[dict]) -> dict[str, CaptionState]:
    """Each caption's progress, counted from the committed manifest."""
    prompts = (lambda c: recipe.prompts_for(c)) if recipe.modality == "triplet" else (lambda c: {})
    states = {c: CaptionState(c, index, prompts=prompts(c)) for index, c in enumerate(recipe.caption_list)}
    for row in rows:
        state = states[row["caption"]]
        state.attempts += 1
        state.accepted += bool(row["accepted"])
    return states


def _shards(writers: list[PairWriter]) -> list[Path]:
    return [path for writer in writers if isinstance(writer, WebDatasetWriter) for path in writer.shard_paths]
