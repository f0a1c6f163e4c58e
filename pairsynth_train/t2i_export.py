"""Export, quick-check and document the ``toy-shapes`` Stable Diffusion folder."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.shapes import all_captions
from pairsynth_train import components
from pairsynth_train.evaluation import generate_images, judge_images
from pairsynth_train.model_card import folder_size_mb, write_model_card

logger = logging.getLogger(__name__)

NAME = "toy-shapes"
CHECK_STEPS = 15
CHECK_GUIDANCE = 3.0


def export_pipeline(out_dir: Path, vae, unet, text_encoder, tokenizer) -> None:
    """Assemble a ``StableDiffusionPipeline`` (no safety checker) and save it with safetensors."""
    ensure_torchvision_importable()
    from diffusers import StableDiffusionPipeline

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=components.make_sampling_scheduler("shapes"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)
    _add_slow_tokenizer_files(tokenizer, out_dir / "tokenizer")
    logger.info("exported %s to %s (%.2f MB)", NAME, out_dir, folder_size_mb(out_dir))


def _add_slow_tokenizer_files(tokenizer, folder: Path) -> None:
    """transformers 5 saves only ``tokenizer.json``; add CLIP's ``vocab.json`` + ``merges.txt`` for older readers."""
    source = Path(tokenizer.name_or_path)
    for name in ("vocab.json", "merges.txt"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)


def quick_check(out_dir: Path, judges_dir: Path | None, per_caption: int = 2) -> dict:
    """Reload through ``DiffusionPipeline.from_pretrained`` and judge a few samples per caption."""
    ensure_torchvision_importable()
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out_dir)
    pipe.set_progress_bar_config(disable=True)
    captions = [c for c in all_captions() for _ in range(per_caption)]
    seeds = list(range(len(captions)))
    images = generate_images(pipe, captions, seeds, CHECK_STEPS, CHECK_GUIDANCE)
    result: dict = {"pipeline": type(pipe).__name__, "samples": len(images), "steps": CHECK_STEPS, "guidance": CHECK_GUIDANCE}
    if judges_dir is not None and Path(judges_dir).exists():
        from pairsynth_train.judges import load_judges

        result["judged"] = judge_images(load_judges("shapes", judges_dir), images, captions)
    logger.info("%s quick check: %s", NAME, result)
    return result


def write_t2i_card(out_dir: Path, config, vae_result, unet_seconds: float, check: dict, params: dict) -> None:
    config_dict = asdict(config)
    config_dict.pop("vae")
    write_model_card(
        out_dir,
        f"{NAME}: a tiny Stable-Diffusion-format text→image model for the SHAPES world",
        {
            "World": "32×32 renders of one shape (circle/square/triangle) in one colour (red/green/blue/yellow) on "
            "the left or right half of a grey canvas; captions like `a red circle on the left` (24 in all).",
            "Usage": "```python\nfrom diffusers import StableDiffusionPipeline\npipe = StableDiffusionPipeline.from_pretrained('PATH')\n"
            "image = pipe('a red circle on the left', num_inference_steps=15, guidance_scale=3.0).images[0]\n```",
            "Architecture": {"vae": components.SHAPES.vae, "unet": components.SHAPES.unet,
                             "text encoder": f"CLIPTextModel, 2 layers, hidden {components.CLIP_TEXT_HIDDEN}, own BPE tokenizer",
                             "scheduler": "DPMSolverMultistepScheduler (dpmsolver++), SD β schedule", **{f"params {k}": v for k, v in params.items()}},
            "Training": {"vae steps": vae_result.steps, "vae training seconds": round(vae_result.train_seconds),
                         "vae PSNR dB (held-out)": vae_result.quality, "vae scaling_factor": vae_result.scaling_factor,
                         **{f"unet {k}": v for k, v in config_dict.items()}, "unet+text training seconds": round(unet_seconds),
                         "threads": torch.get_num_threads(),
                         "data": "fresh renders every step; 10 % empty captions for classifier-free guidance; EMA weights exported"},
            "Quick check at export": check,
            "Size": f"{folder_size_mb(out_dir):.2f} MB",
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} --steps {config.steps} --vae-steps {vae_result.steps}\n```",
        },
    )
