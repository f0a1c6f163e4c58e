"""Train ``toy-digits``: a tiny Stable-Diffusion-format text→image model of handwritten digits.

It sees only the *pixels* of the train half of scikit-learn's 1,797 real digits (the issue-16
split: 50 % stratified test split, ``random_state=0``), never a label and never a test image:
every training image carries the one caption ``a handwritten digit``. That is DA-Fusion's setting
(a diffusion model pretrained on images it was never told the classes of), so class-faithful
variations must come from the few labeled images themselves (SDEdit via ``pairsynth vary``).

Images are 8×8 with 17 grey levels; they become 32×32 RGB, dark ink on white, by nearest-neighbour
upsampling, so that :func:`to_digits` (4×4 mean) inverts :func:`to_pixels` exactly and the
pipeline has toy-shapes' shapes (32×32 images, 8×8×4 latents, one latent cell per digit pixel).
Stage 1 trains a small VAE on those images, stage 2 the toy-shapes UNet on their (mode) latents,
precomputed once, with a frozen random text encoder. Both stages checkpoint and resume.

Run: ``OMP_NUM_THREADS=1 python -m pairsynth_train.digits --out pairsynth/zoo/weights/toy-digits``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.zoo.tokenizer import build_clip_tokenizer
from pairsynth_train import components
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.runlog import configure_run_logging
from pairsynth_train.t2i_export import export_pipeline
from pairsynth_train.vae_trainer import VaeTrainConfig, vae_loss

logger = logging.getLogger(__name__)

NAME = "toy-digits"
CAPTION = "a handwritten digit"
SPLIT_SEED = 0
TEST_FRACTION = 0.5
SCALE = 4  # 8×8 digits → 32×32 pixels
REPO_ROOT = Path(__file__).resolve().parents[1]

# Half toy-shapes' VAE widths: the 8×8 → 32×32 nearest upsampling leaves one latent cell per digit
# pixel, an easy code, and the machine has one core to spare.
VAE_CONFIG = {**components.SHAPES.vae, "block_out_channels": [8, 16, 32], "norm_num_groups": 8}


@dataclass(kw_only=True)
class DigitsSplit:
    """The issue-16 split: 8×8 images with values 0..16 (ink), and their labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def digits_split(seed: int = SPLIT_SEED) -> DigitsSplit:
    """scikit-learn's digits, split 50/50 stratified by class with a fixed seed (898 train / 899 test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=TEST_FRACTION, stratify=digits.target, random_state=seed)
    return DigitsSplit(train_images=x_train, train_labels=y_train, test_images=x_test, test_labels=y_test)


def to_pixels(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """8×8 digits (0..16 ink) → (N, 3, 32, 32) pixels in [-1, 1], dark ink on white."""
    ink = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return (F.interpolate(1.0 - ink, scale_factor=SCALE, mode="nearest") * 2 - 1).repeat(1, 3, 1, 1)


def to_digits(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, 32, 32) pixels in [-1, 1] → (N, 8, 8) ink in [0, 16]: the exact inverse of :func:`to_pixels`."""
    grey = ((pixels.clamp(-1, 1) + 1) / 2).mean(1, keepdim=True)
    return ((1.0 - F.avg_pool2d(grey, SCALE)) * 16.0)[:, 0]


@dataclass(kw_only=True)
class DigitsTrainConfig:
    vae_steps: int = 600
    vae_batch_size: int = 32
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    unet_steps: int = 2000
    schedule_steps: int | None = None  # length of the LR schedule when a run stops before its end (default unet_steps)
    batch_size: int = 32
    lr: float = 6e-4
    warmup: int = 100
    weight_decay: float = 0.01
    uncond_prob: float = 0.1
    ema_decay: float = 0.998
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every_s: float = 120.0


