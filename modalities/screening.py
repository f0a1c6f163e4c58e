"""Early rejection: look at every sample part-way through its denoising, and finish only the hopeful ones.

A batch is denoised in two pipeline calls of the same diffusers pipeline:

1. **Preview.** The first ``round(at · steps)`` steps run as usual. After the last of them the
   scheduler's state and the latents are kept (:class:`Paused`), the latent is replaced by the
   scheduler's prediction of the clean sample x0, and the remaining steps cost nothing (the
   denoiser is not run, the scheduler step is the identity; Stable Diffusion's loop is also
   interrupted). The pipeline then decodes x0 with its own VAE (and vocoder), so a preview is the
   same kind of output as a finished sample and the same judge reads it.
2. **Resume.** The samples the caller keeps go through the pipeline again from the kept state: the
   first steps are skipped (no denoiser, identity step), the scheduler's state (DPM-Solver's
   history of x0 predictions, its step index …) is restored, restricted to the kept rows, and the
   remaining steps run. Each sample keeps its own ``torch.Generator``, already advanced by phase 1,
   so ancestral samplers draw what an uninterrupted run would.

Keeping every sample reproduces the uninterrupted call (tests check it); keeping a subset changes
only the batch the last steps run in. This works through diffusers' public call and the
scheduler's ``step``, so it covers SD-family and AudioLDM-family pipelines alike.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

Screen = Callable[[list[Any]], Sequence[bool]]
"""Given a batch's previews (the adapter's own outputs, decoded from x0), which samples to finish."""


@dataclass(frozen=True, kw_only=True)
class ScreenRequest:
    """What a generator needs to screen a batch: where to look, and who decides.

    Attributes:
        at: the fraction of the steps after which the previews are made, in (0, 1).
        decide: the screen; ``drop=False`` callers may return all ``True`` and only record.
    """

    at: float
    decide: Screen


@dataclass
class Paused:
    """A batch stopped after step ``index``: its latents, its scheduler's state, its generators."""

    index: int = -1
    latents: torch.Tensor | None = None
    scheduler_state: dict[str, Any] = field(default_factory=dict)

    def select(self, rows: Sequence[int]) -> Paused:
        """The same state for ``rows`` of the batch only."""
        assert self.latents is not None, "the preview never reached its last step"
        shape = self.latents.shape
        index = torch.tensor(list(rows), dtype=torch.long, device=self.latents.device)
        pick = lambda value: _map_tensors(value, lambda t: t.index_select(0, index.to(t.device)) if t.shape == shape else t)  # noqa: E731
        return Paused(index=self.index, latents=self.latents.index_select(0, index),
                      scheduler_state={name: pick(value) for name, value in self.scheduler_state.items()})


def screened(pipeline: Any, rows: int, request: ScreenRequest,
             run: Callable[[list[int], dict[str, Any]], list[Any]]) -> list[Any | None]:
    """Preview all ``rows`` samples, ask ``request.decide``, finish the kept ones; ``None`` for the rest.

    ``run(rows, controls)`` makes the pipeline call for those rows of the batch (their prompts and
    their generators, which it must keep between the two calls), adding ``controls`` to it.
    """
    everyone = list(range(rows))
    with preview(pipeline, request.at) as (controls, paused):
        previews = run(everyone, controls)
    keep = [row for row, wanted in zip(everyone, request.decide(previews)) if wanted]
    outputs: list[Any | None] = [None] * rows
    if keep:
        with resume(pipeline, paused.select(keep)) as controls:
            for row, output in zip(keep, run(keep, controls)):
                outputs[row] = output
    return outputs


@contextlib.contextmanager
def preview(pipeline: Any, at: float | None = None, *, last: int | None = None
            ) -> Iterator[tuple[dict[str, Any], Paused]]:
    """Phase 1: run ``at`` of the steps, keep the state, and let the pipeline decode the predicted x0.

    ``last`` instead fixes the index of the last step call that runs (``stop_at`` counts that way).
    """
    if last is None and not (at is not None and 0.0 < at < 1.0):
        raise ValueError(f"early rejection's preview point must be in (0, 1), got {at}")
    scheduler = pipeline.scheduler
    paused = Paused()
    counter = _StepCounter(at or 0.0, last)
    step = scheduler.step

    @functools.wraps(step)  # the pipeline inspects step's signature to pass generator= and eta=
    def preview_step(model_output, timestep, sample, *args, **kwargs):
        index = counter.next(scheduler)
        if index > counter.last:  # past the preview point: the latent already is x0
            return (sample,) if not kwargs.get("return_dict", True) else _output(sample)
        result = step(model_output, timestep, sample, *args, **kwargs)
        if index < counter.last:
            return result
        prev = result[0] if isinstance(result, tuple) else result.prev_sample
        paused.index, paused.latents = index, prev.clone()
        paused.scheduler_state = {name: _map_tensors(value, torch.clone) for name, value in vars(scheduler).items()
                                  if name != "step"}
        x0 = _predicted_x0(scheduler, result, model_output, timestep, sample)
        return (x0, *result[1:]) if isinstance(result, tuple) else _output(x0)

    controls: dict[str, Any] = {}
    if _has_step_end_callback(pipeline):
        def on_step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if counter.done:
                pipe._interrupt = True  # SD's loop skips the remaining steps, then decodes the latents
            return tensors

        controls["callback_on_step_end"] = on_step_end
    scheduler.step = preview_step
    try:
        with _skipping_denoiser(pipeline, lambda: counter.done):
            yield controls, paused
    finally:
        del scheduler.step
        if hasattr(pipeline, "_interrupt"):
            pipeline._interrupt = False


