"""Stage 1 of ``toy-shapes``: a tiny ``AutoencoderKL`` (32×32×3 ↔ 8×8×4) for SHAPES renders.

Trained with an L1 + MSE reconstruction loss on the posterior *mode* plus a very small KL term, then
given the ``scaling_factor`` that brings its latents to unit variance, which is what the diffusion
UNet expects. Saved with ``save_pretrained`` into the work dir for stage 2 to load.

Why the mode: at this size and training budget, decoding posterior samples (as SD's VAE training
does) left the encoder's noise at ~0.2 of the latent std and the decoder blurred shapes and shifted
red towards orange (PSNR 26.5 dB after 1400 steps). Decoding the mode makes it a KL-regularised
autoencoder; stage 2 then trains on mode latents too, so the two stages agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, render_batch, train_seeds
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.sd_components import make_vae

logger = logging.getLogger(__name__)


@dataclass
class VaeTrainConfig:
    steps: int = 2200
    batch_size: int = 32
    lr: float = 1e-3
    kl_weight: float = 1e-6
    seed: int = 0
    checkpoint_every_s: float = 120.0
    eval_images: int = 512
    decoder_steps: int = 800  # stage 1b: decoder-only fine-tuning (0 skips it)
    decoder_lr: float = 5e-4


@dataclass
class VaeResult:
    folder: Path
    psnr_db: float
    scaling_factor: float
    train_seconds: float
    steps: int
    decoder_steps: int = 0


def vae_loss(vae, images: torch.Tensor, kl_weight: float) -> torch.Tensor:
    posterior = vae.encode(images).latent_dist
    reconstruction = vae.decode(posterior.mode()).sample
    fidelity = F.l1_loss(reconstruction, images) + F.mse_loss(reconstruction, images)
    return fidelity + kl_weight * posterior.kl().mean()


def train_vae(work_dir: Path, config: VaeTrainConfig, resume: bool = False) -> VaeResult:
    """Train (or resume), set the latent scaling factor, save to ``work_dir/vae`` and measure PSNR."""
    torch.manual_seed(config.seed)
    vae = make_vae()
    optimizer, schedule = adamw_with_cosine(vae.parameters(), config.lr, config.steps, 50)
    trainee = Trainee({"vae": vae}, optimizer, schedule)

    def loss_fn(step: int) -> torch.Tensor:
        return vae_loss(vae, render_batch(train_seeds(config.seed, step, config.batch_size)).images, config.kl_weight)

    keeper = CheckpointKeeper(work_dir, "vae", config.checkpoint_every_s)
    vae.train()
    seconds = run_steps("vae", trainee, loss_fn, config.steps, keeper, resume)
    vae.eval()
    scaling = latent_scaling_factor(vae, eval_seeds(config.eval_images, offset=50_000))
    vae.register_to_config(scaling_factor=scaling)
    folder = Path(work_dir) / "vae"
    vae.save_pretrained(folder, safe_serialization=True)
    psnr = reconstruction_psnr(vae, eval_seeds(config.eval_images))
    logger.info("vae: PSNR %.2f dB on held-out renders, scaling factor %.4f, %.0f s", psnr, scaling, seconds)
    return VaeResult(folder, psnr, scaling, seconds, config.steps)


@torch.no_grad()
def latent_scaling_factor(vae, seeds: list[int]) -> float:
    """1 / std of the (mode) latents the UNet is trained on, as Stable Diffusion computes it."""
    latents = vae.encode(render_batch(seeds).images).latent_dist.mode()
    return float(1.0 / latents.std())


@torch.no_grad()
def reconstruction_psnr(vae, seeds: list[int]) -> float:
    """PSNR in dB of encode(mean) → decode on renders, pixels in [0, 1]."""
    images = render_batch(seeds).images
    reconstruction = vae.decode(vae.encode(images).latent_dist.mode()).sample.clamp(-1, 1)
    mse = F.mse_loss((reconstruction + 1) / 2, (images + 1) / 2).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def finetune_decoder(work_dir: Path, config: VaeTrainConfig, stage1: VaeResult, resume: bool = False) -> VaeResult:
    """Stage 1b: sharpen the decoder with the encoder frozen, saving to ``work_dir/vae-final``.

    Shape edges (square corners vs circles) were still soft after stage 1, which the judges read as
    the wrong shape. Freezing the encoder keeps the latent space (and scaling factor) the UNet is
    trained on unchanged, as Stable Diffusion's ft-MSE decoder fine-tune did, so this stage can run
    before or after the UNet stage with the same result.
    """
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    torch.manual_seed(config.seed)
    vae = AutoencoderKL.from_pretrained(stage1.folder)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    optimizer, schedule = adamw_with_cosine(params, config.decoder_lr, config.decoder_steps, 50)
    trainee = Trainee({"vae": vae}, optimizer, schedule)

    def loss_fn(step: int) -> torch.Tensor:
        images = render_batch(train_seeds(config.seed, 1_000_000 + step, config.batch_size)).images
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mode()
        reconstruction = vae.decode(latents).sample
        return F.l1_loss(reconstruction, images) + F.mse_loss(reconstruction, images)

    keeper = CheckpointKeeper(work_dir, "vae_decoder", config.checkpoint_every_s)
    vae.train()
    seconds = run_steps("vae-decoder", trainee, loss_fn, config.decoder_steps, keeper, resume)
    vae.eval()
    folder = Path(work_dir) / "vae-final"
    vae.save_pretrained(folder, safe_serialization=True)
    psnr = reconstruction_psnr(vae, eval_seeds(config.eval_images))
    logger.info("vae decoder fine-tune: PSNR %.2f dB (was %.2f), %.0f s", psnr, stage1.psnr_db, seconds)
    return VaeResult(folder, psnr, stage1.scaling_factor, stage1.train_seconds + seconds, stage1.steps, config.decoder_steps)
