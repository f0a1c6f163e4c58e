"""Stage 1c: widen a world's VAE to what the world never draws, keeping its latent space.

Why: learn-concept teaches the UNet a new word, but it can only make what the VAE can decode. The
shipped VAEs saw their world only: ``toy-shapes``' encoded a purple circle as a blue or red blob
(3 of 10 purple renders came back purple-hued, none of them round), and ``toy-sounds``' flattens
a vibrato (19 % of real warbles fail ``benchmarks/concepts.py``'s warble check after it, none after
the vocoder alone). Stable Diffusion's and AudioLDM's VAEs have seen every colour and every pitch
contour; this stage gives the toys the same property. ``toy-shapes`` ships its widened VAE;
``toy-sounds`` ships a decoder widened with ``--decoder-only --generated-anchor 256`` (two rounds; a whole widened
VAE, and a decoder widened without the generated anchor, lowered the zoo's toy-CLAP retrieval of
the UNet's own clips under its bar: 0.847 and 0.872 < 0.90; see the model card).

How: fine-tune the shipped VAE on a mix of the world's own items and *wide* items, with an *anchor*
term holding the encoder's latents of the world's items where they were. The UNet was trained on
those latents, so the model keeps making what it made, and the ``scaling_factor`` is kept.
- shapes: the world's scenes filled with random RGB colours of every hue. A first run that never
  drew purple hues (250–325°, ``--hold-out-purple``) left the VAE unable to decode purple at all
  (0 of 10 purple renders came back purple), so, as Stable Diffusion's VAE, this one sees all colours.
- sounds: harmonic tones whose pitch follows a random contour (a glide of up to ±1.5 octaves plus
  a vibrato of random rate and depth, from none to 0.5 octave), at any pitch the mel covers.
The text encoders and UNets, which a concept teaches, never see these items.

    OMP_NUM_THREADS=1 python -m pairsynth_train.vae_widen --world shapes \\
        --vae pairsynth/zoo/weights/toy-shapes/vae --work /tmp/vae-widen --steps 800 [--resume]
"""

from __future__ import annotations

import argparse
import colorsys
import copy
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.modalities.audioldm_mel import log_mel, waveforms_to_tensor
from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world import shapes, sounds
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, train_seeds
from pairsynth_train.loop import TrainConfig, Trainee, run_steps
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.vae_trainer import VAE_WORLDS, VaeTrainConfig, vae_loss_and_means

logger = logging.getLogger(__name__)

PURPLE_HUES = (250.0, 325.0)
"""What ``--hold-out-purple`` keeps out of the random colours (the failed first run)."""


@dataclass(kw_only=True)
class WidenConfig(TrainConfig):
    steps: int = 800
    batch_size: int = 32  # half the world's items, half wide ones
    lr: float = 3e-4
    anchor_weight: float = 4.0  # MSE between new and shipped latents of the world's items
    held_out_hues: tuple[float, float] | None = None  # shapes: hues never drawn (degrees)
    warmup: int = 50
    eval_count: int = 256  # held-out items of each kind measured before and after
    decoder_only: bool = False  # freeze the encoder: the world's latents stay exactly where they were
    generated_anchor: int = 0  # sounds, decoder only: latents the shipped pipeline generates, decoded as before
    generated_weight: float = 1.0
    generated_eval: int = 64  # held-out generated latents measured before and after


