"""Scheduler names a recipe may use, mapped onto diffusers' scheduler classes."""

from __future__ import annotations

from typing import Any

SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def make_scheduler(name: str, current: Any) -> Any:
    """A scheduler of the named kind built from ``current``'s config (its noise schedule).

    ``default`` keeps the pipeline's own scheduler: the right choice for distilled models such as
    SD-Turbo, whose shipped scheduler is part of what makes one-step sampling work.
    """
    if name == "default":
        return current
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from: default, {', '.join(SCHEDULERS)}")
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(current.config, **overrides)
