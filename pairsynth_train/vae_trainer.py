"""Stage 1 of ``toy-shapes`` and ``toy-sounds``: a tiny ``AutoencoderKL`` for one world.

SHAPES: 32×32×3 renders ↔ 8×8×4 latents. SOUNDS: AudioLDM-style log-mels (1, 100, 64) ↔ (8, 25, 16)
latents, directly on natural-log mels (floor 1e-5), because the pipeline hands the decoder's output
straight to the vocoder. Reconstruction loss plus a very small KL term, then the ``scaling_factor``
that brings latents to unit variance, which is what the diffusion UNet expects. Saved with
``save_pretrained`` into the work dir for the later stages. What differs per world is data in
:meth:`VaeTrainConfig.for_world` and :data:`VAE_WORLDS`.

Why SHAPES decodes the posterior *mode*: at this size and training budget, decoding posterior samples
(as SD's VAE training does) left the encoder's noise at ~0.2 of the latent std and the decoder blurred
shapes and shifted red towards orange (PSNR 26.5 dB after 1400 steps). Decoding the mode makes it a
KL-regularised autoencoder; the UNet stage then trains on mode latents too, so the two stages agree.
SOUNDS decodes posterior samples (its UNet trains on sampled latents) with an L1 loss only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.components import make_vae
from pairsynth_train.data import eval_seeds, render_batch, synthesize_batch, train_seeds
from pairsynth_train.loop import TrainConfig, Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class VaeTrainConfig(TrainConfig):
    kl_weight: float = 1e-6
    eval_count: int  # held-out scenes for the scaling factor and the reconstruction metric
    decode: str  # what the decoder is trained on: the posterior "mode" or a "sample"
    mse_weight: float = 0.0  # added to the L1 reconstruction loss
    grad_clip: float | None = None
    warmup: int = 50
    decoder_steps: int = 0  # stage 1b: decoder-only fine-tuning (0 skips it)
    decoder_lr: float = 5e-4

    @classmethod
    def for_world(cls, world: str, **overrides) -> VaeTrainConfig:
        """The settings the shipped VAE of ``world`` was trained with, updated by ``overrides``."""
        defaults = {
            "shapes": cls(steps=2200, batch_size=32, lr=1e-3, eval_count=512, decode="mode", mse_weight=1.0, decoder_steps=800),
            "sounds": cls(steps=350, batch_size=16, lr=1.5e-3, eval_count=128, decode="sample", grad_clip=1.0, warmup=30),
        }
        return replace(defaults[world], **overrides)


@dataclass(kw_only=True)
class VaeResult:
    folder: Path
    quality: float  # held-out PSNR in dB (SHAPES) or log-mel L1 (SOUNDS); see VaeWorld.quality_name
    scaling_factor: float
    train_seconds: float
    steps: int
    decoder_steps: int = 0


@dataclass(frozen=True, kw_only=True)
class VaeWorld:
    """What a world's VAE reads and how its reconstruction is measured."""

    inputs: Callable[[list[int]], torch.Tensor]  # seeds → (B, C, H, W)
    quality: Callable[[torch.Tensor, torch.Tensor], float]  # (reconstruction, inputs) → metric
    quality_name: str
    log_every: int


def _psnr(reconstruction: torch.Tensor, images: torch.Tensor) -> float:
    """PSNR in dB with pixels in [0, 1]."""
    mse = F.mse_loss((reconstruction.clamp(-1, 1) + 1) / 2, (images + 1) / 2).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


VAE_WORLDS = {
    "shapes": VaeWorld(inputs=lambda seeds: render_batch(seeds).inputs, quality=_psnr,
                       quality_name="PSNR dB (held-out)", log_every=50),
    "sounds": VaeWorld(inputs=lambda seeds: synthesize_batch(seeds).inputs.unsqueeze(1),
                       quality=lambda out, mels: F.l1_loss(out, mels).item(), quality_name="held-out log-mel L1",
                       log_every=25),
}


def _latents(posterior, config: VaeTrainConfig, generator: torch.Generator | None) -> torch.Tensor:
    return posterior.mode() if config.decode == "mode" else posterior.sample(generator=generator)


def _fidelity(reconstruction: torch.Tensor, target: torch.Tensor, config: VaeTrainConfig) -> torch.Tensor:
    loss = F.l1_loss(reconstruction, target)
    return loss + config.mse_weight * F.mse_loss(reconstruction, target) if config.mse_weight else loss


def vae_loss(vae, inputs: torch.Tensor, config: VaeTrainConfig, generator: torch.Generator) -> torch.Tensor:
    return vae_loss_and_means(vae, inputs, config, generator)[0]


