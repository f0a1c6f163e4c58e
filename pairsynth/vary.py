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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pairsynth.alignment.acceptance import AcceptanceRule, Decision
from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.candidates import Candidate, Condition
from pairsynth.config_files import describe_error
from pairsynth.errors import PairsynthError, RecipeError
from pairsynth.judges import JudgeSettings, Precision, load_judge
from pairsynth.media import MODALITIES, medium
from pairsynth.readers import PairRecord, ReadError, read_pairs
from pairsynth.run import Backend, OutputSpec, ProgressUpdate, RunSummary, run_job
from pairsynth.stages import (CaptionState, Plan, StageTimes, Varier, generate_candidates, judge_input,
                              score_candidates)

logger = logging.getLogger(__name__)


class VaryConfig(BaseModel):
    """Everything ``pairsynth vary`` takes; the CLI's flags fill it, a script may build it directly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_pair: int = Field(4, ge=1, le=10_000, description="accepted variations wanted per source pair")
    max_attempts: int | None = Field(None, ge=1, description="variations tried per source at most; default 3·per_pair")
    strength: float = Field(0.35, gt=0.0, le=1.0, description="SDEdit strength: 0 keeps the source, 1 ignores it")
    caption_template: str = Field("{caption}", description="the prompt and new caption; {caption} is the source's")
    model: str | None = Field(None, description="the variation model; default: the toy zoo's")
    steps: int = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(5.0, ge=0.0, le=50.0)
    scheduler: str = Field("default", description="default keeps the model's own scheduler")
    negative_prompt: str | None = None
    clip: str = Field(JudgeSettings().clip, description="the image judge")
    pretrained: str | None = Field(None, description="an open_clip tag or checkpoint, for a bare CLIP ARCH")
    clap: str = Field(JudgeSettings().clap, description="the audio judge")
    judge_batch_size: int = Field(64, ge=1, le=4096, description="samples per judge forward pass")
    precision: Precision = "fp32"
    min_score: float | None = Field(None, ge=0.0, le=100.0, description="the judge's 100·max(cos,0) threshold")
    max_rank: int | None = Field(1, ge=1, description="retrieval among the dataset's other captions; None: off")
    similarity_band: tuple[float, float] = Field((0.80, 0.995), description="source↔variation cosine: [near-copy, drifted)")
    seed: int = Field(0, ge=0, lt=2**63)
    batch_size: int = Field(8, ge=1, le=1024)
    device: str = "auto"
    layout: Literal["auto", "pairsynth", "folder", "webdataset", "sidecar"] = "auto"
    image_format: Literal["png", "jpg"] = "png"
    commit_every: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> VaryConfig:
        low, high = self.similarity_band
        if not -1.0 <= low < high <= 1.0:
            raise ValueError(f"similarity_band must be two cosines low < high in [-1, 1], got {self.similarity_band}")
        if "{caption}" not in self.caption_template:
            raise ValueError("caption_template must contain {caption}")
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
        data = self.model_dump(mode="json", exclude={"batch_size", "judge_batch_size", "device", "commit_every"})
        for name, default in (("pretrained", None), ("precision", "fp32")):  # keep older outputs resumable
            if data[name] == default:
                del data[name]
        data["sources"] = [(record.key, record.caption) for record in sources]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def vary_config(**values: Any) -> VaryConfig:
    """Build a :class:`VaryConfig`, turning validation problems into one-line errors."""
    try:
        return VaryConfig(**values)
    except ValidationError as err:
        raise RecipeError("\n".join(describe_error(error, "vary") for error in err.errors())) from None


class VaryJob:
    """Variations as a job: each readable source pair is a unit, ``per_pair`` accepted variations each.

    Args:
        source: a dataset in any layout :func:`pairsynth.readers.read_pairs` reads.
        config: strength, counts, models, band …
        varier, scorer: already-loaded models to use instead of the config's.
    """

    def __init__(self, source: str | Path, config: VaryConfig, *, varier: Varier | None = None,
                 scorer: EmbeddingScorer | None = None) -> None:
        self.config = config
        self.records, self.unreadable = _read_sources(source, config.layout)
        self.modality = _single_modality(self.records)
        self.medium = medium(self.modality)
        self.varier, self.scorer = varier, scorer
        self._given = (varier, scorer)
        self.captions = {r.key: config.caption_template.format(caption=r.caption) for r in self.records}
        self.media = {r.key: self.medium.record_input(r) for r in self.records}
        self.paths = {r.key: r.source for r in self.records}
        self.k = config.per_pair
        self.batch_size = config.batch_size
        judge = self.medium.judge
        self.rule = AcceptanceRule({judge: config.min_score} if config.min_score is not None else {}, config.max_rank)
        self.plan = Plan(config.per_pair, config.attempts, config.seed, chunk_size=config.commit_every)
        self.output = OutputSpec(formats=["webdataset", self.medium.folder], image_format=config.image_format)
        self.distractors = {self.modality: list(dict.fromkeys(self.captions.values()))}
        self.source_features: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for workers) without the models :meth:`load` made: each worker loads its own."""
        state = dict(self.__dict__)
        (state["varier"], state["scorer"]), state["source_features"] = self._given, {}
        return state

    def check(self) -> None:
        pass  # the config validated itself; the sources were read in __init__

    def fingerprint(self) -> str:
        return self.config.fingerprint(self.records)

    def units(self) -> dict[str, CaptionState]:
        return {r.key: CaptionState(self.captions[r.key], index, source=r.key) for index, r in enumerate(self.records)}

    def unit_of(self, row: Mapping[str, Any]) -> str | None:
        return None if row["reason"] == "unreadable_input" else row["source"]["key"]

    def first_rows(self) -> list[dict[str, Any]]:
        """The inputs that could not be read, recorded once with their reasons."""
        return [{"key": error.key or hashlib.sha256(error.source.encode()).hexdigest()[:20], "caption": None,
                 "modality": self.modality, "source": {"path": error.source}, "scores": {}, "accepted": False,
                 "reason": "unreadable_input", "detail": error.reason} for error in self.unreadable]

    def load(self) -> None:
        config = self.config
        if self.varier is None:
            self.varier = self.medium.load_varier(config.model or self.medium.default_generator, config, config.device)
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


def _read_sources(source: str | Path, layout: str) -> tuple[list[PairRecord], list[ReadError]]:
    records: list[PairRecord] = []
    unreadable: list[ReadError] = []
    for item in read_pairs(source, layout=layout):
        (unreadable if isinstance(item, ReadError) else records).append(item)
    if not records:
        raise PairsynthError(f"{source}: no readable pairs ({len(unreadable)} unreadable)")
    for error in unreadable:
        logger.warning("skipping unreadable input %s: %s", error.source, error.reason)
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