@contextlib.contextmanager
def resume(pipeline: Any, paused: Paused) -> Iterator[dict[str, Any]]:
    """Phase 2: skip the steps ``paused`` already ran, restore its state, run the rest."""
    assert paused.latents is not None
    scheduler = pipeline.scheduler
    counter = {"index": 0}
    step = scheduler.step

    @functools.wraps(step)
    def resumed_step(model_output, timestep, sample, *args, **kwargs):
        index = counter["index"]
        counter["index"] += 1
        if index < paused.index:
            return (sample,) if not kwargs.get("return_dict", True) else _output(sample)
        if index == paused.index:  # the state right after this step, as the preview left it
            vars(scheduler).update({name: _map_tensors(value, torch.clone)
                                    for name, value in paused.scheduler_state.items()})
            latents = paused.latents.to(sample.device, sample.dtype)
            return (latents,) if not kwargs.get("return_dict", True) else _output(latents)
        return step(model_output, timestep, sample, *args, **kwargs)

    scheduler.step = resumed_step
    try:
        with _skipping_denoiser(pipeline, lambda: counter["index"] <= paused.index):
            yield {"latents": paused.latents}  # no fresh noise is drawn from the generators
    finally:
        del scheduler.step


class _StepCounter:
    """Counts scheduler steps; the preview point is fixed at the first, once the timesteps are known
    (Heun-type schedulers make two step calls per timestep)."""

    def __init__(self, at: float, last: int | None = None) -> None:
        self.at, self.index, self.last = at, 0, -1 if last is None else last

    def next(self, scheduler: Any) -> int:
        if self.last < 0:
            self.last = max(1, round(self.at * len(scheduler.timesteps))) - 1
        index = self.index
        self.index += 1
        return index

    @property
    def done(self) -> bool:
        return self.last >= 0 and self.index > self.last


@contextlib.contextmanager
def _skipping_denoiser(pipeline: Any, skip: Callable[[], bool]) -> Iterator[None]:
    """While ``skip()`` holds, the UNet (or DiT) returns zeros of its output's shape without running:
    the wrapped scheduler step ignores that output anyway."""
    module = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    if module is None:
        yield
        return
    forward = module.forward

    def maybe_forward(*args: Any, **kwargs: Any) -> Any:
        if not skip():
            return forward(*args, **kwargs)
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        zeros = torch.zeros_like(sample)
        out_channels = getattr(module.config, "out_channels", None)
        if zeros.dim() == 4 and out_channels and out_channels != zeros.shape[1]:
            zeros = zeros.new_zeros((zeros.shape[0], out_channels, *zeros.shape[2:]))
        return (zeros,) if kwargs.get("return_dict", True) is False else SimpleNamespace(sample=zeros)

    module.forward = maybe_forward
    try:
        yield
    finally:
        del module.forward


def _has_step_end_callback(pipeline: Any) -> bool:
    return "callback_on_step_end" in inspect.signature(type(pipeline).__call__).parameters


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` on every tensor of a scheduler attribute (tensors, lists/tuples of them); others as they are."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(item, fn) for item in value)
    return value


def _output(sample: torch.Tensor) -> Any:
    from diffusers.schedulers.scheduling_utils import SchedulerOutput

    return SchedulerOutput(prev_sample=sample)


def _predicted_x0(scheduler: Any, result: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor) -> torch.Tensor:
    """The scheduler's own x0 estimate where it makes one, else x0 from the ε (or v) prediction."""
    predicted = result[1] if isinstance(result, tuple) and len(result) > 1 else getattr(result, "pred_original_sample", None)
    if predicted is not None:
        return predicted
    config = scheduler.config
    if getattr(scheduler, "model_outputs", None) and (
            config.get("algorithm_type") in ("dpmsolver++", "sde-dpmsolver++") or config.get("predict_x0", False)):
        return scheduler.model_outputs[-1]  # DPM-Solver++ and UniPC keep x0 predictions
    alpha = scheduler.alphas_cumprod.to(sample.device)[int(timestep)].to(sample.dtype)
    if config.get("prediction_type", "epsilon") == "v_prediction":
        return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
    return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
