"""Train ``toy-sounds``: a tiny text→audio latent diffusion model in AudioLDM's format.

Stage 1 trains the mel VAE (``vae_trainer``, world ``sounds``), stage 2 the vocoder (``vocoder_trainer``),
stage 3 the UNet, conditioned on the pipeline's own small CLAP text tower (not ``toy-sounds-clap``:
the judge must not be the generator's encoder). Each finished stage leaves a record, so ``--resume``
skips it. Captions are replaced by the empty caption 10 % of the time (classifier-free guidance) and
encoded exactly as ``AudioLDMPipeline`` encodes them (padded to the tokenizer's length, projected
``text_embeds``, L2-normalised).

The text tower is first trained on its own for a few seconds to give every caption its own
direction (stereo captions share their mono caption's, so "... on the left" still generates the
right sound), then frozen. Trained jointly with the UNet from random weights, it had merged "low"
and "high" (cosine 1.00 between the two pitches after 700 steps), and the UNet could not learn pitch. The UNet trains on a fixed pool of VAE posteriors of synthesized
sounds (encoding fresh clips every step would cost as much as the UNet step itself); latents are
sampled from the stored posteriors each time. Exported weights are an EMA of the trained ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.sounds import CAPTION_TEMPLATE, all_captions, parse_caption
from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer
from pairsynth_train import components
from pairsynth_train.audioldm_export import export_pipeline, quick_check, write_t2a_card
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import synthesize_batch, train_seeds
from pairsynth_train.diffusion import DiffusionTrainConfig, PromptTable, noised, reuse_or_run, train_unet
from pairsynth_train.vae_trainer import VaeResult, VaeTrainConfig, train_vae
from pairsynth_train.vocoder_trainer import VocoderResult, VocoderTrainConfig, train_vocoder

logger = logging.getLogger(__name__)

NAME = "toy-sounds"


@dataclass(kw_only=True)
class T2aTrainConfig(DiffusionTrainConfig):
    """The UNet stage of ``toy-sounds`` (see :meth:`default`), with its VAE and vocoder stages' settings."""

    text_pretrain_steps: int = 300  # caption-separation steps of the (then frozen) text tower
    pool_clips: int = 3072  # synthesized sounds whose VAE posteriors the UNet trains on
    check_steps: int = 20  # DPM-Solver++ steps of the export check
    vae: VaeTrainConfig = field(default_factory=lambda: VaeTrainConfig.for_world("sounds"))
    vocoder: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)

    @classmethod
    def default(cls, **overrides) -> T2aTrainConfig:
        """The shipped run's settings (32 clips per caption, 256 in all, judged at export), updated by ``overrides``."""
        return cls(**{"steps": 2000, "batch_size": 32, "lr": 1e-3, "ema_decay": 0.998, "check_per_caption": 32, **overrides})


def pretrain_text_encoder(text_encoder, tokenizer, steps: int = 300, lr: float = 3e-3, seed: int = 0) -> float:
    """Spread the 8 captions and the empty caption over 9 directions (cosine classifier); return the
    largest cosine between two different classes afterwards. Stereo captions count as their mono one."""
    mono = [*all_captions(), ""]
    stereo = all_captions(stereo=True)
    texts = mono + stereo
    labels = torch.tensor(list(range(len(mono))) + [mono.index(_mono_caption(t)) for t in stereo])
    tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.nn.Parameter(torch.randn(len(mono), text_encoder.config.projection_dim, generator=generator))
    optimizer = torch.optim.Adam([*text_encoder.parameters(), prototypes], lr=lr)
    for _ in range(steps):
        embeds = F.normalize(text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).text_embeds, dim=-1)
        loss = F.cross_entropy(10.0 * embeds @ F.normalize(prototypes, dim=-1).T, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        embeds = F.normalize(text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).text_embeds, dim=-1)
        cosines = embeds[: len(mono)] @ embeds[: len(mono)].T - 2 * torch.eye(len(mono))
    return float(cosines.max())


def _mono_caption(text: str) -> str:
    found = parse_caption(text)
    return CAPTION_TEMPLATE.format(kind=found["kind"], pitch=found["pitch"])


