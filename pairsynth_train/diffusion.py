"""What the two latent-diffusion trainers (``toy-shapes``, ``toy-sounds``) share.

The settings both use (:class:`DiffusionTrainConfig`), the noising step of ε-prediction training
with caption dropout for classifier-free guidance (:func:`noised`), EMA and the step loop around a
UNet (:func:`train_unet`), and reusing a finished stage when a run resumes (:func:`reuse_or_run`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.loop import TrainConfig, Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine

logger = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass(kw_only=True)
class DiffusionTrainConfig(TrainConfig):
    """UNet-stage settings; each pipeline's config adds its own and sets its defaults."""

    warmup: int = 100
    weight_decay: float = 0.01
    uncond_prob: float = 0.1
    ema_decay: float
    grad_clip: float = 1.0
    check_per_caption: int  # samples per caption judged right after export; 0 skips the check


@dataclass(kw_only=True)
class Noised:
    """One noised training batch: model input, target noise, timesteps and which captions are dropped."""

    noisy: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    drop: torch.Tensor


class PromptTable:
    """Token ids and masks for every caption and the empty one, padded to the tokenizer's length as SD and AudioLDM pad them."""

    def __init__(self, tokenizer, captions: list[str]) -> None:
        self.texts = [*captions, ""]
        tokens = tokenizer(self.texts, padding="max_length", max_length=tokenizer.model_max_length,
                           truncation=True, return_tensors="pt")
        self.ids, self.mask = tokens.input_ids, tokens.attention_mask
        self.row = {text: i for i, text in enumerate(self.texts)}

    def rows(self, captions: list[str], drop: torch.Tensor) -> torch.Tensor:
        """Row per caption; the empty caption's row where ``drop`` is set."""
        return torch.tensor([self.row[""] if dropped else self.row[c] for c, dropped in zip(captions, drop.tolist())])

    def lookup(self, captions: list[str], drop: torch.Tensor) -> torch.Tensor:
        """Token ids per caption (SD conditioning: the text encoder's hidden states)."""
        return self.ids[self.rows(captions, drop)]

    def embed(self, text_encoder) -> torch.Tensor:
        """Normalised ``text_embeds`` of all prompts, one row per text (AudioLDM conditioning)."""
        return torch.nn.functional.normalize(text_encoder(self.ids, attention_mask=self.mask).text_embeds, dim=-1)


def noised(latents: torch.Tensor, noise_scheduler, uncond_prob: float, generator: torch.Generator) -> Noised:
    """Noise ``latents`` at random timesteps and pick captions to drop (classifier-free guidance)."""
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=generator)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    drop = torch.rand(len(latents), generator=generator) < uncond_prob
    return Noised(noisy=noisy, noise=noise, timesteps=timesteps, drop=drop)


def train_unet(name: str, keeper: CheckpointKeeper, config: DiffusionTrainConfig, parts: dict[str, torch.nn.Module],
               ema_params: list[torch.nn.Parameter], loss_fn: Callable[[int], torch.Tensor], resume: bool) -> float:
    """AdamW + cosine over the trainable parameters of ``parts``, EMA over ``ema_params``, the step loop.

    The EMA weights are copied into the modules at the end. Returns the training seconds.
    """
    ensure_torchvision_importable()
    from diffusers.training_utils import EMAModel

    ema = EMAModel(ema_params, decay=config.ema_decay)
    trained = [p for part in parts.values() for p in part.parameters() if p.requires_grad]
    optimizer, schedule = adamw_with_cosine(trained, config.lr, config.steps, config.warmup, config.weight_decay)
    trainee = Trainee(parts={**parts, "ema": ema}, optimizer=optimizer, schedule=schedule, grad_clip=config.grad_clip,
                      params=trained)
    seconds = run_steps(name, trainee, loss_fn, config.steps, keeper, resume, after_step=lambda step: ema.step(ema_params))
    ema.copy_to(ema_params)
    return seconds


def reuse_or_run(work_dir: Path, name: str, resume: bool, run: Callable[[], Result], result_type: type[Result]) -> Result:
    """Reuse a finished stage when resuming (its record and folder exist); otherwise run it and record it."""
    record = Path(work_dir) / f"{name}_result.json"
    if resume and record.exists():
        data: dict[str, Any] = json.loads(record.read_text())
        if Path(data["folder"]).exists():
            logger.info("reusing finished %s stage: %s", name, data)
            return result_type(**{**data, "folder": Path(data["folder"])})
    result = run()
    record.write_text(json.dumps({**asdict(result), "folder": str(result.folder)}), encoding="utf-8")
    return result
