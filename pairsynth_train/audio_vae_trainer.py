"""Stage 1 of ``toy-sounds``: a tiny ``AutoencoderKL`` on log-mels ((1, 100, 64) ↔ (8, 25, 16)).

It works directly on AudioLDM-style log-mels (natural log, floor 1e-5), because the pipeline hands
the decoder's output straight to the vocoder. L1 reconstruction plus a very small KL term, then the
``scaling_factor`` that brings latents to unit variance. Saved with ``save_pretrained`` into the
work dir for the later stages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth_train import audioldm_components
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, train_seeds
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.sound_data import synthesize_batch

logger = logging.getLogger(__name__)


@dataclass
class AudioVaeTrainConfig:
    steps: int = 350
    batch_size: int = 16
    lr: float = 1.5e-3
    kl_weight: float = 1e-6
    seed: int = 0
    checkpoint_every_s: float = 120.0
    eval_clips: int = 128


@dataclass
class AudioVaeResult:
    folder: Path
    l1: float
    scaling_factor: float
    train_seconds: float
    steps: int


def vae_loss(vae, mels: torch.Tensor, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
    images = mels.unsqueeze(1)
    posterior = vae.encode(images).latent_dist
    reconstruction = vae.decode(posterior.sample(generator=generator)).sample
    return F.l1_loss(reconstruction, images) + kl_weight * posterior.kl().mean()


def train_audio_vae(work_dir: Path, config: AudioVaeTrainConfig, resume: bool = False) -> AudioVaeResult:
    """Train (or resume), set the latent scaling factor, save to ``work_dir/vae`` and measure L1."""
    torch.manual_seed(config.seed)
    vae = audioldm_components.make_vae()
    optimizer, schedule = adamw_with_cosine(vae.parameters(), config.lr, config.steps, 30)
    trainee = Trainee({"vae": vae}, optimizer, schedule, grad_clip=1.0, params=list(vae.parameters()))

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 104729 + step)
        mels = synthesize_batch(train_seeds(config.seed, step, config.batch_size)).mels
        return vae_loss(vae, mels, config.kl_weight, generator)

    keeper = CheckpointKeeper(work_dir, "vae", config.checkpoint_every_s)
    vae.train()
    seconds = run_steps("audio-vae", trainee, loss_fn, config.steps, keeper, resume, log_every=25)
    vae.eval()
    scaling = latent_scaling_factor(vae, eval_seeds(config.eval_clips, offset=50_000))
    vae.register_to_config(scaling_factor=scaling)
    folder = Path(work_dir) / "vae"
    vae.save_pretrained(folder, safe_serialization=True)
    l1 = reconstruction_l1(vae, eval_seeds(config.eval_clips))
    logger.info("audio vae: held-out log-mel L1 %.4f, scaling factor %.4f, %.0f s", l1, scaling, seconds)
    return AudioVaeResult(folder, l1, scaling, seconds, config.steps)


@torch.no_grad()
def latent_scaling_factor(vae, seeds: list[int]) -> float:
    """1 / std of latents (posterior samples), as Stable Diffusion and AudioLDM compute it."""
    mels = synthesize_batch(seeds).mels.unsqueeze(1)
    latents = vae.encode(mels).latent_dist.sample(generator=torch.Generator().manual_seed(0))
    return float(1.0 / latents.std())


@torch.no_grad()
def reconstruct(vae, mels: torch.Tensor) -> torch.Tensor:
    """encode(mean) → decode of (B, frames, 64) log-mels."""
    return vae.decode(vae.encode(mels.unsqueeze(1)).latent_dist.mode()).sample.squeeze(1)


@torch.no_grad()
def reconstruction_l1(vae, seeds: list[int]) -> float:
    """Mean absolute log-mel error of encode(mean) → decode on held-out sounds."""
    mels = synthesize_batch(seeds).mels
    return F.l1_loss(reconstruct(vae, mels), mels).item()
