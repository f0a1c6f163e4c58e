"""What every adapter does the same way: load a diffusers pipeline, seed samples, describe itself."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from pairsynth.modalities.schedulers import make_scheduler
from pairsynth.devices import parse_dtype, resolve_device
from pairsynth.refs import parse_ref

T = TypeVar("T")


class PipelineAdapter:
    """What every adapter holds: a loaded diffusers pipeline, where it came from, and how it samples.

    The sampling's scheduler replaces the pipeline's own, and diffusers' per-step progress bar is
    turned off (the CLI shows one bar for the whole run).
    """

    def __init__(self, pipeline: Any, *, model_id: str, revision: str | None, sampling: Any) -> None:
        self.pipeline = pipeline
        self.model_id = model_id
        self.revision = revision
        self.sampling = sampling
        if sampling.scheduler != "default" and "FlowMatch" in type(pipeline.scheduler).__name__:
            raise ValueError(f"scheduler {sampling.scheduler!r}: {type(pipeline).__name__} is a flow-matching model "
                             f"(SD3, FLUX) that samples with its own {type(pipeline.scheduler).__name__}; "
                             "use scheduler: default")
        pipeline.scheduler = make_scheduler(sampling.scheduler, pipeline.scheduler)
        pipeline.set_progress_bar_config(disable=True)
        self.concepts: list[dict[str, Any]] = []

    def load_concepts(self, folders: Sequence[Any]) -> None:
        """Load learned concept folders (``pairsynth learn-concept``) into the pipeline, and record them."""
        if folders:
            from pairsynth.concepts.loading import load_concepts

            self.concepts += load_concepts(self.pipeline, folders)

    @property
    def concept_provenance(self) -> dict[str, Any]:
        """``{"concepts": [...]}`` once concepts are loaded (token, method, weight hashes), else nothing.

        With LoRA concepts, ``concept_loras: by-token`` says each acted only where its token was asked
        for (:meth:`by_concept`); samples made when every loaded LoRA acted at once lack it.
        """
        if not self.concepts:
            return {}
        from pairsynth.concepts.loading import lora_adapters

        loras = {"concept_loras": "by-token"} if lora_adapters(self.concepts) else {}
        return {"concepts": list(self.concepts), **loras}

    def by_concept(self, prompts: Sequence[str], run: Callable[..., list[T]], /, **batch: Any) -> list[T]:
        """``run(**batch)``, split so each LoRA concept acts on its own token's prompts only: each part
        gets its rows of ``batch``'s lists and tensors (:func:`select_rows`), the rest whole."""
        if not self.concepts:
            return run(**batch)
        from pairsynth.concepts.loading import by_lora_concept

        return by_lora_concept(self.pipeline, self.concepts, prompts, lambda rows: run(**select_rows(batch, rows)))

    @property
    def device(self) -> torch.device:
        return self.pipeline.device


def check_strength(strength: float) -> None:
    """SDEdit strength: 0 would return the source untouched, and above 1 there is nothing to denoise."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")


def load_pipeline(loader: Any, ref: str, *, revision: str | None, device: str, dtype: str | None) -> Any:
    """``loader.from_pretrained`` on the folder or hub id ``ref`` names, moved to the chosen device.

    ``loader`` is a diffusers auto class (``AutoPipelineForText2Image``, ``DiffusionPipeline`` …);
    dtype defaults to half precision on CUDA and fp32 on the CPU.
    """
    torch_device = resolve_device(device)
    kwargs: dict[str, Any] = {"dtype": parse_dtype(dtype, torch_device)}
    if revision is not None:
        kwargs["revision"] = revision
    return loader.from_pretrained(parse_ref(ref).location, **kwargs).to(torch_device)


def seeded_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample: the same sample whatever batch or device it is made in."""
    return [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]


