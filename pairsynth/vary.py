"""Existing pairs → variations: the whole flow of ``pairsynth vary``, top to bottom.

Each source pair gets up to ``per_pair`` variations (SDEdit: noise the image, or the clip's mel
latent, to ``strength``, then denoise guided by the pair's caption). A variation is kept only when it still matches its caption
(the same judge checks as ``generate``) *and* its similarity to its source lies inside a band: not a
near-copy (worthless as new data), not drifted (no longer the same content).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.candidates import Candidate
from pairsynth.captions import check_template
from pairsynth.config_files import describe_error
from pairsynth.checks import check_vary, check_vary_models
from pairsynth.errors import DatasetError, PairsynthError, RecipeError
from pairsynth.generate import ProgressUpdate, RunSummary
from pairsynth.output_dir import OutputDir, disk_errors
from pairsynth.readers import PairRecord, ReadError, read_pairs
from pairsynth.stages import (CaptionState, Plan, StageTimes, accept_candidates, generate_candidates, judge_input,
                              plan_chunk, score_candidates, write_candidates)
from pairsynth.writers import ManifestWriter, dataset_writers

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {"image": "toy-shapes", "audio": "toy-sounds"}


class VaryConfig(BaseModel):
    """Everything ``pairsynth vary`` takes; the CLI's flags fill it, a script may build it directly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_pair: StrictInt = Field(4, ge=1, le=10_000, description="accepted variations wanted per source pair")
    max_attempts: StrictInt | None = Field(None, ge=1, description="variations tried per source at most; default 3·per_pair")
    strength: float = Field(0.35, gt=0.0, le=1.0, description="SDEdit strength: 0 keeps the source, 1 ignores it")
    caption_template: str = Field("{caption}", description="the prompt and new caption; {caption} is the source's")
    model: str | None = Field(None, description="the variation model; default: the toy zoo's")
    steps: StrictInt = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(5.0, ge=0.0, le=50.0)
    scheduler: str = Field("default", description="default keeps the model's own scheduler")
    negative_prompt: str | None = None
    clip: str = "toy-shapes-clip"
    clap: str = "toy-sounds-clap"
    min_score: float | None = Field(None, ge=0.0, le=100.0, description="the judge's 100·max(cos,0) threshold")
    max_rank: StrictInt | None = Field(1, ge=1, description="retrieval among the dataset's other captions; None: off")
    similarity_band: tuple[float, float] = Field((0.80, 0.995), description="source↔variation cosine: [near-copy, drifted)")
    seed: StrictInt = Field(0, ge=0, lt=2**63)
    batch_size: StrictInt = Field(8, ge=1, le=1024)
    device: str = "auto"
    layout: Literal["auto", "pairsynth", "folder", "webdataset", "sidecar"] = "auto"
    image_format: Literal["png", "jpg"] = "png"
    commit_every: StrictInt = Field(64, ge=1)
    allow_outside_root: bool = Field(False, description="read items a dataset names outside its folder")

    @model_validator(mode="after")
    def _check(self) -> VaryConfig:
        low, high = self.similarity_band
        if not -1.0 <= low < high <= 1.0:
            raise ValueError(f"--band LOW HIGH must be two cosines, low < high, in [-1, 1]; got {self.similarity_band}")
        if "caption" not in check_template(self.caption_template, "--caption-template", allowed={"caption"}):
            raise ValueError(f"--caption-template {self.caption_template!r} must contain {{caption}}, the source's caption")
        if int(self.steps * self.strength) < 1:  # diffusers denoises the last int(steps·strength) of the schedule
            needed = math.ceil(1 / self.strength - 1e-9)
            raise ValueError(f"steps {self.steps} × strength {self.strength:g} leaves no denoising step; "
                             f"use steps ≥ {needed} or strength ≥ {1 / self.steps:g}")
        return self

    @property
    def attempts(self) -> int:
        return self.max_attempts or 3 * self.per_pair

    def fingerprint(self, sources: list[PairRecord]) -> str:
        # allow_outside_root changes which sources are read, and the sources are in the fingerprint already
        data = self.model_dump(mode="json", exclude={"batch_size", "device", "commit_every", "allow_outside_root"})
        data["sources"] = [(record.key, record.caption) for record in sources]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def vary_config(**values: Any) -> VaryConfig:
    """Build a :class:`VaryConfig`, turning validation problems into one-line errors."""
    try:
        return VaryConfig(**values)
    except ValidationError as err:  # named as the CLI's flags: --per-pair, not per_pair
        flags = [[f"--{str(part).replace('_', '-')}" for part in error["loc"][:1]] for error in err.errors()]
        raise RecipeError("\n".join(describe_error(error, "vary", location=flag)
                                    for error, flag in zip(err.errors(), flags))) from None


