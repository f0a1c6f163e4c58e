"""Existing pairs → variations: the whole flow of ``pairsynth vary``, top to bottom.

Each source pair gets up to ``per_pair`` variations (SDEdit: noise the image, or the clip's mel
latent, to ``strength``, then denoise guided by the pair's caption). A variation is kept only when it still matches its caption
(the same judge checks as ``generate``) *and* its similarity to its source lies inside a band: not a
near-copy (worthless as new data), not drifted (no longer the same content).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.candidates import Candidate, Condition
from pairsynth.captions import check_template
from pairsynth.config_files import describe_error
from pairsynth.checks import check_vary, check_vary_models
from pairsynth.errors import DatasetError, PairsynthError, RecipeError
from pairsynth.judges import JudgeSettings, Precision, load_judge
from pairsynth.media import MODALITIES, medium
from pairsynth.readers import PairRecord, ReadError, read_pairs, warn_unreadable
from pairsynth.run import Backend, OutputSpec, ProgressUpdate, RunSummary, run_job
from pairsynth.stages import (CaptionState, Plan, StageTimes, Varier, generate_candidates, judge_input,
                              score_candidates)


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
    clip: str = Field(JudgeSettings().clip, description="the image judge")
    pretrained: str | None = Field(None, description="an open_clip tag or checkpoint, for a bare CLIP ARCH")
    clap: str = Field(JudgeSettings().clap, description="the audio judge")
    judge_batch_size: StrictInt = Field(64, ge=1, le=4096, description="samples per judge forward pass")
    precision: Precision = "fp32"
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
    concepts: list[Path] = Field(default_factory=list, description="concept folders (pairsynth learn-concept) to load")

    @model_validator(mode="after")
    def _check(self) -> VaryConfig:
        low, high = self.similarity_band
        if not -1.0 <= low < high <= 1.0:
            raise ValueError(f"--band LOW HIGH must be two cosines, low < high, in [-1, 1]; got {self.similarity_band}")
        if "caption" not in check_template(self.caption_template, "--caption-template", allowed={"caption"}):
            raise ValueError(f"--caption-template {self.caption_template!r} must contain {{caption}}, the source's caption")
        problem = denoising_problem(self.steps, self.strength)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def judges(self) -> JudgeSettings:
        """The judge options, as every command takes them."""
        return JudgeSettings(clip=self.clip, pretrained=self.pretrained, clap=self.clap,
                             batch_size=self.judge_batch_size, precision=self.precision)

    @property
    def attempts(self) -> int:
        return self.max_attempts or 3 * self.per_pair

    def fingerprint(self, sources: list[PairRecord]) -> str:
        # allow_outside_root changes which sources are read, and the sources are in the fingerprint already
        data = self.model_dump(mode="json", exclude={"batch_size", "judge_batch_size", "device", "commit_every",
                                                     "allow_outside_root"})
        for name, default in (("pretrained", None), ("precision", "fp32"), ("concepts", [])):  # keep older outputs resumable
            if data[name] == default:
                del data[name]
        data["sources"] = [(record.key, record.caption) for record in sources]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def denoising_problem(steps: int, strength: float) -> str | None:
    """Why ``steps`` at SDEdit ``strength`` cannot vary anything, or ``None``: diffusers denoises only the
    last ``int(steps·strength)`` steps of the schedule, and none is no variation at all."""
    if int(steps * strength) >= 1:
        return None
    needed = math.ceil(1 / strength - 1e-9)
    return (f"steps {steps} × strength {strength:g} leaves no denoising step; "
            f"use steps ≥ {needed} or strength ≥ {1 / steps:g}")


def vary_config(**values: Any) -> VaryConfig:
    """Build a :class:`VaryConfig`, turning validation problems into one-line errors."""
    try:
        return VaryConfig(**values)
    except ValidationError as err:  # named as the CLI's flags: --per-pair, not per_pair
        flags = [[f"--{str(part).replace('_', '-')}" for part in error["loc"][:1]] for error in err.errors()]
        raise RecipeError("\n".join(describe_error(error, "vary", location=flag)
                                    for error, flag in zip(err.errors(), flags))) from None


class VaryJob:
    """Variations as a job: each readable source pair is a unit, ``per_pair`` accepted variations each.

    Args:
        source: a dataset in any layout :func:`pairsynth.readers.read_pairs` reads.
        config: strength, counts, models, band …
        varier, scorer: already-loaded models to use instead of the config's.
    """

    def __init__(self, source: str | Path, config: VaryConfig, *, varier: Varier | None = None,
                 scorer: EmbeddingScorer | None = None) -> None:
        self.source, self.config = source, config
        self.varier, self.scorer = varier, scorer
        self._given = (varier, scorer)
        self.k = config.per_pair
        self.batch_size = config.batch_size
        self.plan = Plan(k=config.per_pair, budget=config.attempts, seed=config.seed, chunk_size=config.commit_every)
        self.source_features: dict[str, np.ndarray] = {}

    def check(self, out_dir: Path) -> None:
        """The output folder, the models and judges; then the sources, whose medium picks the model."""
        config = self.config
        check_vary(config, self.source, out_dir, varier=self.varier, scorer=self.scorer)
        self.records, self.unreadable = _read_sources(self.source, config.layout, config.allow_outside_root)
        self.modality = _single_modality(self.records)
        check_vary_models(config, self.modality, model_loaded=self.varier is not None)
        self.medium = medium(self.modality)
        self.captions = {r.key: config.caption_template.format(caption=r.caption) for r in self.records}
        self.media = {r.key: self.medium.record_input(r) for r in self.records}
        self.paths = {r.key: r.source for r in self.records}
        judge = self.medium.judge
        self.rule = AcceptanceRule({judge: config.min_score} if config.min_score is not None else {}, config.max_rank)
        self.output = OutputSpec(formats=["webdataset", self.medium.folder], image_format=config.image_format,
                                 generation_device=config.device)
        self.distractors = {self.modality: list(dict.fromkeys(self.captions.values()))}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for workers) without the models :meth:`load` made: each worker loads its own."""
        state = dict(self.__dict__)
        (state["varier"], state["scorer"]), state["source_features"] = self._given, {}
        return state

    def fingerprint(self) -> str:
        return self.config.fingerprint(self.records)

    def units(self) -> dict[str, CaptionState]:
        return {r.key: CaptionState(caption=self.captions[r.key], index=index, source=r.key) for index, r in enumerate(self.records)}

    def unit_of(self, row: Mapping[str, Any]) -> str | None:
        return None if row["reason"] == "unreadable_input" else row["source"]["key"]

    def report_run(self, summary: RunSummary) -> dict[str, Any]:
        return {}

    def first_rows(self) -> list[dict[str, Any]]:
        """The inputs that could not be read, recorded once with their reasons."""
        return [{"key": error.key or hashlib.sha256(error.source.encode()).hexdigest()[:20], "caption": None,
                 "modality": self.modality, "source": {"path": error.source}, "scores": {}, "accepted": False,
                 "reason": "unreadable_input", "detail": error.reason, "error": error.error}
                for error in self.unreadable]

    def load(self) -> None:
        config = self.config
        if self.varier is None:
            self.varier = self.medium.load_varier(config.model or self.medium.default_generator, config, config.device)
            self.varier.load_concepts(config.concepts)
        if self.scorer is None:
            self.scorer = load_judge(self.modality, config.judges, device=config.device)
        self.source_features = dict(zip(self.media, self.scorer.embed_samples(list(self.media.values()))))

    def make(self, conditions: Sequence[Condition], times: StageTimes) -> list[Candidate]:
        candidates = generate_candidates({self.modality: self.varier}, conditions, self.config.batch_size,
                                         sources=self.media)
        for candidate in candidates:
            candidate.lineage = {"key": candidate.condition.source, "path": self.paths[candidate.condition.source]}
        return candidates

    def judge(self, candidates: Sequence[Candidate], times: StageTimes) -> list[Decision | None]:
        rejections = score_candidates({self.modality: self.scorer}, candidates, self.distractors)
        return _check_band(self.scorer, self.modality, candidates, rejections, self.source_features,
                           self.config.similarity_band)


