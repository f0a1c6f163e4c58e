"""The step loop every toy trainer shares: resume, step, log, checkpoint, time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pairsynth_train.checkpoints import CheckpointKeeper

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TrainConfig:
    """What every toy trainer's config holds; each adds its own settings and per-world defaults."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    checkpoint_every_s: float = 120.0


@dataclass(kw_only=True)
class Trainee:
    """What a loop updates and checkpoints: named state-dict holders (modules, optimiser, schedule, EMA)."""

    parts: dict[str, Any]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)

    def state(self, step: int, elapsed: float) -> dict[str, Any]:
        state = {name: part.state_dict() for name, part in self.parts.items()}
        return {**state, "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "step": step, "elapsed": elapsed}

    def restore(self, state: dict[str, Any]) -> tuple[int, float]:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        return state["step"], state["elapsed"]


def run_steps(
    name: str,
    trainee: Trainee,
    loss_fn: Callable[[int], torch.Tensor],
    steps: int,
    keeper: CheckpointKeeper,
    resume: bool,
    log_every: int = 50,
    after_step: Callable[[int], None] | None = None,
) -> float:
    """Run ``loss_fn(step)`` + backward + optimiser step for ``steps`` steps; return training seconds.

    With ``resume``, continues from ``keeper``'s last checkpoint (seconds already spent included).
    ``after_step`` runs after each optimiser step (e.g. EMA updates, clamping).
    """
    start, elapsed = 0, 0.0
    if resume and (state := keeper.load()) is not None:
        start, elapsed = trainee.restore(state)
    began = time.monotonic() - elapsed
    for step in range(start, steps):
        loss = loss_fn(step)
        trainee.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if trainee.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainee.params, trainee.grad_clip)
        trainee.optimizer.step()
        trainee.schedule.step()
        if after_step is not None:
            after_step(step)
        if step % log_every == 0 or step == steps - 1:
            logger.info("%s step %d/%d loss %.4f lr %.2e (%.0f s)", name, step, steps, loss.item(),
                        trainee.schedule.get_last_lr()[0], time.monotonic() - began)
        keeper.maybe_save(lambda: trainee.state(step + 1, time.monotonic() - began))
    seconds = time.monotonic() - began
    if start < steps:
        keeper.save(trainee.state(steps, seconds))
    return seconds
