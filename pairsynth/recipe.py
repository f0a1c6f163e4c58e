"""The recipe: what to generate, with which models, and which pairs to accept.

Pydantic models mirror the YAML file one to one (``extra="forbid"``: a misspelt key is an error, not a
silently ignored setting). :func:`load_recipe` turns every validation problem into one line naming
the field, so the CLI can print it as is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from pairsynth.captions import check_caption, check_template, deduplicate, expand_templates, read_captions_file
from pairsynth.config_files import describe_error, read_yaml
from pairsynth.errors import RecipeError
from pairsynth.judges import JudgeSettings
from pairsynth.media import MEDIA, MODALITIES, folder_format, media_of

SchedulerName = Literal["default", "dpm++", "dpm++-sde", "ddim", "euler", "euler-a", "pndm", "unipc"]
ImageFormat = Literal["png", "jpg"]
OutputFormat = Literal["webdataset", "imagefolder", "audiofolder", "tripletfolder", "parquet"]
Modality = Literal["image", "audio", "triplet"]
Medium = Literal["image", "audio"]

FOLDER_FORMATS = {folder_format(modality): modality for modality in MODALITIES}
"""Folder layout → the modality it holds; every other format (webdataset …) holds any."""


class _Strict(BaseModel):
    # strict: ``k: true`` is an error, not k = 1 (floats still take whole numbers: ``guidance_scale: 5``)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GeneratorConfig(_Strict):
    """The text→image or text→audio model and how it samples."""

    model: str | None = Field(None, description="toy-NAME, local:PATH or a hub id; default: the toy zoo's model")
    revision: str | None = None
    steps: int = Field(20, ge=1, le=1000)
    guidance_scale: float = Field(5.0, ge=0.0, le=50.0)
    negative_prompt: str | None = None
    scheduler: SchedulerName = "dpm++"
    height: int | None = Field(None, ge=8, multiple_of=8, description="image only")
    width: int | None = Field(None, ge=8, multiple_of=8, description="image only")
    duration_s: float | None = Field(None, gt=0.0, le=600.0, description="audio only; default: the model's")
    batch_size: int = Field(8, ge=1, le=1024)
    dtype: Literal["fp32", "bf16", "fp16"] | None = Field(
        None, description="null: bf16/fp16 on CUDA, fp32 on the CPU; bf16 runs SD's UNet 2.4x faster on a CPU "
                          "with AMX (benchmarks/architectures.py)")
    stop_at: float | None = Field(None, gt=0.0, lt=1.0, description="stop denoising after this fraction of the "
                                  "steps and decode the predicted x0 (rougher, more abstract samples)")


class InterpolateConfig(_Strict):
    """Samples between two captions: their initial noise slerped and/or their prompt embeddings mixed."""

    between: list[Annotated[tuple[str, str], Field(strict=False)]] = Field(  # YAML gives lists
        min_length=1, description="caption pairs [[a, b], ...]")
    steps: int = Field(5, ge=2, le=101, description="points per path, both endpoints included")
    what: Literal["noise", "prompt", "both"] = "noise"


ScorerConfig = JudgeSettings
"""The recipe's ``scorer:`` section: the judges (CLIP for images, CLAP for audio) and how they run."""


class RetrievalConfig(_Strict):
    """The pair's own caption must outrank distractor captions for its image."""

    max_rank: int = Field(1, ge=1, description="1: the own caption must score highest")
    use_recipe_captions: bool = Field(True, description="the recipe's other captions are distractors")
    negatives: list[str] = Field(default_factory=list, description="extra distractor captions")
    distractors: int | None = Field(
        None, ge=1, description="at most this many distractors per sample (a seeded sample of the others plus "
                                "hard_negatives nearest ones); None, or no more captions than this: all of them")
    hard_negatives: int = Field(0, ge=0, description="of the distractors, the captions nearest the own one "
                                                     "in the judge's text-embedding space")

    @model_validator(mode="after")
    def _check_bound(self) -> RetrievalConfig:
        if self.hard_negatives and self.distractors is None:
            raise ValueError("accept.retrieval.hard_negatives needs accept.retrieval.distractors (the bound)")
        if self.distractors is not None and self.hard_negatives > self.distractors:
            raise ValueError(f"accept.retrieval.hard_negatives ({self.hard_negatives}) cannot exceed "
                             f"accept.retrieval.distractors ({self.distractors})")
        return self


