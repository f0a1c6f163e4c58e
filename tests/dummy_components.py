"""Tiny random-weight models built from configs, saved, and loaded back through the public paths.

Like diffusers' ``get_dummy_components()``: every component after ``torch.manual_seed(0)``, a few
channels wide, so a pipeline call takes a fraction of a second. Nothing is downloaded: the
tokenizer is trained locally (:func:`pairsynth.zoo.tokenizer.build_clip_tokenizer`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.shapes import world_words
from pairsynth.zoo.tokenizer import build_clip_tokenizer

EXTRA_WORDS = ["a", "photo", "of", "cat", "dog", "bird", "car", "house", "tree"]


TINY_UNET = dict(
    block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=4, norm_num_groups=4,
)


def save_tiny_sd_pipeline(folder: Path) -> Path:
    """A ``StableDiffusionPipeline`` folder with 32x32 output, loadable by ``from_pretrained``."""
    ensure_torchvision_importable()
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = build_clip_tokenizer(world_words() + EXTRA_WORDS, folder / "_tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**TINY_UNET, cross_attention_dim=16)
    vae = _tiny_vae()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(folder / "sd")
    return folder / "sd"


def save_tiny_sdxl_pipeline(folder: Path) -> Path:
    """A ``StableDiffusionXLPipeline`` folder (two text encoders, pooled embeddings, size conditioning)."""
    ensure_torchvision_importable()
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_clip_tokenizer(world_words() + EXTRA_WORDS, folder / "_tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # cross attention over both encoders (16 + 16); pooled 16 + 6 size ids × 4
        **TINY_UNET, cross_attention_dim=32, use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=4, projection_class_embeddings_input_dim=16 + 6 * 4,
    )
    vae = _tiny_vae()
    config = _tiny_text_config(tokenizer, projection_dim=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipeline = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)
    pipeline.save_pretrained(folder / "sdxl")
    return folder / "sdxl"


def _tiny_vae():
    """A 3-level VAE: 32x32 images ↔ 8x8x4 latents."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, sample_size=32,
    )


def _tiny_text_config(tokenizer, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra,
    )


def save_tiny_open_clip(folder: Path) -> Path:
    """An open_clip ``local-dir:`` folder (config + safetensors + tokenizer) with random weights."""
    ensure_torchvision_importable()
    import open_clip
    from safetensors.torch import save_file

    target = folder / "clip"
    tokenizer = build_clip_tokenizer(world_words() + EXTRA_WORDS, target)
    config = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": len(tokenizer), "width": 16, "heads": 2,
                         "layers": 1, "hf_tokenizer_name": "local-dir"},
        },
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    (target / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = open_clip.CLIP(**{k: v for k, v in config["model_cfg"].items()})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, target / "open_clip_model.safetensors")
    return target