def select_rows(arguments: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """Per-sample pipeline arguments (tensors with a row per sample, lists) for ``rows`` of the batch only."""
    def pick(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.index_select(0, torch.tensor(list(rows), dtype=torch.long, device=value.device))
        if isinstance(value, list):
            return [value[row] for row in rows]
        return value  # None, a scalar, or anything shared by the whole batch

    return {name: pick(value) for name, value in arguments.items()}


def provenance(pipeline: Any, model_id: str, revision: str | None, sampling: Any, **extra: Any) -> dict[str, Any]:
    """What made a sample: model, revision, pipeline and scheduler classes, every sampling setting.

    Recorded with every candidate and hashed into its key, so any change of setting makes new keys.
    """
    settings = dataclasses.asdict(sampling)
    settings["scheduler_name"] = settings.pop("scheduler")
    if settings.get("stop_at", 0) is None:  # unset: recorded only when used, so older keys stay valid
        del settings["stop_at"]
    return {"model": model_id, "revision": revision, "pipeline": type(pipeline).__name__,
            "scheduler": type(pipeline.scheduler).__name__, **settings, **extra,
            "dtype": str(pipeline.dtype).removeprefix("torch.")}


_EMBEDDING_ARGUMENTS = {  # what encode_prompt returns, by tuple length, as the pipeline's call takes it back
    2: ("prompt_embeds", "negative_prompt_embeds"),  # SD 1.x/2.x, SD-Turbo
    4: ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"),  # SDXL, SD3
}
_FLUX_ARGUMENTS = ("prompt_embeds", "pooled_prompt_embeds")  # FLUX's encode_prompt also returns text_ids, rebuilt by __call__


def prompt_arguments(pipeline: Any, prompts: Sequence[str], negative_prompt: str | None,
                     guidance_scale: float) -> dict[str, Any]:
    """The prompts of one batch as pipeline arguments, each distinct prompt run through the text encoder once.

    A batch holds several samples of each caption (``k`` per caption, oversampled), and a bare pipeline
    call encodes every one of them, and the negative prompt once per sample. Here the pipeline's own
    ``encode_prompt`` runs on the distinct prompts only, and its embeddings go back in as
    ``prompt_embeds``/``negative_prompt_embeds`` (and SDXL's pooled ones), one row per sample.
    SD3 takes the same route (CLIP pair + T5, padded to fixed lengths). FLUX, whose ``encode_prompt``
    has no guidance argument, gets its T5 and pooled CLIP embeddings the same way (see
    :func:`_flux_arguments`). Pipelines whose ``encode_prompt`` works differently (or that have
    none) get the prompt strings.
    """
    as_strings = {"prompt": list(prompts),
                  "negative_prompt": [negative_prompt] * len(prompts) if negative_prompt else None}
    flux = _encodes_like_flux(pipeline)
    if not flux and not _encodes_prompts_separately(pipeline):
        return as_strings
    distinct = list(dict.fromkeys(prompts))
    device = getattr(pipeline, "_execution_device", pipeline.device)  # where __call__ encodes, offloading included
    if flux:
        return _flux_arguments(pipeline, prompts, distinct, device, negative_prompt)
    # SD3 names its other encoders' prompts as required arguments; None means "the same prompt".
    others = {name: None for name in ("prompt_2", "prompt_3") if name in inspect.signature(pipeline.encode_prompt).parameters}
    with torch.inference_mode():  # the pipeline's own encoding, negatives included (SDXL zeroes an empty one)
        encoded = pipeline.encode_prompt(prompt=distinct, device=device, num_images_per_prompt=1,
                                         do_classifier_free_guidance=guidance_scale > 1,
                                         negative_prompt=[negative_prompt] * len(distinct) if negative_prompt else None,
                                         **others)
    names = _EMBEDDING_ARGUMENTS.get(len(encoded))
    if names is None:
        return as_strings
    row_of = {prompt: row for row, prompt in enumerate(distinct)}
    rows = torch.tensor([row_of[prompt] for prompt in prompts])
    return {name: tensor.index_select(0, rows.to(tensor.device))
            for name, tensor in zip(names, encoded) if tensor is not None}


def _encodes_prompts_separately(pipeline: Any) -> bool:
    """Whether the pipeline has SD's ``encode_prompt`` and takes its output back as ``prompt_embeds``."""
    encode = getattr(pipeline, "encode_prompt", None)
    if encode is None:
        return False
    takes = inspect.signature(type(pipeline).__call__).parameters
    return "prompt_embeds" in takes and "do_classifier_free_guidance" in inspect.signature(encode).parameters


def _encodes_like_flux(pipeline: Any) -> bool:
    """FLUX's ``encode_prompt(prompt, prompt_2, device, num_images_per_prompt, …)``: no guidance, pooled embeddings."""
    encode = getattr(pipeline, "encode_prompt", None)
    if encode is None:
        return False
    encodes = inspect.signature(encode).parameters
    takes = inspect.signature(type(pipeline).__call__).parameters
    return ("do_classifier_free_guidance" not in encodes and "pooled_prompt_embeds" in encodes
            and all(name in takes for name in _FLUX_ARGUMENTS))


def _flux_arguments(pipeline: Any, prompts: Sequence[str], distinct: list[str], device: Any,
                    negative_prompt: str | None) -> dict[str, Any]:
    """FLUX's T5 and pooled CLIP embeddings, each distinct prompt encoded once, one row per sample.

    FLUX is guidance-distilled: ``guidance_scale`` feeds its guidance embedding, and a negative
    prompt would only act through "true CFG" (a second transformer pass per step, which the
    recipe has no setting for), so one is refused rather than silently ignored.
    """
    if negative_prompt:
        raise ValueError(f"{type(pipeline).__name__} is guidance-distilled and does not use a negative prompt; "
                         "remove negative_prompt from the generator settings")
    with torch.inference_mode():
        prompt_embeds, pooled, _text_ids = pipeline.encode_prompt(prompt=distinct, prompt_2=None, device=device,
                                                                  num_images_per_prompt=1)
    row_of = {prompt: row for row, prompt in enumerate(distinct)}
    rows = torch.tensor([row_of[prompt] for prompt in prompts], device=prompt_embeds.device)
    return {"prompt_embeds": prompt_embeds.index_select(0, rows), "pooled_prompt_embeds": pooled.index_select(0, rows)}