class LatentPool:
    """VAE posteriors (mean, std) of ``count`` synthesized sounds, with their captions."""

    def __init__(self, vae, seeds: list[int], chunk: int = 64) -> None:
        means, stds, self.captions = [], [], []
        with torch.no_grad():
            for start in range(0, len(seeds), chunk):
                batch = synthesize_batch(seeds[start : start + chunk])
                posterior = vae.encode(batch.inputs.unsqueeze(1)).latent_dist
                means.append(posterior.mean)
                stds.append(posterior.std)
                self.captions += batch.captions
        self.mean, self.std = torch.cat(means), torch.cat(stds)
        self.scaling = vae.config.scaling_factor

    def sample(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        noise = torch.randn(self.mean[indices].shape, generator=generator)
        latents = (self.mean[indices] + self.std[indices] * noise) * self.scaling
        return latents, [self.captions[i] for i in indices.tolist()]


def diffusion_loss(parts: dict, pool: LatentPool, prompts: PromptTable, config: T2aTrainConfig, step: int) -> torch.Tensor:
    """ε-prediction MSE on pooled VAE latents, conditioned on normalised CLAP text embeddings."""
    unet, text_encoder, noise_scheduler = parts["unet"], parts["text_encoder"], parts["scheduler"]
    generator = torch.Generator().manual_seed(config.seed * 7_368_787 + step)
    indices = torch.randint(0, len(pool.captions), (config.batch_size,), generator=generator)
    latents, captions = pool.sample(indices, generator)
    step_input = noised(latents, noise_scheduler, config.uncond_prob, generator)
    with torch.no_grad():  # the text tower is frozen (see the module docstring)
        class_labels = prompts.embed(text_encoder)[prompts.rows(captions, step_input.drop)]
    prediction = unet(step_input.noisy, step_input.timesteps, encoder_hidden_states=None, class_labels=class_labels).sample
    return F.mse_loss(prediction, step_input.noise)


def train_toy_sounds(out_dir: Path, work_dir: Path, config: T2aTrainConfig, resume: bool = False,
                     judges_dir: Path | None = None) -> dict:
    """Train the three stages (resuming each), export the pipeline to ``out_dir`` and judge it."""
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    work_dir = Path(work_dir)
    judge = _load_judge(judges_dir)
    vae_result = reuse_or_run(work_dir, "vae", resume, lambda: train_vae("sounds", work_dir, config.vae, resume), VaeResult)
    vae = AutoencoderKL.from_pretrained(vae_result.folder).eval().requires_grad_(False)
    vocoder_result = reuse_or_run(work_dir, "vocoder", resume,
                                  lambda: train_vocoder(work_dir, vae, config.vocoder, resume, judge), VocoderResult)

    tokenizer = build_roberta_tokenizer(all_captions() + all_captions(stereo=True), work_dir / "tokenizer")
    torch.manual_seed(config.seed)
    unet, text_encoder = components.make_unet("sounds"), components.make_clap_text_encoder(tokenizer)
    max_cosine = pretrain_text_encoder(text_encoder, tokenizer, config.text_pretrain_steps, seed=config.seed)
    logger.info("%s: text tower pretrained; largest cosine between two captions %.3f", NAME, max_cosine)
    text_encoder.eval().requires_grad_(False)
    pool = LatentPool(vae, train_seeds(config.seed, 0, config.pool_clips))
    parts = {"unet": unet, "text_encoder": text_encoder, "scheduler": components.make_training_scheduler("sounds")}
    prompts = PromptTable(tokenizer, all_captions())
    logger.info("%s: UNet %.2fM, text encoder %.2fM params; %d steps of batch %d on %d pooled clips", NAME,
                _count(unet) / 1e6, _count(text_encoder) / 1e6, config.steps, config.batch_size, config.pool_clips)

    unet.train()
    seconds = train_unet(NAME, CheckpointKeeper(work_dir, "t2a", config.checkpoint_every_s), config,
                         {"unet": unet, "text_encoder": text_encoder}, list(unet.parameters()),
                         lambda step: diffusion_loss(parts, pool, prompts, config, step), resume)
    from transformers import SpeechT5HifiGan

    vocoder = SpeechT5HifiGan.from_pretrained(vocoder_result.folder).eval()
    export_pipeline(out_dir, vae, unet.eval(), text_encoder.eval(), tokenizer, vocoder)
    check = quick_check(out_dir, judge, config.check_per_caption, config.check_steps) if config.check_per_caption else {}
    params_count = {"unet": _count(unet), "text_encoder": _count(text_encoder), "vae": _count(vae), "vocoder": _count(vocoder)}
    write_t2a_card(out_dir, config, vae_result, vocoder_result, seconds, check, params_count)
    return check


def _load_judge(judges_dir: Path | None):
    if judges_dir is None or not Path(judges_dir).exists():
        logger.warning("no judges-sounds folder given: the export check will not judge attributes")
        return None
    from pairsynth_train.judges import load_judges

    return load_judges("sounds", judges_dir)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())