class EarlyRejectionConfig(_Strict):
    """Judge a preview part-way through the denoising; finish only candidates that may still pass.

    A preview fails when its judge score is more than ``score_margin`` below the final minimum, or its
    own caption ranks more than ``rank_slack`` places below ``max_rank``. See :mod:`pairsynth.early_rejection`.
    """

    at: float = Field(0.5, gt=0.0, lt=1.0, description="preview after this fraction of the steps")
    score_margin: float = Field(10.0, ge=0.0, le=100.0, description="how far below the final minimum score a "
                                                                    "preview may be (score units)")
    rank_slack: int = Field(3, ge=0, description="how many places below max_rank a preview's own caption may rank")
    drop: bool = Field(True, description="false: finish every candidate and only record the preview verdict")


class AcceptConfig(_Strict):
    """Which candidates become pairs. Blank, constant and NaN images are always rejected."""

    min_clip_score: float | None = Field(None, ge=0.0, le=100.0, description="CLIPScore units, 100·max(cos,0)")
    min_clap_score: float | None = Field(None, ge=0.0, le=100.0, description="CLAPScore units, 100·max(cos,0)")
    retrieval: RetrievalConfig | None = Field(default_factory=RetrievalConfig)
    top_k: bool = Field(False, description="keep each caption's best-scoring passing candidates")
    pool_factor: float = Field(2.0, ge=1.0, le=64.0, description="with top_k: candidates per needed pair")
    early_rejection: EarlyRejectionConfig | None = Field(None, description="drop hopeless candidates from a "
                                                                           "preview part-way through denoising")

    @model_validator(mode="after")
    def _check_early(self) -> AcceptConfig:
        if self.early_rejection is not None and self.min_clip_score is None and self.min_clap_score is None \
                and self.retrieval is None:
            raise ValueError("accept.early_rejection needs a check to apply to previews: min_clip_score, "
                             "min_clap_score or retrieval")
        return self


class OutputConfig(_Strict):
    """Which dataset formats to write, and how often to commit."""

    formats: list[OutputFormat] | None = Field(None, description="default: webdataset + the modality's folder")
    image_format: ImageFormat = "png"
    audio_format: Literal["flac"] = "flac"
    commit_every: int = Field(256, ge=1, description="candidates per commit; each commit writes one shard")
    report: bool = True


class RayConfig(_Strict):
    """How the Ray Data backend spreads the model stages (``backend: {ray: {...}}``); speed only.

    ``auto`` sizes from the cluster: one generator actor per GPU (``gpus_per_actor`` each), or on a
    CPU-only cluster one per core. ``scorer_actors: 0`` judges inside the generator actors (fused,
    the default: no second pool, no second trip through the object store).
    """

    generator_actors: int | Literal["auto"] = Field("auto", description="generator actors; auto: one per GPU, else per core")
    gpus_per_actor: float | Literal["auto"] = Field("auto", description="GPUs per generator actor; auto: 1 on a GPU cluster, else 0")
    scorer_actors: int = Field(0, ge=0, description="0: judge inside the generator actors; N: a judge pool of N actors")
    gpus_per_scorer: float | Literal["auto"] = Field("auto", description="GPUs per judge actor; auto: as gpus_per_actor")
    cpus_per_actor: int | Literal["auto"] = Field("auto", description="torch threads per actor; auto: the cores split among the actors")

    @model_validator(mode="after")
    def _check_counts(self) -> RayConfig:
        for name, least in (("generator_actors", 1), ("cpus_per_actor", 1), ("gpus_per_actor", 0), ("gpus_per_scorer", 0)):
            value = getattr(self, name)
            if value != "auto" and value < least:
                raise ValueError(f"{name} must be auto or at least {least}, got {value}")
        return self


class BackendConfig(_Strict):
    """Where the model stages run: this process, unless ``ray:`` is given (or ``--backend ray``)."""

    ray: RayConfig | None = None