def _batch_rows(count: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Rows of one step's batch, reproducible from (seed, step) so resumed runs see the same data."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, count, (batch_size,), generator=generator)


def train_vae_stage(work_dir: Path, pixels: torch.Tensor, config: DigitsTrainConfig, resume: bool):
    """Stage 1: the VAE, saved with its latent scaling factor to ``work_dir/vae``."""
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    folder = work_dir / "vae"
    record = work_dir / "vae_result.json"
    if resume and record.exists() and folder.exists():
        logger.info("reusing finished VAE stage: %s", record.read_text())
        return AutoencoderKL.from_pretrained(folder).eval().requires_grad_(False), json.loads(record.read_text())
    torch.manual_seed(config.seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    optimizer, schedule = adamw_with_cosine(vae.parameters(), config.vae_lr, config.vae_steps, 50)
    trainee = Trainee(parts={"vae": vae}, optimizer=optimizer, schedule=schedule)
    # the shared VAE loss, as this model was trained: L1 + MSE on the posterior mode, plus the KL term
    vae_settings = VaeTrainConfig(steps=config.vae_steps, batch_size=config.vae_batch_size, lr=config.vae_lr,
                                  eval_count=0, decode="mode", mse_weight=1.0, kl_weight=config.kl_weight)

    def loss_fn(step: int) -> torch.Tensor:
        return vae_loss(vae, pixels[_batch_rows(len(pixels), config.vae_batch_size, config.seed, step)], vae_settings, None)

    vae.train()
    seconds = run_steps("vae", trainee, loss_fn, config.vae_steps, CheckpointKeeper(work_dir, "vae", config.checkpoint_every_s), resume)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(128)])
        decoded = torch.cat([vae.decode(chunk).sample for chunk in latents.split(128)])
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(folder, safe_serialization=True)
    mse = F.mse_loss((decoded.clamp(-1, 1) + 1) / 2, (pixels + 1) / 2).item()
    digit_error = (to_digits(decoded) - to_digits(pixels)).abs().mean().item()
    result = {"steps": config.vae_steps, "seconds": round(seconds), "psnr_db": 10 * math.log10(1 / max(mse, 1e-12)),
              "mean_abs_error_0_16": digit_error, "scaling_factor": scaling}
    record.write_text(json.dumps(result), encoding="utf-8")
    logger.info("vae: %s", result)
    return vae, result


def train_toy_digits(out_dir: Path, work_dir: Path, config: DigitsTrainConfig, resume: bool = False) -> dict:
    """Train both stages on the train half's pixels (resuming each), export to ``out_dir``, write the card."""
    ensure_torchvision_importable()
    from diffusers.training_utils import EMAModel

    work_dir = Path(work_dir)
    split = digits_split()
    pixels = to_pixels(split.train_images)  # labels are never read below
    vae, vae_result = train_vae_stage(work_dir, pixels, config, resume)
    with torch.no_grad():
        latents = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(128)]) * vae.config.scaling_factor

    tokenizer = build_clip_tokenizer(CAPTION.split(), work_dir / "tokenizer")
    torch.manual_seed(config.seed)
    unet, text_encoder = components.make_unet("shapes"), components.make_clip_text_encoder(tokenizer)
    text_encoder.requires_grad_(False).eval()  # frozen at its random init, as toy-shapes' is
    ids = tokenizer([CAPTION, ""], padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden_states = text_encoder(ids)[0]  # (2, 77, hidden): the caption and the empty caption
    ema = EMAModel(list(unet.parameters()), decay=config.ema_decay)
    optimizer, schedule = adamw_with_cosine(list(unet.parameters()), config.lr, config.schedule_steps or config.unet_steps,
                                          config.warmup, config.weight_decay)
    trainee = Trainee(parts={"unet": unet, "ema": ema}, optimizer=optimizer, schedule=schedule,
                      grad_clip=config.grad_clip, params=list(unet.parameters()))
    noise_scheduler = components.make_training_scheduler("shapes")

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 7_368_787 + step)
        batch = latents[_batch_rows(len(latents), config.batch_size, config.seed + 1, step)]
        noise = torch.randn(batch.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(batch),), generator=generator)
        drop = (torch.rand(len(batch), generator=generator) < config.uncond_prob).long()
        return F.mse_loss(unet(noise_scheduler.add_noise(batch, noise, timesteps), timesteps, hidden_states[drop]).sample, noise)

    logger.info("%s: %d train-half images (no labels); UNet %.2fM params; %d steps of batch %d", NAME, len(pixels),
                _count(unet) / 1e6, config.unet_steps, config.batch_size)
    unet.train()
    seconds = run_steps(NAME, trainee, loss_fn, config.unet_steps, CheckpointKeeper(work_dir, "t2i", config.checkpoint_every_s),
                        resume, after_step=lambda step: ema.step(unet.parameters()))
    ema.copy_to(unet.parameters())
    export_pipeline(out_dir, vae, unet.eval(), text_encoder, tokenizer)
    check = quick_check(out_dir, split)
    _write_card(out_dir, config, vae_result, seconds, check, {"unet": _count(unet), "text_encoder": _count(text_encoder), "vae": _count(vae)})
    return check


