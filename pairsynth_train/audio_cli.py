"""The audio half of ``python -m pairsynth_train``: argparse namespace → audio trainer calls.

Kept beside the image trainers' entries in ``__main__`` (which merges :data:`AUDIO_TRAINERS` into
its table) so that each half of the zoo owns its own glue.
"""

from __future__ import annotations

from pathlib import Path

AUDIO_ZOO_ORDER = ("judges-sounds", "toy-sounds-clap", "toy-sounds")


def _train_sound_judges(args, out: Path, work: Path) -> None:
    from pairsynth_train.sound_judges import SoundJudgeTrainConfig, train_sound_judges

    config = SoundJudgeTrainConfig(seed=args.seed)
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    train_sound_judges(out, work, config, resume=args.resume)


def _train_clap(args, out: Path, work: Path) -> None:
    from pairsynth_train.clap_trainer import ClapTrainConfig, train_toy_sounds_clap

    config = ClapTrainConfig(seed=args.seed)
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    train_toy_sounds_clap(out, work, config, resume=args.resume)


def _train_t2a(args, out: Path, work: Path) -> None:
    from pairsynth_train.audioldm_trainer import T2aTrainConfig, train_toy_sounds

    config = T2aTrainConfig(seed=args.seed)
    config.vae.seed = config.vocoder.seed = args.seed
    config.steps = args.steps or config.steps
    config.batch_size = args.batch_size or config.batch_size
    config.vae.steps = args.vae_steps or config.vae.steps
    config.vocoder.steps = getattr(args, "vocoder_steps", None) or config.vocoder.steps
    judges = out.parent / "judges-sounds"
    train_toy_sounds(out, work, config, resume=args.resume, judges_dir=judges if judges.exists() else None)


AUDIO_TRAINERS = {
    "judges-sounds": _train_sound_judges,
    "toy-sounds-clap": _train_clap,
    "toy-sounds": _train_t2a,
}