def vae_loss_and_means(vae, inputs: torch.Tensor, config: VaeTrainConfig,
                       generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and the posterior means (what a UNet stage and an anchor read)."""
    posterior = vae.encode(inputs).latent_dist
    reconstruction = vae.decode(_latents(posterior, config, generator)).sample
    return _fidelity(reconstruction, inputs, config) + config.kl_weight * posterior.kl().mean(), posterior.mean


def train_vae(world: str, work_dir: Path, config: VaeTrainConfig, resume: bool = False) -> VaeResult:
    """Train (or resume), set the latent scaling factor, save to ``work_dir/vae`` and measure it."""
    spec = VAE_WORLDS[world]
    torch.manual_seed(config.seed)
    vae = make_vae(world)
    optimizer, schedule = adamw_with_cosine(vae.parameters(), config.lr, config.steps, config.warmup)
    trainee = Trainee(parts={"vae": vae}, optimizer=optimizer, schedule=schedule, grad_clip=config.grad_clip,
                      params=list(vae.parameters()))

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 104729 + step)
        return vae_loss(vae, spec.inputs(train_seeds(config.seed, step, config.batch_size)), config, generator)

    keeper = CheckpointKeeper(work_dir, "vae", config.checkpoint_every_s)
    vae.train()
    seconds = run_steps(f"{world}-vae", trainee, loss_fn, config.steps, keeper, resume, log_every=spec.log_every)
    vae.eval()
    scaling = latent_scaling_factor(vae, spec.inputs(eval_seeds(config.eval_count, offset=50_000)), config)
    vae.register_to_config(scaling_factor=scaling)
    folder = Path(work_dir) / "vae"
    vae.save_pretrained(folder, safe_serialization=True)
    quality = reconstruction_quality(world, vae, eval_seeds(config.eval_count))
    logger.info("%s vae: %s %.4f, scaling factor %.4f, %.0f s", world, spec.quality_name, quality, scaling, seconds)
    return VaeResult(folder=folder, quality=quality, scaling_factor=scaling, train_seconds=seconds, steps=config.steps)


@torch.no_grad()
def latent_scaling_factor(vae, inputs: torch.Tensor, config: VaeTrainConfig) -> float:
    """1 / std of the latents the UNet is trained on, as Stable Diffusion and AudioLDM compute it."""
    return float(1.0 / _latents(vae.encode(inputs).latent_dist, config, torch.Generator().manual_seed(0)).std())


@torch.no_grad()
def reconstruct(vae, mels: torch.Tensor) -> torch.Tensor:
    """encode(mean) → decode of (B, frames, 64) SOUNDS log-mels."""
    return vae.decode(vae.encode(mels.unsqueeze(1)).latent_dist.mode()).sample.squeeze(1)


@torch.no_grad()
def reconstruction_quality(world: str, vae, seeds: list[int]) -> float:
    """The world's reconstruction metric of encode(mean) → decode on held-out scenes."""
    spec = VAE_WORLDS[world]
    inputs = spec.inputs(seeds)
    return spec.quality(vae.decode(vae.encode(inputs).latent_dist.mode()).sample, inputs)


def finetune_decoder(world: str, work_dir: Path, config: VaeTrainConfig, stage1: VaeResult, resume: bool = False) -> VaeResult:
    """Stage 1b: sharpen the decoder with the encoder frozen, saving to ``work_dir/vae-final``.

    SHAPES edges (square corners vs circles) were still soft after stage 1, which the judges read as
    the wrong shape. Freezing the encoder keeps the latent space (and scaling factor) the UNet is
    trained on unchanged, as Stable Diffusion's ft-MSE decoder fine-tune did, so this stage can run
    before or after the UNet stage with the same result.
    """
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    spec = VAE_WORLDS[world]
    torch.manual_seed(config.seed)
    vae = AutoencoderKL.from_pretrained(stage1.folder)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    optimizer, schedule = adamw_with_cosine(params, config.decoder_lr, config.decoder_steps, 50)
    trainee = Trainee(parts={"vae": vae}, optimizer=optimizer, schedule=schedule)

    def loss_fn(step: int) -> torch.Tensor:
        inputs = spec.inputs(train_seeds(config.seed, 1_000_000 + step, config.batch_size))
        with torch.no_grad():
            latents = vae.encode(inputs).latent_dist.mode()
        return _fidelity(vae.decode(latents).sample, inputs, config)

    keeper = CheckpointKeeper(work_dir, "vae_decoder", config.checkpoint_every_s)
    vae.train()
    seconds = run_steps(f"{world}-vae-decoder", trainee, loss_fn, config.decoder_steps, keeper, resume)
    vae.eval()
    folder = Path(work_dir) / "vae-final"
    vae.save_pretrained(folder, safe_serialization=True)
    quality = reconstruction_quality(world, vae, eval_seeds(config.eval_count))
    logger.info("%s vae decoder fine-tune: %s %.4f (was %.4f), %.0f s", world, spec.quality_name, quality,
                stage1.quality, seconds)
    return replace(stage1, folder=folder, quality=quality, train_seconds=stage1.train_seconds + seconds,
                   decoder_steps=config.decoder_steps)
