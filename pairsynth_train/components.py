"""Architectures of the zoo's two latent-diffusion pipelines, as diffusers / transformers configs.

One :class:`Architecture` per world (:data:`ARCHITECTURES`) and one builder per part, so the
shapes and sounds pipelines are built by the same code from their own numbers.

- ``toy-shapes`` (Stable Diffusion format). Sizes follow what worked in the feasibility probe
  (32×32 images, 4× VAE, UNet 32/64/96 channels). The text encoder is the pipeline's own small
  ``CLIPTextModel``; it shares nothing with ``toy-shapes-clip``, which judges the generator's output.
- ``toy-sounds`` (AudioLDM format). 1 s at 16 kHz → log-mel (1, 100, 64) → VAE (4× down) → latents
  (8, 25, 16). The UNet is conditioned the AudioLDM way: the pipeline's own CLAP text tower
  (``ClapTextModelWithProjection``) gives one L2-normalised vector per caption, fed as
  ``class_labels`` through ``class_embed_type="simple_projection"`` and concatenated with the time
  embedding; its attention blocks are self-attention (the pipeline passes no ``encoder_hidden_states``).
  The text tower shares nothing with ``toy-sounds-clap``, which judges the generator's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pairsynth.modalities.audioldm_mel import HOP, N_MELS, SAMPLE_RATE
from pairsynth.torch_compat import ensure_torchvision_importable

IMAGE_SIZE = 32
MEL_FRAMES = 100
VAE_DOWN = 4
CLIP_TEXT_HIDDEN = 64  # toy-shapes' text encoder width (its UNet's cross-attention dim)
CLAP_TEXT_HIDDEN = 64  # toy-sounds' text tower width
CLAP_TEXT_PROJECTION = 32  # toy-sounds' text embedding (its UNet's class-embedding input)


def vae_config(channels: int, latent_channels: int, sample_size: int) -> dict:
    """The zoo's ``AutoencoderKL``: three 16/32/64 levels (4× down), one layer each."""
    return {
        "in_channels": channels, "out_channels": channels,
        "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
        "block_out_channels": [16, 32, 64], "layers_per_block": 1, "latent_channels": latent_channels,
        "norm_num_groups": 16, "sample_size": sample_size,
    }


