"""Train ``toy-shapes``: a tiny text→image latent diffusion model in Stable Diffusion's format.

Stage 1 trains the VAE and stage 1b sharpens its decoder (``vae_trainer``, world ``shapes``). Stage 2 trains the UNet
with the pipeline's own small CLIP text encoder, jointly or frozen at its random init
(``freeze_text_encoder``); never ``toy-shapes-clip``: the judge must not be the generator's encoder.
Captions are replaced by the empty caption 10 % of the time, so classifier-free guidance works, and
tokenized exactly as ``StableDiffusionPipeline`` does (padded to the tokenizer's 77). Exported
weights are an EMA of the trained ones; the folder loads with ``StableDiffusionPipeline`` /
``DiffusionPipeline.from_pretrained`` and samples with DPM-Solver++.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.shapes import all_captions, world_words
from pairsynth.zoo.tokenizer import build_clip_tokenizer
from pairsynth_train import components
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import render_batch, train_seeds
from pairsynth_train.diffusion import DiffusionTrainConfig, PromptTable, noised, reuse_or_run, train_unet
from pairsynth_train.t2i_export import export_pipeline, quick_check, write_t2i_card
from pairsynth_train.vae_trainer import VaeResult, VaeTrainConfig, finetune_decoder, train_vae

logger = logging.getLogger(__name__)

NAME = "toy-shapes"


@dataclass(kw_only=True)
class T2iTrainConfig(DiffusionTrainConfig):
    """The UNet stage of ``toy-shapes`` (see :meth:`default`), with its VAE stage's settings in ``vae``."""

    warm_start: str | None = None  # a t2i checkpoint whose EMA UNet/text-encoder weights start this run
    # Trained jointly, the text encoder drifted to encode colour strongly (token states moved by ~8)
    # but shape and side weakly (~1) within 1,200 steps; frozen at its random init, every word stays
    # equally distinct and the UNet has to learn to read them.
    freeze_text_encoder: bool = True
    vae: VaeTrainConfig = field(default_factory=lambda: VaeTrainConfig.for_world("shapes"))

    @classmethod
    def default(cls, **overrides) -> T2iTrainConfig:
        """The shipped run's settings, updated by ``overrides``."""
        return cls(**{"steps": 2600, "batch_size": 64, "lr": 6e-4, "ema_decay": 0.999, "check_per_caption": 2, **overrides})


def diffusion_loss(parts: dict, prompts: PromptTable, config: T2iTrainConfig, step: int) -> torch.Tensor:
    """ε-prediction MSE on (mode) VAE latents of fresh renders, with caption dropout."""
    vae, unet, text_encoder, noise_scheduler = parts["vae"], parts["unet"], parts["text_encoder"], parts["scheduler"]
    generator = torch.Generator().manual_seed(config.seed * 7_368_787 + step)
    batch = render_batch(train_seeds(config.seed, step, config.batch_size))
    with torch.no_grad():
        latents = vae.encode(batch.inputs).latent_dist.mode() * vae.config.scaling_factor
    step_input = noised(latents, noise_scheduler, config.uncond_prob, generator)
    hidden = text_encoder(prompts.lookup(batch.captions, step_input.drop))[0]
    return F.mse_loss(unet(step_input.noisy, step_input.timesteps, hidden).sample, step_input.noise)


def train_toy_shapes(out_dir: Path, work_dir: Path, config: T2iTrainConfig, resume: bool = False,
                     judges_dir: Path | None = None) -> dict:
    """Train both stages (resuming each), export the pipeline to ``out_dir`` and quick-check it."""
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    work_dir = Path(work_dir)
    vae_result = _vae_stage(work_dir, config.vae, resume)
    vae = AutoencoderKL.from_pretrained(vae_result.folder).eval().requires_grad_(False)
    tokenizer = build_clip_tokenizer(world_words(), work_dir / "tokenizer")
    torch.manual_seed(config.seed)
    unet, text_encoder = components.make_unet("shapes"), components.make_clip_text_encoder(tokenizer)
    if config.warm_start:
        warm_start(unet, text_encoder, Path(config.warm_start))
    ema_params = [*unet.parameters(), *text_encoder.parameters()]
    if config.freeze_text_encoder:
        text_encoder.requires_grad_(False)
    parts = {"vae": vae, "unet": unet, "text_encoder": text_encoder, "scheduler": components.make_training_scheduler("shapes")}
    prompts = PromptTable(tokenizer, all_captions())
    logger.info("%s: UNet %.2fM, text encoder %.2fM params; %d steps of batch %d", NAME,
                _count(unet) / 1e6, _count(text_encoder) / 1e6, config.steps, config.batch_size)

    unet.train(), text_encoder.train(not config.freeze_text_encoder)
    seconds = train_unet(NAME, CheckpointKeeper(work_dir, "t2i", config.checkpoint_every_s), config,
                         {"unet": unet, "text_encoder": text_encoder}, ema_params,
                         lambda step: diffusion_loss(parts, prompts, config, step), resume)
    export_pipeline(out_dir, vae, unet.eval(), text_encoder.eval(), tokenizer)
    check = quick_check(out_dir, judges_dir, config.check_per_caption) if config.check_per_caption else {}
    write_t2i_card(out_dir, config, vae_result, seconds, check, {"unet": _count(unet), "text_encoder": _count(text_encoder), "vae": _count(vae)})
    return check


def warm_start(unet, text_encoder, checkpoint: Path) -> None:
    """Load another run's EMA weights; conv kernels that grew are zero-padded around the old ones.

    The padded model computes exactly what the old one did, then learns to use the new taps.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    names = [f"unet.{n}" for n, _ in unet.named_parameters()] + [f"text_encoder.{n}" for n, _ in text_encoder.named_parameters()]
    shadow = dict(zip(names, state["ema"]["shadow_params"]))
    for prefix, module in (("unet", unet), ("text_encoder", text_encoder)):
        loaded = dict(state[prefix])
        loaded.update({k[len(prefix) + 1:]: v for k, v in shadow.items() if k.startswith(prefix + ".")})
        own = module.state_dict()
        loaded = {k: _pad_kernel(v, own[k].shape) if v.shape != own[k].shape else v for k, v in loaded.items()}
        module.load_state_dict(loaded)
    logger.info("warm start from %s (step %d)", checkpoint, state["step"])


def _pad_kernel(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if weight.dim() != 4 or weight.shape[:2] != shape[:2]:
        raise ValueError(f"cannot warm-start a {tuple(shape)} weight from {tuple(weight.shape)}")
    padded = torch.zeros(shape, dtype=weight.dtype)
    top, left = (shape[2] - weight.shape[2]) // 2, (shape[3] - weight.shape[3]) // 2
    padded[:, :, top:top + weight.shape[2], left:left + weight.shape[3]] = weight
    return padded


def _vae_stage(work_dir: Path, config: VaeTrainConfig, resume: bool) -> VaeResult:
    """Stages 1 and 1b; when resuming, reuse whichever finished (each resumes its own checkpoint)."""
    stage1 = reuse_or_run(work_dir, "vae", resume, lambda: train_vae("shapes", work_dir, config, resume), VaeResult)
    if not config.decoder_steps:
        return stage1
    return reuse_or_run(work_dir, "vae_final", resume, lambda: finetune_decoder("shapes", work_dir, config, stage1, resume),
                        VaeResult)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())
