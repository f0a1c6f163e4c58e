"""Architectures of the ``toy-shapes`` Stable-Diffusion-format pipeline, as diffusers configs.

Sizes follow what worked in the feasibility probe (32×32 images, 4× VAE, UNet 48/96 channels).
The text encoder is the pipeline's own small ``CLIPTextModel``, trained with the UNet; it shares
nothing with ``toy-shapes-clip``, which judges the generator's output.
"""

from __future__ import annotations

from pairsynth.torch_compat import ensure_torchvision_importable

IMAGE_SIZE = 32
LATENT_SIZE = 8
TEXT_HIDDEN = 64

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 16,
    "sample_size": IMAGE_SIZE,
}

UNET_CONFIG = {
    "sample_size": LATENT_SIZE,
    "in_channels": 4,
    "out_channels": 4,
    # Three levels (8×8 → 4×4 → 2×2) so that the mid block, with cross-attention, works on a 2×2 map
    # whose cells each touch different borders: zero padding there tells left from right. UNets have
    # no positional embedding; with two levels (48/96) "left"/"right" stayed at chance after 1,300
    # steps (the loss was identical with the side word swapped) while shape and colour were learned.
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64, 96],
    "layers_per_block": 1,
    "cross_attention_dim": TEXT_HIDDEN,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}

# Same β schedule as Stable Diffusion, so the exported scheduler config reads as a standard one.
NOISE_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}


def make_vae():
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def make_unet():
    ensure_torchvision_importable()
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def make_text_encoder(tokenizer):
    """A 2-layer CLIP text transformer sized to the tokenizer's vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def make_training_scheduler():
    ensure_torchvision_importable()
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE, clip_sample=False)


def make_sampling_scheduler():
    """DPM-Solver++ (2nd order) on the training β schedule: good samples in ~15-20 steps."""
    ensure_torchvision_importable()
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**NOISE_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, steps_offset=1)