def noise_schedule(beta_start: float, beta_end: float) -> dict:
    """A ``scaled_linear`` ε-prediction β schedule over 1000 steps (the SD / AudioLDM form)."""
    return {"num_train_timesteps": 1000, "beta_start": beta_start, "beta_end": beta_end,
            "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The diffusers configs of one world's pipeline: VAE, UNet, β schedule, sampler extras."""

    vae: dict
    unet: dict
    noise_schedule: dict
    sampling: dict = field(default_factory=dict)  # extra DPMSolverMultistepScheduler arguments


SHAPES = Architecture(
    vae=vae_config(3, 4, IMAGE_SIZE),
    unet={
        "sample_size": IMAGE_SIZE // VAE_DOWN, "in_channels": 4, "out_channels": 4,
        # Three levels (8×8 → 4×4 → 2×2) so that the mid block, with cross-attention, works on a 2×2 map
        # whose cells each touch different borders: zero padding there tells left from right. UNets have
        # no positional embedding; with two levels (48/96) "left"/"right" stayed at chance after 1,300
        # steps (the loss was identical with the side word swapped) while shape and colour were learned.
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [32, 64, 96], "layers_per_block": 1, "cross_attention_dim": CLIP_TEXT_HIDDEN,
        "attention_head_dim": 8, "norm_num_groups": 16,
    },
    noise_schedule=noise_schedule(0.00085, 0.012),  # Stable Diffusion's, so the scheduler config reads as a standard one
    sampling={"steps_offset": 1},
)

SOUNDS = Architecture(
    vae=vae_config(1, 8, MEL_FRAMES),
    unet={
        "sample_size": MEL_FRAMES // VAE_DOWN,  # 25: the pipeline's default length is 25 × 4 × 160 / 16000 = 1 s
        "in_channels": 8, "out_channels": 8,
        # 25×16 → 13×8 → 7×4: the third level costs little and gives attention a whole-clip view
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [32, 64, 64], "layers_per_block": 1,
        "cross_attention_dim": [32, 64, 64],  # attention runs as self-attention: AudioLDM passes no text sequence
        "attention_head_dim": 16, "norm_num_groups": 16,
        "class_embed_type": "simple_projection", "projection_class_embeddings_input_dim": CLAP_TEXT_PROJECTION,
        "class_embeddings_concat": True,
    },
    noise_schedule=noise_schedule(0.0015, 0.0195),  # AudioLDM's own
)

ARCHITECTURES = {"shapes": SHAPES, "sounds": SOUNDS}

# One 160× transposed-conv stage (kernel 320: 50 %-overlapping 20 ms grains) instead of HiFi-GAN's
# four: an overlap-add synthesizer the vocoder trainer can initialise analytically (see
# vocoder_trainer.init_overlap_add), because a HiFi-GAN trained from scratch without a discriminator
# learned nothing usable in 400 CPU steps. It is still a plain SpeechT5HifiGan checkpoint.
VOCODER_CONFIG = {
    "model_in_dim": N_MELS, "sampling_rate": SAMPLE_RATE,
    "upsample_initial_channel": 64,  # one channel per mel bin
    "upsample_rates": [HOP],  # one mel frame → 160 samples
    "upsample_kernel_sizes": [2 * HOP], "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1]],
    "leaky_relu_slope": 0.01, "normalize_before": False,
}


def architecture(world: str) -> Architecture:
    """The pipeline architecture of ``world``; raises naming the known worlds."""
    if world not in ARCHITECTURES:
        raise ValueError(f"unknown world {world!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[world]


def make_vae(world: str):
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    return AutoencoderKL(**architecture(world).vae)


def make_unet(world: str):
    ensure_torchvision_importable()
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**architecture(world).unet)


def make_training_scheduler(world: str):
    ensure_torchvision_importable()
    from diffusers import DDPMScheduler

    return DDPMScheduler(**architecture(world).noise_schedule, clip_sample=False)


def make_sampling_scheduler(world: str):
    """DPM-Solver++ (2nd order) on the training β schedule: good samples in ~15-20 steps."""
    ensure_torchvision_importable()
    from diffusers import DPMSolverMultistepScheduler

    arch = architecture(world)
    return DPMSolverMultistepScheduler(**arch.noise_schedule, algorithm_type="dpmsolver++", solver_order=2, **arch.sampling)


def make_vocoder():
    ensure_torchvision_importable()  # transformers' modeling imports reach torchvision
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**VOCODER_CONFIG))


def make_clip_text_encoder(tokenizer):
    """toy-shapes: a 2-layer CLIP text transformer sized to the tokenizer's vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=CLIP_TEXT_HIDDEN, intermediate_size=4 * CLIP_TEXT_HIDDEN,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def make_clap_text_encoder(tokenizer):
    """toy-sounds: a 2-layer CLAP (RoBERTa) text tower with a 32-d projection, sized to the tokenizer."""
    ensure_torchvision_importable()
    from transformers import ClapTextModelWithProjection

    return ClapTextModelWithProjection(clap_text_config(tokenizer, CLAP_TEXT_HIDDEN, 2, CLAP_TEXT_PROJECTION))


def clap_text_config(tokenizer, hidden: int, layers: int, projection_dim: int):
    """A small ``ClapTextConfig`` whose ids match a RoBERTa-format tokenizer."""
    ensure_torchvision_importable()
    from transformers import ClapTextConfig

    return ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=2 * hidden, max_position_embeddings=tokenizer.model_max_length + 2,
        type_vocab_size=1, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, projection_dim=projection_dim, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