def vary_dataset(
    source: str | Path,
    out_dir: str | Path,
    config: VaryConfig,
    *,
    overwrite: bool = False,
    varier: Any | None = None,
    scorer: EmbeddingScorer | None = None,
    on_progress: Callable[[ProgressUpdate], None] | None = None,
) -> RunSummary:
    """Make and filter variations of every pair in ``source``; write them like ``generate`` does.

    Args:
        source: a dataset in any layout :func:`pairsynth.readers.read_pairs` reads.
        out_dir: the output; a killed run resumes from its last commit.
        config: strength, counts, models, band …
        overwrite: discard what ``out_dir`` holds instead of resuming.
        varier, scorer: already-loaded models to use (tests, notebooks).
        on_progress: called after every commit.
    """
    started = time.perf_counter()
    # 1. Check inputs: read the sources; unreadable ones are kept aside with their reasons.
    check_vary(config, source, out_dir, varier=varier, scorer=scorer)
    records, unreadable = _read_sources(source, config.layout, config.allow_outside_root)
    modality = _single_modality(records)
    check_vary_models(config, modality, model_loaded=varier is not None)
    captions = {r.key: config.caption_template.format(caption=r.caption) for r in records}
    media = {r.key: r.image if modality == "image" else (r.audio, r.sample_rate) for r in records}
    paths = {r.key: r.source for r in records}
    judge = "clip" if modality == "image" else "clap"
    rule = AcceptanceRule({judge: config.min_score} if config.min_score is not None else {}, config.max_rank)
    distractors = {modality: list(dict.fromkeys(captions.values()))}
    plan = Plan(config.per_pair, config.attempts, config.seed, chunk_size=config.commit_every)

    times = StageTimes()
    output = OutputDir(out_dir)
    with output.locked():
        # 2. Return the output directory to its last commit.
        progress = output.load_progress(config.fingerprint(records), overwrite=overwrite)
        resumed_parts = progress.parts
        manifest = ManifestWriter(output.root)
        writers = dataset_writers(output.root, ["webdataset", f"{modality}folder"], image_format=config.image_format)
        output.restore(progress, [manifest, *writers])
        states = _source_states(records, captions, manifest.rows())
        if resumed_parts == 0:  # the first commit records the inputs that could not be read
            for error in unreadable:
                key = error.key or hashlib.sha256(error.source.encode()).hexdigest()[:20]
                manifest.write_row({"key": key, "caption": None, "modality": modality, "source": {"path": error.source},
                                    "scores": {}, "accepted": False, "reason": "unreadable_input", "detail": error.reason,
                                    "error": error.error})

        # 3. Load the models.
        if plan_chunk(list(states.values()), plan):
            with times.timing("load"):
                varier = varier or _load_varier(config, modality)
                scorer = scorer or _load_scorer(config, modality)
            with times.timing("score"):
                source_features = dict(zip(media, scorer.embed_samples(list(media.values()))))  # once per source

        # 4. plan → vary → score → check the band → accept → write → commit.
        while conditions := plan_chunk(list(states.values()), plan):
            with times.timing("generate"):
                candidates = generate_candidates({modality: varier}, conditions, config.batch_size, sources=media)
            for candidate in candidates:
                candidate.lineage = {"key": candidate.condition.source, "path": paths[candidate.condition.source]}
            with times.timing("score"):
                rejections = score_candidates({modality: scorer}, candidates, distractors)
                rejections = _check_band(scorer, modality, candidates, rejections, source_features,
                                         config.similarity_band)
                accept_candidates(candidates, rejections, states, rule, config.per_pair)
            with times.timing("write"):
                with disk_errors(output.root):
                    write_candidates(candidates, manifest, writers)
                output.commit(progress, [manifest, *writers])
            if on_progress is not None:
                on_progress(ProgressUpdate.of(states.values(), config.per_pair))

        # 5. Finish.
        output.finish(progress, [manifest, *writers])
        summary = RunSummary(output.root, config.per_pair, list(states.values()), 0.0, resumed_parts, times=times)
        from pairsynth.score import write_run_report

        with times.timing("report"):
            write_run_report(output.root, manifest.rows(), summary, rule.min_scores)
        summary.elapsed_s = time.perf_counter() - started
        return summary


