"""CLI: ``python -m pairsynth_train <model> --out DIR [--steps N] [--resume]``.

``<model>`` is one of :data:`TRAINERS` or ``all`` (the whole image zoo, in order, each into
``--out/<model>``). Runs use one thread by default: this machine has two cores, and oversubscribing
them slows torch 10-15×.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK_ROOT = REPO_ROOT / ".zoo_runs"
IMAGE_ZOO_ORDER = ("judges-shapes", "toy-shapes-clip", "toy-shapes")

from pairsynth_train.audio_cli import AUDIO_TRAINERS  # noqa: E402  (imports no torch)

logger = logging.getLogger("pairsynth_train")


def _train_clip(args, out: Path, work: Path) -> None:
    from pairsynth_train.clip_trainer import ClipTrainConfig, train_toy_shapes_clip

    config = ClipTrainConfig(seed=args.seed)
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    train_toy_shapes_clip(out, work, config, resume=args.resume)


def _train_judges(args, out: Path, work: Path) -> None:
    from pairsynth_train.judges import JudgeTrainConfig, train_judges

    config = JudgeTrainConfig(seed=args.seed)
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    train_judges(out, work, config, resume=args.resume)


def _train_t2i(args, out: Path, work: Path) -> None:
    from pairsynth_train.t2i_trainer import T2iTrainConfig, train_toy_shapes

    config = T2iTrainConfig(seed=args.seed)
    config.vae.seed = args.seed
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    config.vae.steps = args.vae_steps or config.vae.steps
    judges = out.parent / "judges-shapes"
    train_toy_shapes(out, work, config, resume=args.resume, judges_dir=judges if judges.exists() else None)


TRAINERS = {
    "judges-shapes": _train_judges,
    "toy-shapes-clip": _train_clip,
    "toy-shapes": _train_t2i,
}
TRAINERS.update(AUDIO_TRAINERS)  # judges-sounds, toy-sounds-clap, toy-sounds (pairsynth_train.audio_cli)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pairsynth_train", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[*TRAINERS, "all"])
    parser.add_argument("--out", type=Path, required=True, help="export folder (for `all`: parent of one folder per model)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the trainer's own)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--vae-steps", type=int, default=None, help="toy-shapes only: steps of its VAE stage")
    parser.add_argument("--vocoder-steps", type=int, default=None, help="toy-sounds only: steps of its vocoder stage")
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
    names = IMAGE_ZOO_ORDER if args.model == "all" else (args.model,)
    for name in names:
        out = args.out / name if args.model == "all" else args.out
        work = (args.work_dir / name if args.model == "all" else args.work_dir) if args.work_dir else DEFAULT_WORK_ROOT / name
        log_path = configure_run_logging(work, name)
        logger.info("training %s → %s (work dir %s, log %s, %d threads)", name, out, work, log_path, args.threads)
        TRAINERS[name](args, out, work)


if __name__ == "__main__":
    main()
