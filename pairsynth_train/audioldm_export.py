"""Export, check and document the ``toy-sounds`` AudioLDM folder."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.sounds import all_captions
from pairsynth.zoo.roberta_tokenizer import copy_tokenizer_files
from pairsynth_train import components
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.sound_evaluation import generate_clips

logger = logging.getLogger(__name__)

NAME = "toy-sounds"
CHECK_STEPS = 20
CHECK_GUIDANCE = 2.5  # AudioLDM's default guidance scale


def export_pipeline(out_dir: Path, vae, unet, text_encoder, tokenizer, vocoder) -> None:
    """Assemble an ``AudioLDMPipeline`` with a DPM-Solver++ scheduler and save it with safetensors."""
    ensure_torchvision_importable()
    from diffusers import AudioLDMPipeline

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                            scheduler=components.make_sampling_scheduler("sounds"), vocoder=vocoder)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    copy_tokenizer_files(tokenizer.name_or_path, out_dir / "tokenizer")
    logger.info("exported %s to %s (%.2f MB)", NAME, out_dir, folder_size_mb(out_dir))


def load_pipeline(folder: Path):
    """``AudioLDMPipeline.from_pretrained`` (the public path), progress bars off."""
    ensure_torchvision_importable()
    from diffusers import AudioLDMPipeline

    pipe = AudioLDMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def quick_check(out_dir: Path, judge, per_caption: int, steps: int = CHECK_STEPS, guidance: float = CHECK_GUIDANCE) -> dict:
    """Reload the folder, generate ``per_caption`` clips per caption and judge the waveforms."""
    pipe = load_pipeline(out_dir)
    captions = [c for c in all_captions() for _ in range(per_caption)]
    clips = generate_clips(pipe, captions, list(range(len(captions))), steps, guidance)
    result: dict = {"pipeline": type(pipe).__name__, "samples": len(captions), "steps": steps, "guidance": guidance,
                    "seconds per clip": round(clips.seconds_per_clip, 4)}
    if judge is not None:
        from pairsynth_train.judges import judge_waveforms

        result["judged on waveforms"] = judge_waveforms(judge, clips.waveforms, captions)
    logger.info("%s check: %s", NAME, result)
    return result


def write_t2a_card(out_dir: Path, config, vae_result, vocoder_result, unet_seconds: float, check: dict, params: dict) -> None:
    config_dict = asdict(config)
    config_dict.pop("vae"), config_dict.pop("vocoder")
    write_model_card(
        out_dir,
        f"{NAME}: a tiny AudioLDM-format text→audio model for the SOUNDS world",
        {
            "World": "1 s, 16 kHz mono sounds of one kind (steady tone / beeping tone / rising chirp / noise burst) at one "
            "pitch (low 200-320 Hz / high 1.1-1.7 kHz); captions like `a high beeping tone` (8 in all). Frequency, "
            "loudness, onset, duration, beep count and noise floor vary and are not captioned.",
            "Usage": "```python\nfrom diffusers import AudioLDMPipeline\npipe = AudioLDMPipeline.from_pretrained('PATH')\n"
            f"audio = pipe('a high beeping tone', num_inference_steps={CHECK_STEPS}, guidance_scale={CHECK_GUIDANCE}, "
            "audio_length_in_s=1.0).audios[0]  # 16 kHz\n```",
            "Architecture": {"mel": "AudioLDM-style log-mel: n_fft 1024, hop 160, 64 Slaney bins 0-8 kHz, ln(max(mel, 1e-5)); 100 frames per second",
                             "vae": components.SOUNDS.vae, "unet": components.SOUNDS.unet,
                             "text encoder": f"ClapTextModelWithProjection, 2 layers, hidden {components.CLAP_TEXT_HIDDEN}, "
                             f"projection {components.CLAP_TEXT_PROJECTION}, own RoBERTa BPE tokenizer",
                             "vocoder": components.VOCODER_CONFIG,
                             "scheduler": "DPMSolverMultistepScheduler (dpmsolver++), AudioLDM β schedule",
                             **{f"params {k}": v for k, v in params.items()}},
            "Training": {"vae steps": vae_result.steps, "vae training seconds": round(vae_result.train_seconds),
                         "vae held-out log-mel L1": vae_result.quality, "vae scaling_factor": vae_result.scaling_factor,
                         "vocoder steps": vocoder_result.steps, "vocoder training seconds": round(vocoder_result.train_seconds),
                         "vocoder held-out log-mel L1": vocoder_result.mel_l1,
                         **{f"unet {k}": v for k, v in config_dict.items()}, "unet training seconds": round(unet_seconds),
                         "threads": torch.get_num_threads(),
                         "data": "synthesized sounds (seeds from run seed and step); vocoder: analytic overlap-add init, then "
                         "magnitude losses only, half its inputs VAE reconstructions; text tower: 300 steps of caption "
                         "separation, then frozen; UNet: 10 % empty captions for classifier-free guidance, EMA weights"},
            "Vocoder ceiling (judges on vocoded held-out mels)": vocoder_result.judged or "not measured",
            "Check at export (8 captions × 32 seeds, judged on the waveform)": check,
            "Size": f"{folder_size_mb(out_dir):.2f} MB",
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} "
            f"--steps {config.steps} --vae-steps {vae_result.steps} --vocoder-steps {vocoder_result.steps}\n```\n"
            "(judges-sounds must already be in the sibling folder `judges-sounds` for the export check.)",
        },
    )