def _read_sources(source: str | Path, layout: str, allow_outside_root: bool) -> tuple[list[PairRecord], list[ReadError]]:
    records: list[PairRecord] = []
    unreadable: list[ReadError] = []
    for item in read_pairs(source, layout=layout, allow_outside_root=allow_outside_root):
        (unreadable if isinstance(item, ReadError) else records).append(item)
    if not records:
        first = f"; the first: {unreadable[0].reason}" if unreadable else ""
        raise DatasetError(f"{source}: no readable pairs ({len(unreadable)} unreadable{first})")
    for error in unreadable:
        logger.warning("skipping unreadable input %s: %s", error.source, error.reason)
    return records, unreadable


def _single_modality(records: list[PairRecord]) -> str:
    kinds = {record.modality for record in records}
    if len(kinds) != 1 or kinds & {"triplet"}:
        raise PairsynthError("pairsynth vary takes a dataset of image pairs or of audio pairs; this one holds "
                             f"{', '.join(sorted(kinds))}")
    return kinds.pop()


def _source_states(records: list[PairRecord], captions: Mapping[str, str], rows: list[dict]) -> dict[str, CaptionState]:
    states = {r.key: CaptionState(captions[r.key], index, source=r.key) for index, r in enumerate(records)}
    for row in rows:
        if row["reason"] != "unreadable_input":
            state = states[row["source"]["key"]]
            state.attempts += 1
            state.accepted += bool(row["accepted"])
    return states


def _check_band(scorer: EmbeddingScorer, modality: str, candidates: list[Candidate], rejections: list[Decision | None],
                source_features: Mapping[str, np.ndarray], band: tuple[float, float]) -> list[Decision | None]:
    """Reject variations too close to (near-copies) or too far from (drifted) their sources.

    Similarity is the judge's own sample–sample cosine (CLIP image–image, CLAP audio–audio).
    """
    checked = [i for i, rejection in enumerate(rejections) if rejection is None]
    features = scorer.embed_samples([judge_input(candidates[i], modality) for i in checked]) if checked else []
    low, high = band
    result = list(rejections)
    for i, feature in zip(checked, features):
        similarity = float(feature @ source_features[candidates[i].condition.source])
        candidates[i].lineage["similarity"] = round(similarity, 6)
        if similarity >= high:
            result[i] = Decision.reject("near_copy", f"similarity to the source {similarity:.4f} >= {high}")
        elif similarity < low:
            result[i] = Decision.reject("drifted", f"similarity to the source {similarity:.4f} < {low}")
    return result


def _load_varier(config: VaryConfig, modality: str) -> Any:
    model = config.model or DEFAULT_MODELS[modality]
    if modality == "image":
        from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling

        sampling = VariationSampling(config.strength, config.steps, config.guidance_scale, config.negative_prompt,
                                     config.scheduler)
        return ImageToImage.from_pretrained(model, sampling=sampling, device=config.device)
    from pairsynth.modalities.audio_to_audio import AudioToAudio, AudioVariationSampling

    sampling = AudioVariationSampling(config.strength, config.steps, config.guidance_scale, config.negative_prompt,
                                      "default" if config.scheduler == "dpm++" else config.scheduler)
    return AudioToAudio.from_pretrained(model, sampling=sampling, device=config.device)


def _load_scorer(config: VaryConfig, modality: str) -> EmbeddingScorer:
    if modality == "image":
        from pairsynth.alignment.clip_scorer import ClipScorer

        return ClipScorer.from_pretrained(config.clip, device=config.device)
    from pairsynth.alignment.clap_scorer import ClapScorer

    return ClapScorer.from_pretrained(config.clap, device=config.device)
