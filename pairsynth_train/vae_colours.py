"""Stage 1c of ``toy-shapes``: widen the VAE to colours the world never draws, keeping its latent space.

Why: learn-concept teaches the UNet a new word, but it can only draw what the VAE can decode. The
shipped VAE saw the world's four colours only, and it encodes a purple circle as a blue or red blob
(3 of 10 purple renders came back purple-hued, none of them round). Stable Diffusion's VAE has seen
every colour; this stage gives the toy one the same property.

How: fine-tune the shipped VAE on a mix of the world's renders and renders filled with random RGB
colours, with an *anchor* term holding the encoder's latents of the world's renders where they were.
The UNet was trained on those latents, so toy-shapes keeps drawing what it drew, and the
``scaling_factor`` is kept. The random colours cover every hue: a first run that never drew purple
hues (250–325°) left the VAE unable to decode purple at all (0 of 10 purple renders came back
purple), so, as Stable Diffusion's VAE, this one sees all colours; the text encoder and UNet, which
a concept teaches, never see purple.

    OMP_NUM_THREADS=1 python -m pairsynth_train.vae_colours --vae pairsynth/zoo/weights/toy-shapes/vae \\
        --work /tmp/vae-colours --steps 800 [--resume]
"""

from __future__ import annotations

import argparse
import colorsys
import copy
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world import shapes
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, render_batch, train_seeds
from pairsynth_train.loop import TrainConfig, Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.vae_trainer import _psnr

logger = logging.getLogger(__name__)

PURPLE_HUES = (250.0, 325.0)
"""What ``--hold-out-purple`` keeps out of the random colours (the failed first run)."""


@dataclass(kw_only=True)
class ColourStageConfig(TrainConfig):
    steps: int = 800
    batch_size: int = 32  # half world renders, half random colours
    lr: float = 3e-4
    anchor_weight: float = 4.0  # MSE between new and shipped latents of world renders
    held_out_hues: tuple[float, float] | None = None  # hues never drawn (degrees)
    warmup: int = 50


def random_fill(rng: random.Random, held_out: tuple[float, float] | None = None) -> tuple[int, int, int]:
    """A saturated RGB colour of any hue (outside ``held_out``, in degrees)."""
    while True:
        hue = rng.uniform(0.0, 360.0)
        if held_out is None or not held_out[0] <= hue <= held_out[1]:
            break
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.45, 1.0), rng.uniform(0.5, 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def colour_batch(seeds: list[int], held_out: tuple[float, float] | None = None) -> torch.Tensor:
    """World scenes (shape, size, place, background) of ``seeds``, each filled with a random colour; [-1, 1]."""
    images = []
    for seed in seeds:
        rng = random.Random(seed * 7919 + 17)
        scene = shapes.sample_scene(rng)
        images.append(np.asarray(shapes.render(scene, fill=random_fill(rng, held_out)), dtype=np.float32))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0


def _reconstruction(vae, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 + MSE reconstruction loss of the posterior mode, the mode latents)."""
    latents = vae.encode(inputs).latent_dist.mode()
    out = vae.decode(latents).sample
    return F.l1_loss(out, inputs) + F.mse_loss(out, inputs), latents


@torch.no_grad()
def measure(vae, shipped, count: int = 256) -> dict[str, float]:
    """Held-out PSNR on world and random-colour renders, and how far world latents moved."""
    world = render_batch(eval_seeds(count)).inputs
    colours = colour_batch(eval_seeds(count, offset=10_000))
    new, old = vae.encode(world).latent_dist.mode(), shipped.encode(world).latent_dist.mode()
    return {"world_psnr": _psnr(vae.decode(new).sample, world),
            "colour_psnr": _psnr(vae.decode(vae.encode(colours).latent_dist.mode()).sample, colours),
            "latent_drift": float((new - old).norm() / old.norm())}


def widen_colours(vae_dir: Path, work_dir: Path, config: ColourStageConfig, resume: bool = False) -> dict[str, float]:
    """Fine-tune the VAE in ``vae_dir``; save it to ``work_dir/vae-colours``; return its measurements."""
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    torch.manual_seed(config.seed)
    shipped = AutoencoderKL.from_pretrained(vae_dir).eval().requires_grad_(False)
    vae = copy.deepcopy(shipped).train().requires_grad_(True)
    before = measure(shipped, shipped)
    logger.info("shipped VAE: %s", before)
    optimizer, schedule = adamw_with_cosine(vae.parameters(), config.lr, config.steps, config.warmup)
    trainee = Trainee(parts={"vae": vae}, optimizer=optimizer, schedule=schedule, grad_clip=1.0,
                      params=list(vae.parameters()))
    half = config.batch_size // 2

    def loss_fn(step: int) -> torch.Tensor:
        seeds = train_seeds(config.seed, 2_000_000 + step, half)
        world = render_batch(seeds).inputs
        world_loss, latents = _reconstruction(vae, world)
        colour_loss, _ = _reconstruction(vae, colour_batch(seeds, config.held_out_hues))
        with torch.no_grad():
            anchor = shipped.encode(world).latent_dist.mode()
        return world_loss + colour_loss + config.anchor_weight * F.mse_loss(latents, anchor)

    work_dir.mkdir(parents=True, exist_ok=True)
    keeper = CheckpointKeeper(work_dir, "vae_colours", config.checkpoint_every_s)
    seconds = run_steps("shapes-vae-colours", trainee, loss_fn, config.steps, keeper, resume, log_every=25)
    vae.eval()
    after = {**measure(vae, shipped), "seconds": round(seconds, 1), "steps": config.steps}
    logger.info("widened VAE: %s (shipped %s)", after, before)
    vae.save_pretrained(work_dir / "vae-colours", safe_serialization=True)
    return {**after, **{f"shipped_{k}": v for k, v in before.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, required=True, help="the VAE folder to widen (toy-shapes/vae)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=ColourStageConfig.steps)
    parser.add_argument("--anchor-weight", type=float, default=ColourStageConfig.anchor_weight)
    parser.add_argument("--hold-out-purple", action="store_true", help=f"never draw hues {PURPLE_HUES}")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = replace(ColourStageConfig(), steps=args.steps, anchor_weight=args.anchor_weight,
                     held_out_hues=PURPLE_HUES if args.hold_out_purple else None)
    print(widen_colours(args.vae, args.work, config, resume=args.resume))


if __name__ == "__main__":
    main()
