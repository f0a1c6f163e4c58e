"""What every adapter does the same way: load a diffusers pipeline, seed samples, describe itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from pairsynth.devices import parse_dtype, resolve_device
from pairsynth.refs import parse_ref


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


def provenance(pipeline: Any, model_id: str, revision: str | None, sampling: Any, **extra: Any) -> dict[str, Any]:
    """What made a sample: model, revision, pipeline and scheduler classes, every sampling setting.

    Recorded with every candidate and hashed into its key, so any change of setting makes new keys.
    """
    settings = dataclasses.asdict(sampling)
    settings["scheduler_name"] = settings.pop("scheduler")
    return {"model": model_id, "revision": revision, "pipeline": type(pipeline).__name__,
            "scheduler": type(pipeline.scheduler).__name__, **settings, **extra,
            "dtype": str(pipeline.dtype).removeprefix("torch.")}
