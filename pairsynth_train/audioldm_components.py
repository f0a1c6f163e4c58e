"""Architectures of the ``toy-sounds`` AudioLDM-format pipeline, as diffusers / transformers configs.

Shapes: 1 s at 16 kHz → log-mel (1, 100, 64) → VAE (4× down) → latents (8, 25, 16). The UNet is
conditioned the AudioLDM way: the pipeline's own CLAP text tower (``ClapTextModelWithProjection``)
gives one L2-normalised vector per caption, fed as ``class_labels`` through
``class_embed_type="simple_projection"`` and concatenated with the time embedding; its attention
blocks are self-attention (the pipeline passes no ``encoder_hidden_states``). The text tower shares
nothing with ``toy-sounds-clap``, which judges the generator's output.
"""

from __future__ import annotations

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.modalities.audioldm_mel import HOP, N_MELS, SAMPLE_RATE

MEL_FRAMES = 100
VAE_DOWN = 4
LATENT_CHANNELS = 8
TEXT_HIDDEN = 64
TEXT_PROJECTION = 32

VAE_CONFIG = {
    "in_channels": 1,
    "out_channels": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "latent_channels": LATENT_CHANNELS,
    "norm_num_groups": 16,
    "sample_size": MEL_FRAMES,
}

UNET_CONFIG = {
    "sample_size": MEL_FRAMES // VAE_DOWN,  # 25: the pipeline's default length is 25 × 4 × 160 / 16000 = 1 s
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    # 25×16 → 13×8 → 7×4: the third level costs little and gives attention a whole-clip view
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "cross_attention_dim": [32, 64, 64],  # attention runs as self-attention: AudioLDM passes no text sequence
    "attention_head_dim": 16,
    "norm_num_groups": 16,
    "class_embed_type": "simple_projection",
    "projection_class_embeddings_input_dim": TEXT_PROJECTION,
    "class_embeddings_concat": True,
}

# One 160× transposed-conv stage (kernel 320: 50 %-overlapping 20 ms grains) instead of HiFi-GAN's
# four: an overlap-add synthesizer the vocoder trainer can initialise analytically (see
# vocoder_trainer.init_overlap_add), because a HiFi-GAN trained from scratch without a discriminator
# learned nothing usable in 400 CPU steps. It is still a plain SpeechT5HifiGan checkpoint.
VOCODER_CONFIG = {
    "model_in_dim": N_MELS,
    "sampling_rate": SAMPLE_RATE,
    "upsample_initial_channel": 64,  # one channel per mel bin
    "upsample_rates": [HOP],  # one mel frame → 160 samples
    "upsample_kernel_sizes": [2 * HOP],
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1]],
    "leaky_relu_slope": 0.01,
    "normalize_before": False,
}

# AudioLDM's own β schedule (scaled_linear 0.0015 → 0.0195), so the scheduler config reads as a standard one.
NOISE_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0015,
    "beta_end": 0.0195,
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


def make_vocoder():
    ensure_torchvision_importable()  # transformers' modeling imports reach torchvision
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**VOCODER_CONFIG))


def make_text_encoder(tokenizer):
    """A 2-layer CLAP (RoBERTa) text tower with a 32-d projection, sized to the tokenizer."""
    ensure_torchvision_importable()
    from transformers import ClapTextModelWithProjection

    return ClapTextModelWithProjection(clap_text_config(tokenizer, TEXT_HIDDEN, 2, TEXT_PROJECTION))


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


def make_training_scheduler():
    ensure_torchvision_importable()
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE, clip_sample=False)


def make_sampling_scheduler():
    """DPM-Solver++ (2nd order) on the training β schedule: good samples in ~20 steps."""
    ensure_torchvision_importable()
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**NOISE_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2)
