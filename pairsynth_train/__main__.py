"""CLI: ``python -m pairsynth_train <model> --out DIR [--steps N] [--resume]`` (from the repository root).

``<model>`` is one of :data:`MODELS` (a role and a world), ``all`` (the image zoo, in order) or
``all-audio`` (the audio zoo, in order), each of those into ``--out/<model>``. Runs use one thread by
default: this machine has two cores, and oversubscribing them slows torch 10-15×.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK_ROOT = REPO_ROOT / ".zoo_runs"
ZOO_ORDER = {"all": ("judges-shapes", "toy-shapes-clip", "toy-shapes"),
             "all-audio": ("judges-sounds", "toy-sounds-clap", "toy-sounds")}

logger = logging.getLogger("pairsynth_train")


@dataclass(frozen=True, kw_only=True)
class Model:
    """How to train one zoo model: a config factory and a trainer, both imported only when it runs."""

    module: str  # pairsynth_train.<module>
    config: str  # name of the config class (or ``Class.for_world`` factory) in that module
    trainer: str  # train(out_dir, work_dir, config, resume=..., **extra)
    world: str | None = None  # passed first to roles that serve both worlds
    judges: str | None = None  # a sibling judges folder handed to the trainer's export check


MODELS = {
    "judges-shapes": Model(module="judges", config="JudgeTrainConfig.for_world", trainer="train_judges", world="shapes"),
    "judges-sounds": Model(module="judges", config="JudgeTrainConfig.for_world", trainer="train_judges", world="sounds"),
    "toy-shapes-clip": Model(module="clip_trainer", config="ClipTrainConfig.default", trainer="train_toy_shapes_clip"),
    "toy-sounds-clap": Model(module="clap_trainer", config="ClapTrainConfig.default", trainer="train_toy_sounds_clap"),
    "toy-shapes": Model(module="t2i_trainer", config="T2iTrainConfig.default", trainer="train_toy_shapes", judges="judges-shapes"),
    "toy-sounds": Model(module="audioldm_trainer", config="T2aTrainConfig.default", trainer="train_toy_sounds", judges="judges-sounds"),
}

# --flag → the config field it sets, and the nested stage config it sets it on (None: the model's own)
OVERRIDES = {"steps": (None, "steps"), "batch_size": (None, "batch_size"), "vae_steps": ("vae", "steps"),
             "vocoder_steps": ("vocoder", "steps"), "judged_clips": (None, "judged_clips"),
             "init_from": (None, "init_from")}


def _resolve(module, dotted: str) -> Callable:
    target = module
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


def build_config(model: Model, args: argparse.Namespace):
    """The model's default config with the seed and any flags given on the command line applied."""
    import importlib

    factory = _resolve(importlib.import_module(f"pairsynth_train.{model.module}"), model.config)
    config = factory(model.world) if model.world else factory()
    for stage in (config, *(getattr(config, name) for name in ("vae", "vocoder") if hasattr(config, name))):
        stage.seed = args.seed
    for flag, (stage, field) in OVERRIDES.items():
        value = getattr(args, flag)
        target = config if stage is None else getattr(config, stage, None)
        if value is not None and target is not None and field in {f.name for f in dataclasses.fields(target)}:
            setattr(target, field, value)
    return config


def train(name: str, args: argparse.Namespace, out: Path, work: Path) -> None:
    """Train zoo model ``name`` into ``out`` with checkpoints and logs in ``work``."""
    import importlib

    model = MODELS[name]
    trainer = getattr(importlib.import_module(f"pairsynth_train.{model.module}"), model.trainer)
    extra = {}
    if model.judges:
        judges = out.parent / model.judges
        extra["judges_dir"] = judges if judges.exists() else None
    leading = (model.world,) if model.world else ()
    trainer(*leading, out, work, build_config(model, args), resume=args.resume, **extra)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pairsynth_train", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[*MODELS, *ZOO_ORDER])
    parser.add_argument("--out", type=Path, required=True, help="export folder (for `all`: parent of one folder per model)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the trainer's own)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--vae-steps", type=int, default=None, help="toy-shapes / toy-sounds: steps of the VAE stage")
    parser.add_argument("--vocoder-steps", type=int, default=None, help="toy-sounds only: steps of its vocoder stage")
    parser.add_argument("--judged-clips", type=int, default=None, help="toy-sounds-clap only: generated, judge-labelled clips to train on")
    parser.add_argument("--init-from", default=None, help="toy-sounds-clap only: fine-tune from this exported folder")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --work-dir")
    parser.add_argument("--work-dir", type=Path, default=None, help=f"checkpoints and logs (default {DEFAULT_WORK_ROOT}/<model>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from pairsynth_train.runlog import configure_run_logging

    torch.set_num_threads(args.threads)
    several = args.model in ZOO_ORDER
    for name in ZOO_ORDER.get(args.model, (args.model,)):
        out = args.out / name if several else args.out
        work = (args.work_dir / name if several else args.work_dir) if args.work_dir else DEFAULT_WORK_ROOT / name
        log_path = configure_run_logging(work, name)
        logger.info("training %s → %s (work dir %s, log %s, %d threads)", name, out, work, log_path, args.threads)
        train(name, args, out, work)


if __name__ == "__main__":
    main()