@torch.no_grad()
def quick_check(out_dir: Path, split: DigitsSplit, count: int = 64) -> dict:
    """Sample ``count`` digits and say how close they sit to the train half vs the test half.

    A model that memorised its 898 images puts samples much nearer the train half than the test
    half; one that learned the distribution puts them about equally near both.
    """
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out_dir)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    images = pipe([CAPTION] * count, num_inference_steps=20, guidance_scale=1.0, generator=generator, output_type="pt").images
    samples = to_digits(images * 2 - 1).reshape(count, -1)

    def nearest(reference: np.ndarray) -> float:
        return float(torch.cdist(samples, torch.as_tensor(reference, dtype=torch.float32).reshape(len(reference), -1)).min(1).values.mean())

    result = {"samples": count, "steps": 20, "guidance": 1.0,
              "mean L2 to nearest train-half image": nearest(split.train_images),
              "mean L2 to nearest test-half image": nearest(split.test_images),
              "test-half image to its nearest other test image": _within_nearest(split.test_images)}
    logger.info("%s quick check: %s", NAME, result)
    return result


def _within_nearest(images: np.ndarray) -> float:
    points = torch.as_tensor(images, dtype=torch.float32).reshape(len(images), -1)
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(float("inf"))
    return float(distances.min(1).values.mean())


def _write_card(out_dir: Path, config: DigitsTrainConfig, vae_result: dict, unet_seconds: float, check: dict, params: dict) -> None:
    write_model_card(
        out_dir,
        f"{NAME}: a tiny Stable-Diffusion-format text→image model of handwritten digits",
        {
            "What it saw": "Only the pixels of the **train half** of scikit-learn's `load_digits()` (898 of 1,797 real 8×8 "
            "handwritten digits; split with `train_test_split(test_size=0.5, stratify=target, random_state=0)`, the "
            "split of issue 16's benchmark). **No labels**: every image was trained with the one caption "
            f"`{CAPTION}` (or the empty caption, 10 %, for classifier-free guidance). **No test-half image.** The "
            "few labeled images a few-shot benchmark draws come from the same train half; the model saw their "
            "pixels, never their classes (semi-supervised, as DA-Fusion's Stable Diffusion saw images without "
            "the benchmark's labels). The VAE saw the same 898 images.",
            "Pixels": "8×8 digits (0..16 ink) → 32×32 RGB, dark ink on white, nearest-neighbour ×4; a 4×4 mean "
            "inverts it exactly (`pairsynth_train.digits.to_digits`).",
            "Usage": "```python\nfrom diffusers import StableDiffusionImg2ImgPipeline\n"
            "pipe = StableDiffusionImg2ImgPipeline.from_pretrained('PATH')\n"
            f"variation = pipe('{CAPTION}', image=digit_32px, strength=0.5, num_inference_steps=20, guidance_scale=1.0).images[0]\n```\n"
            "or `pairsynth vary IMAGES --model toy-digits --strength 0.5`. It knows no classes: ask for variations of a "
            "labeled image (SDEdit), not for a given digit.",
            "Architecture": {"vae": VAE_CONFIG, "unet": components.SHAPES.unet,
                             "text encoder": f"CLIPTextModel, 2 layers, hidden {components.CLIP_TEXT_HIDDEN}, frozen at random init, own BPE tokenizer",
                             "scheduler": "DPMSolverMultistepScheduler (dpmsolver++), SD β schedule",
                             **{f"params {k}": v for k, v in params.items()}},
            "Training": {**{f"vae {k}": v for k, v in vae_result.items()}, **asdict(config),
                         "unet training seconds": round(unet_seconds), "threads": torch.get_num_threads(),
                         "data": "UNet trained on the VAE's mode latents of the 898 images, precomputed; EMA weights exported"},
            "Quick check at export (8×8 ink units, L2 over 64 pixels)": check,
            "Size": f"{folder_size_mb(out_dir):.2f} MB",
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train.digits --out pairsynth/zoo/weights/{NAME} "
            f"--vae-steps {config.vae_steps} --steps {config.unet_steps}"
            + (f" --schedule-steps {config.schedule_steps}" if config.schedule_steps else "") + "\n```",
        },
    )


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pairsynth_train.digits", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="export folder")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / ".zoo_runs" / NAME)
    parser.add_argument("--steps", type=int, default=None, help="UNet steps")
    parser.add_argument("--vae-steps", type=int, default=None)
    parser.add_argument("--schedule-steps", type=int, default=None,
                        help="LR schedule length, when stopping a run early at --steps (resume, then export)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoints in --work-dir")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    config = DigitsTrainConfig()
    config.unet_steps = args.steps or config.unet_steps
    config.vae_steps = args.vae_steps or config.vae_steps
    config.schedule_steps = args.schedule_steps
    log_path = configure_run_logging(args.work_dir, NAME)
    logger.info("training %s → %s (work dir %s, log %s, %d threads)", NAME, args.out, args.work_dir, log_path, args.threads)
    train_toy_digits(args.out, args.work_dir, config, resume=args.resume)


if __name__ == "__main__":
    main()