class Recipe(_Strict):
    """A whole recipe. Exactly one caption source: ``captions``, ``captions_file`` or ``templates``."""

    modality: Modality = "image"
    prompts: dict[Medium, str] | None = Field(
        None, description="triplets: a prompt template per medium, filled from the caption's slots and {caption}")
    captions: list[str] | None = None
    captions_file: Path | None = Field(None, strict=False)  # YAML gives text
    templates: list[str] | None = None
    labels: list[str] | None = Field(None, description="shorthand for slots: {label: [...]}")
    slots: dict[str, list[str]] | None = None
    k: int = Field(4, ge=1, le=100_000, description="accepted pairs wanted per caption")
    max_attempts: int | None = Field(None, ge=1, description="candidates per caption at most; default 4·k")
    seed: int = Field(0, ge=0, lt=2**63)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    generators: dict[Medium, GeneratorConfig] | None = Field(None, description="triplets: one generator per medium")
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    accept: AcceptConfig = Field(default_factory=AcceptConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    concepts: list[Annotated[Path, Field(strict=False)]] | None = Field(None, description="concept folders (pairsynth learn-concept) loaded into the generator")
    interpolate: InterpolateConfig | None = None
    backend: BackendConfig = Field(default_factory=BackendConfig, description="speed only: not in the fingerprint")

    _captions: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)  # caption -> its slot values
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _expand_captions(self, info: Any) -> Recipe:
        self._check_modality_settings()
        base = Path((info.context or {}).get("base_dir", "."))
        specs = self._read_caption_source(base)
        values = dict(reversed(specs))  # a repeated caption keeps its first slot values
        self._captions = {caption: values[caption] for caption in deduplicate([c for c, _ in specs])}
        self._check_prompts()
        self._base = base
        for index, folder in enumerate(self.concepts or []):
            if not (self.concept_folder(index) / "concept.json").is_file():
                raise ValueError(f"concepts[{index}]: {folder} is not a concept folder (no concept.json); "
                                 "make one with pairsynth learn-concept")
        return self

    def concept_folder(self, index: int) -> Path:
        """A concept folder, relative paths read from the recipe's folder."""
        folder = (self.concepts or [])[index]
        return folder if folder.is_absolute() else self._base / folder

    @property
    def concept_folders(self) -> list[Path]:
        return [self.concept_folder(index) for index in range(len(self.concepts or []))]

    def _check_modality_settings(self) -> None:
        if self.modality == "triplet":
            if set(self.generators or {}) != {"image", "audio"}:
                raise ValueError("a triplet recipe needs generators: {image: {...}, audio: {...}}")
            if "generator" in self.model_fields_set:
                raise ValueError("generator: triplet recipes use generators.image and generators.audio instead")
        elif self.generators is not None or self.prompts is not None:
            raise ValueError(f"generators and prompts are for triplet recipes, not modality {self.modality!r}")
        for medium, config in self.generator_configs.items():
            others = {name for m in MEDIA.values() if m.name != medium for name in m.settings}
            for name in sorted(others - set(MEDIA[medium].settings)):
                if getattr(config, name) is not None:
                    where = "generator" if self.modality != "triplet" else f"generators.{medium}"
                    raise ValueError(f"{where}.{name} does not apply to {medium}")
        for medium, config in self.generator_configs.items():
            if config.dtype == "fp16" and self.device == "cpu":
                where = "generator" if self.modality != "triplet" else f"generators.{medium}"
                raise ValueError(f"{where}.dtype fp16 has no fast CPU kernels and device is cpu; use fp32 or bf16")
        if self.accept.early_rejection is not None:
            for medium, config in self.generator_configs.items():
                if config.stop_at is not None:
                    where = "generator" if self.modality != "triplet" else f"generators.{medium}"
                    raise ValueError(f"accept.early_rejection previews samples part-way, which {where}.stop_at "
                                     "(a sample that stops early) leaves no room for: use one of the two")
        for name in self.output_formats:
            if FOLDER_FORMATS.get(name, self.modality) != self.modality:
                raise ValueError(f"output.formats: {name} holds {FOLDER_FORMATS[name]}s, but the modality is {self.modality!r}")

    def _check_prompts(self) -> None:
        slots = set().union(*self._captions.values()) if self._captions else set()
        for medium, template in (self.prompts or {}).items():
            for name in check_template(template, f"prompts.{medium}"):
                if name != "caption" and not all(name in values for values in self._captions.values()):
                    raise ValueError(f"prompts.{medium} uses {{{name}}}, but the caption slots are: "
                                     f"{', '.join(sorted(slots | {'caption'}))}")

    @property
    def media(self) -> list[str]:
        """The media each sample has: ``["image"]``, ``["audio"]`` or both for triplets."""
        return media_of(self.modality)

    @property
    def generator_configs(self) -> dict[str, GeneratorConfig]:
        """One generator configuration per medium."""
        if self.modality == "triplet":
            return dict(self.generators or {})
        return {self.modality: self.generator}

    def generator_model(self, medium: str | None = None) -> str:
        """A medium's generator model reference (the toy zoo's when not given)."""
        medium = medium or self.media[0]
        return self.generator_configs[medium].model or MEDIA[medium].default_generator

    def prompts_for(self, caption: str) -> dict[str, str]:
        """Each medium's prompt for a caption: its template filled with the caption's slots."""
        values = self._captions[caption]
        return {medium: (self.prompts or {}).get(medium, "{caption}").format(caption=caption, **values)
                for medium in self.media}

    @property
    def output_formats(self) -> list[str]:
        return self.output.formats if self.output.formats is not None else ["webdataset", folder_format(self.modality)]

    def _read_caption_source(self, base: Path) -> list[tuple[str, dict[str, str]]]:
        sources = [name for name in ("captions", "captions_file", "templates") if getattr(self, name) is not None]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one caption source: captions, captions_file or templates "
                f"(got {', '.join(sources) or 'none'})"
            )
        if (self.labels is not None or self.slots is not None) and self.templates is None:
            raise ValueError("labels and slots fill templates; add templates: [\"a photo of a {label}\"]")
        if self.captions is not None:
            if not self.captions:
                raise ValueError("captions: the list is empty")
            return [(check_caption(text, f"captions[{index}]"), {}) for index, text in enumerate(self.captions)]
        if self.captions_file is not None:
            path = self.captions_file if self.captions_file.is_absolute() else base / self.captions_file
            return [(caption, {}) for caption in read_captions_file(path)]
        slots = {**(self.slots or {}), **({"label": self.labels} if self.labels is not None else {})}
        if not self.templates:
            raise ValueError("templates: the list is empty")
        for name, values in slots.items():
            if not values:
                raise ValueError(f"slots.{name}: the list of values is empty")
        expanded = expand_templates(self.templates, slots)
        return [(check_caption(text, f"templates (expanded caption {index})"), values)
                for index, (text, values) in enumerate(expanded)]

    @property
    def caption_list(self) -> list[str]:
        """The recipe's captions, expanded, checked and without repeats."""
        return list(self._captions)


    @property
    def attempts_per_caption(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 4 * self.k

    def fingerprint(self) -> str:
        """A hash of everything that decides which pairs a run produces.

        Batch sizes, device, commit size and backend are left out: they change speed, not outputs, so a
        run may be resumed with different ones.
        """
        data = self.model_dump(mode="json", exclude={"device": True, "captions_file": True, "backend": True,
                                                     "generator": {"batch_size"}, "scorer": {"batch_size"},
                                                     "generators": {medium: {"batch_size"} for medium in MEDIA},
                                                     "output": {"commit_every"}})
        if (data.get("accept") or {}).get("early_rejection", 0) is None:  # unset: hashed as before it existed
            del data["accept"]["early_rejection"]
        retrieval = (data.get("accept") or {}).get("retrieval")
        if retrieval and retrieval.get("distractors") is None:  # unbounded: hash as before these settings existed
            retrieval.pop("distractors", None)
            retrieval.pop("hard_negatives", None)
        data["captions"] = self.caption_list
        for name in ("concepts", "interpolate"):  # unset newer keys leave older recipes' fingerprints as they were
            if data[name] is None:
                del data[name]
        for config in [data["generator"], *(data["generators"] or {}).values()]:
            for name in ("stop_at", "dtype"):  # unset: hashed as before these settings existed
                if config.get(name) is None:
                    config.pop(name, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read and validate a YAML recipe; every problem raises :class:`RecipeError`, one line each.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings (the CLI's ``--set``) applied before validation; see
            :mod:`pairsynth.overrides`.
    """
    path = Path(path)
    data = read_yaml(path, "recipe")
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys (captions:, k:, generator: …)")
    source = str(path)
    if overrides:
        from pairsynth.overrides import apply_overrides

        data = apply_overrides(data, overrides)
        source = f"{path} with --set {' --set '.join(overrides)}"
    return recipe_from_dict(data, base_dir=path.parent, source=source)


def recipe_from_dict(data: dict[str, Any], *, base_dir: str | Path = ".", source: str = "recipe") -> Recipe:
    """Validate a recipe given as a dict (the Python API's way in)."""
    try:
        return Recipe.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as err:
        raise RecipeError("\n".join(describe_error(error, source) for error in err.errors())) from None