def vary_dataset(
    source: str | Path,
    out_dir: str | Path,
    config: VaryConfig,
    *,
    overwrite: bool = False,
    varier: Varier | None = None,
    scorer: EmbeddingScorer | None = None,
    backend: Backend | None = None,
    on_progress: Callable[[ProgressUpdate], None] | None = None,
) -> RunSummary:
    """Make and filter variations of every pair in ``source``; write them like ``generate`` does.

    Args:
        source: a dataset in any layout :func:`pairsynth.readers.read_pairs` reads.
        out_dir: the output; a killed run resumes from its last commit.
        config: strength, counts, models, band …
        overwrite: discard what ``out_dir`` holds instead of resuming.
        varier, scorer: already-loaded models to use (tests, notebooks).
        backend: where the models run (default: this process).
        on_progress: called after every commit.
    """
    job = VaryJob(source, config, varier=varier, scorer=scorer)
    return run_job(job, out_dir, overwrite=overwrite, backend=backend, on_progress=on_progress)


def _read_sources(source: str | Path, layout: str, allow_outside_root: bool) -> tuple[list[PairRecord], list[ReadError]]:
    records: list[PairRecord] = []
    unreadable: list[ReadError] = []
    for item in read_pairs(source, layout=layout, allow_outside_root=allow_outside_root):
        (unreadable if isinstance(item, ReadError) else records).append(item)
    if not records:
        first = f"; the first: {unreadable[0].reason}" if unreadable else ""
        raise DatasetError(f"{source}: no readable pairs ({len(unreadable)} unreadable{first})")
    warn_unreadable(source, unreadable)  # each is also a manifest row (reason unreadable_input)
    return records, unreadable


def _single_modality(records: list[PairRecord]) -> str:
    kinds = {record.modality for record in records}
    if len(kinds) != 1 or len(MODALITIES[next(iter(kinds))]) != 1:
        raise PairsynthError("pairsynth vary takes a dataset of image pairs or of audio pairs; this one holds "
                             f"{', '.join(sorted(kinds))}")
    return kinds.pop()


def _check_band(scorer: EmbeddingScorer, modality: str, candidates: Sequence[Candidate],
                rejections: list[Decision | None], source_features: Mapping[str, np.ndarray],
                band: tuple[float, float]) -> list[Decision | None]:
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