# ------------------------------------------------------------------------------------- wide items
def random_fill(rng: random.Random, held_out: tuple[float, float] | None = None) -> tuple[int, int, int]:
    """A saturated RGB colour of any hue (outside ``held_out``, in degrees)."""
    while True:
        hue = rng.uniform(0.0, 360.0)
        if held_out is None or not held_out[0] <= hue <= held_out[1]:
            break
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.45, 1.0), rng.uniform(0.5, 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def colour_batch(seeds: list[int], config: WidenConfig) -> torch.Tensor:
    """World scenes (shape, size, place, background) of ``seeds``, each filled with a random colour; [-1, 1]."""
    images = []
    for seed in seeds:
        rng = random.Random(seed * 7919 + 17)
        scene = shapes.sample_scene(rng)
        images.append(np.asarray(shapes.render(scene, fill=random_fill(rng, config.held_out_hues)), dtype=np.float32))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0


def contour_tone(rng: random.Random) -> np.ndarray:
    """A harmonic tone (the world's timbre and fades) whose log-pitch glides and wobbles at random."""
    rate = sounds.SAMPLE_RATE
    t = np.arange(int(rate * sounds.DURATION_S)) / rate
    onset, duration = rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.9)
    local = t - onset
    centre = math.exp(rng.uniform(math.log(150.0), math.log(3000.0)))
    glide = rng.choice([0.0, rng.uniform(-1.5, 1.5)])  # octaves over the sound
    depth, wobble = rng.choice([0.0, rng.uniform(0.05, 0.5)]), rng.uniform(0.5, 12.0)  # octaves, Hz
    octaves = glide * np.clip(local / duration, 0, 1) + depth * np.sin(2 * np.pi * wobble * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(centre * 2.0 ** octaves) / rate
    envelope = ((local >= 0) & (local < duration)) * sounds._fades(local, duration)
    noise = np.random.default_rng(rng.randrange(2**31)).standard_normal(len(t))
    wave = rng.uniform(0.3, 0.8) * envelope * sounds._harmonic(phase) + 1e-3 * noise
    return np.clip(wave, -0.99, 0.99).astype(np.float32)


def contour_batch(seeds: list[int], config: WidenConfig) -> torch.Tensor:
    """One random-contour tone per seed, as (B, 1, frames, mel bins) log-mels like the world's."""
    waves = [contour_tone(random.Random(seed * 7919 + 17)) for seed in seeds]
    return log_mel(waveforms_to_tensor(waves)).unsqueeze(1)


WIDE_INPUTS: dict[str, Callable[[list[int], WidenConfig], torch.Tensor]] = {"shapes": colour_batch,
                                                                             "sounds": contour_batch}


# ------------------------------------------------------------------------------- generated anchor
@torch.no_grad()
def generated_latents(pipe, count: int, first_seed: int) -> torch.Tensor:
    """``count`` final latents (unscaled, as the VAE decodes them) of the AudioLDM pipeline ``pipe``,
    one per (world caption, seed), sampled as the export check samples (``CHECK_STEPS``, ``CHECK_GUIDANCE``).

    A decoder widened on real items alone decodes what the UNet *generates* differently too (the
    decoder-only run's judges fell 0.906 → 0.875 on generated clips); holding the decoder to the
    shipped one on these latents keeps what the model already makes.
    """
    from pairsynth_train.audioldm_export import CHECK_GUIDANCE, CHECK_STEPS

    captions = sounds.all_captions()
    latents: list[torch.Tensor] = []
    for start in range(0, count, 32):
        seeds = list(range(first_seed + start, first_seed + min(start + 32, count)))
        final: list[torch.Tensor] = []
        pipe(prompt=[captions[s % len(captions)] for s in seeds], generator=[torch.Generator().manual_seed(s) for s in seeds],
             num_inference_steps=CHECK_STEPS, guidance_scale=CHECK_GUIDANCE, audio_length_in_s=1.0,
             callback=lambda step, t, z: final.append(z), callback_steps=1)
        latents.append(final[-1] / pipe.vae.config.scaling_factor)
    return torch.cat(latents)


# ---------------------------------------------------------------------------------------- training
def vae_settings(world: str) -> VaeTrainConfig:
    """How the world's VAE decodes and what its loss is (shapes: L1 + MSE of the mode, as stage 1c always was)."""
    return VaeTrainConfig.for_world(world, kl_weight=0.0) if world == "shapes" else VaeTrainConfig.for_world(world)


@torch.no_grad()
def measure(world: str, vae, shipped, config: WidenConfig, generated: torch.Tensor | None = None) -> dict[str, float]:
    """Held-out reconstruction of the world's and wide items, how far the world's latents moved, and
    (given held-out ``generated`` latents) how far their decodes moved from the shipped decoder's."""
    spec = VAE_WORLDS[world]
    own = spec.inputs(eval_seeds(config.eval_count))
    wide = WIDE_INPUTS[world](eval_seeds(config.eval_count, offset=10_000), config)
    new, old = vae.encode(own).latent_dist.mode(), shipped.encode(own).latent_dist.mode()
    moved = {} if generated is None else {
        "generated_decode_l1": float(F.l1_loss(vae.decode(generated).sample, shipped.decode(generated).sample))}
    return {"world_quality": spec.quality(vae.decode(new).sample, own),
            "wide_quality": spec.quality(vae.decode(vae.encode(wide).latent_dist.mode()).sample, wide),
            "quality_name": spec.quality_name,
            "latent_drift": float((new - old).norm() / old.norm()), **moved}


def widen(world: str, vae_dir: Path, work_dir: Path, config: WidenConfig, resume: bool = False) -> dict:
    """Fine-tune the VAE in ``vae_dir``; save it to ``work_dir/vae-wide``; return its measurements."""
    ensure_torchvision_importable()
    from diffusers import AutoencoderKL

    if config.generated_anchor and world != "sounds":
        raise ValueError(f"generated_anchor holds a sounds decoder (the toy-sounds captions); world {world!r}")
    torch.manual_seed(config.seed)
    shipped = AutoencoderKL.from_pretrained(vae_dir).eval().requires_grad_(False)
    vae = copy.deepcopy(shipped).train().requires_grad_(True)
    if config.decoder_only:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    pool = held_out = None
    if config.generated_anchor:
        from pairsynth_train.audioldm_export import load_pipeline

        pipe = load_pipeline(vae_dir.parent)  # the VAE's own pipeline, loaded once for both sets
        pool = generated_latents(pipe, config.generated_anchor, first_seed=3_000_000)
        held_out = generated_latents(pipe, config.generated_eval, first_seed=4_000_000)
        del pipe
        with torch.no_grad():
            pool_targets = shipped.decode(pool).sample
        logger.info("generated anchor: %d latents of %s", len(pool), vae_dir.parent)
    before = measure(world, shipped, shipped, config, held_out)
    logger.info("shipped VAE: %s", before)
    optimizer, schedule = adamw_with_cosine(params, config.lr, config.steps, config.warmup)
    trainee = Trainee(parts={"vae": vae}, optimizer=optimizer, schedule=schedule, grad_clip=1.0, params=params)
    settings, own_inputs, half = vae_settings(world), VAE_WORLDS[world].inputs, config.batch_size // 2

    def loss_fn(step: int) -> torch.Tensor:
        seeds = train_seeds(config.seed, 2_000_000 + step, half)
        generator = torch.Generator().manual_seed(config.seed * 15485863 + step)
        own = own_inputs(seeds)
        own_loss, means = vae_loss_and_means(vae, own, settings, generator)
        wide_loss, _ = vae_loss_and_means(vae, WIDE_INPUTS[world](seeds, config), settings, generator)
        loss = own_loss + wide_loss
        if pool is not None:  # decode what the UNet makes as the shipped decoder did
            chosen = torch.randint(len(pool), (half,), generator=generator)
            loss = loss + config.generated_weight * F.l1_loss(vae.decode(pool[chosen]).sample, pool_targets[chosen])
        if config.decoder_only:
            return loss
        with torch.no_grad():
            anchor = shipped.encode(own).latent_dist.mode()
        return loss + config.anchor_weight * F.mse_loss(means, anchor)

    work_dir.mkdir(parents=True, exist_ok=True)
    keeper = CheckpointKeeper(work_dir, f"vae_widen_{world}", config.checkpoint_every_s)
    seconds = run_steps(f"{world}-vae-widen", trainee, loss_fn, config.steps, keeper, resume, log_every=25)
    vae.eval()
    after = {**measure(world, vae, shipped, config, held_out), "seconds": round(seconds, 1), "steps": config.steps}
    logger.info("widened VAE: %s (shipped %s)", after, before)
    vae.save_pretrained(work_dir / "vae-wide", safe_serialization=True)
    return {**after, **{f"shipped_{k}": v for k, v in before.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=sorted(WIDE_INPUTS), required=True)
    parser.add_argument("--vae", type=Path, required=True, help="the VAE folder to widen (toy-shapes/vae, toy-sounds/vae)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=WidenConfig.steps)
    parser.add_argument("--batch-size", type=int, default=WidenConfig.batch_size)
    parser.add_argument("--lr", type=float, default=WidenConfig.lr)
    parser.add_argument("--anchor-weight", type=float, default=WidenConfig.anchor_weight)
    parser.add_argument("--decoder-only", action="store_true",
                        help="train the decoder only, so the world's latents (what the UNet learned) cannot move")
    parser.add_argument("--generated-anchor", type=int, default=0, metavar="N",
                        help="with --decoder-only: also hold the decoder to the shipped one on N latents the "
                             "VAE's pipeline (the --vae folder's parent) generates")
    parser.add_argument("--generated-weight", type=float, default=WidenConfig.generated_weight)
    parser.add_argument("--hold-out-purple", action="store_true", help=f"shapes: never draw hues {PURPLE_HUES}")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if not (args.vae / "config.json").is_file():
        parser.error(f"--vae {args.vae}: not a diffusers VAE folder (no config.json); give e.g. "
                     f"pairsynth/zoo/weights/toy-{args.world}/vae")
    if args.steps < 1 or args.batch_size < 2:
        parser.error(f"--steps {args.steps} --batch-size {args.batch_size}: give at least 1 step and a batch of 2 "
                     "(half the world's items, half wide ones)")
    if args.generated_anchor < 0:
        parser.error(f"--generated-anchor {args.generated_anchor}: give 0 (off) or more latents")
    if args.generated_anchor and not (args.decoder_only and args.world == "sounds"):
        parser.error("--generated-anchor holds a sounds decoder; give it with --world sounds --decoder-only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = replace(WidenConfig(), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                     anchor_weight=args.anchor_weight, decoder_only=args.decoder_only,
                     generated_anchor=args.generated_anchor, generated_weight=args.generated_weight,
                     held_out_hues=PURPLE_HUES if args.hold_out_purple else None)
    print(widen(args.world, args.vae, args.work, config, resume=args.resume))


if __name__ == "__main__":
    main()
