"""Measure the shipped toy zoo against its quality bars and print one table.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/zoo_quality.py [--samples 288] [--steps 20] [--guidance 3]

Every model is loaded through its public path (open_clip ``local-dir:``, ``StableDiffusionPipeline
.from_pretrained``), exactly as pairsynth loads hub models. Generated images are graded by the
attribute judges (trained on renders only) and by the toy CLIP (trained separately from the
generator's text encoder). Sections are functions in :data:`SECTIONS`; the audio zoo adds its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from pairsynth.torch_compat import ensure_torchvision_importable  # noqa: E402

DEFAULT_WEIGHTS = REPO_ROOT / "pairsynth" / "zoo" / "weights"


@dataclass
class Row:
    """One measured number, with its bar (``None`` when it is informational)."""

    model: str
    metric: str
    value: float
    bar: float | None = None
    higher_is_better: bool = True
    unit: str = ""

    @property
    def status(self) -> str:
        if self.bar is None:
            return ""
        ok = self.value >= self.bar if self.higher_is_better else self.value <= self.bar
        return "met" if ok else "NOT met"

    def cells(self) -> list[str]:
        value = f"{self.value:.4f}" if abs(self.value) < 100 else f"{self.value:.1f}"
        bar = "" if self.bar is None else f"{'≥' if self.higher_is_better else '≤'} {self.bar:g}"
        return [self.model, self.metric, f"{value} {self.unit}".strip(), bar, self.status]


def _load_toy_clip(folder: Path):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return model.eval(), preprocess, open_clip.get_tokenizer(f"local-dir:{folder}")


def toy_clip_rows(args) -> list[Row]:
    """Zero-shot caption retrieval and matched-vs-one-off AUC on held-out renders."""
    from pairsynth.world.shapes import render_sample
    from pairsynth_train.data import eval_seeds
    from pairsynth_train.evaluation import open_clip_quality
    from pairsynth_train.model_card import folder_size_mb

    folder = args.weights / "toy-shapes-clip"
    model, preprocess, tokenizer = _load_toy_clip(folder)
    samples = [render_sample(seed) for seed in eval_seeds(args.eval_images)]
    quality = open_clip_quality(model, preprocess, tokenizer, [s[0] for s in samples], [s[1] for s in samples])
    name = "toy-shapes-clip"
    return [
        Row(name, f"caption retrieval, {quality.count} held-out renders", quality.retrieval, 0.98),
        Row(name, "ROC AUC matched vs one-attribute-off", quality.auc, 0.99),
        Row(name, "folder size", folder_size_mb(folder), 12, higher_is_better=False, unit="MB"),
    ]


def toy_t2i_rows(args) -> list[Row]:
    """Generate ``--samples`` images over all 24 captions; grade with the judges and the toy CLIP."""
    from diffusers import StableDiffusionPipeline

    from pairsynth.world.shapes import all_captions
    from pairsynth_train.data import eval_seeds
    from pairsynth_train.evaluation import generate_images, judge_images, open_clip_quality
    from pairsynth_train.judges import judge_accuracy, load_judges
    from pairsynth_train.model_card import folder_size_mb

    folder = args.weights / "toy-shapes"
    judge = load_judges("shapes", args.weights / "judges-shapes")
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    names = all_captions()
    captions = [names[i % len(names)] for i in range(args.samples)]
    seeds = list(range(args.samples))
    generate_images(pipe, captions[:2], seeds[:2], args.steps, args.guidance, args.batch_size)  # warm-up
    began = time.perf_counter()
    images = generate_images(pipe, captions, seeds, args.steps, args.guidance, args.batch_size)
    per_sample = (time.perf_counter() - began) / len(images)
    judged = judge_images(judge, images, captions)
    clip_model, preprocess, tokenizer = _load_toy_clip(args.weights / "toy-shapes-clip")
    clip = open_clip_quality(clip_model, preprocess, tokenizer, images, captions)
    if args.save_grid:
        _save_grid(images[: len(names) * 2], args.save_grid)
    name = f"toy-shapes ({args.steps} DPM++ steps, guidance {args.guidance:g})"
    real = judge_accuracy("shapes", judge, eval_seeds(1000))
    return [
        Row("judges-shapes", "all attributes correct on 1000 held-out renders", real["all"]),
        Row(name, f"judges: all attributes correct, {len(images)} samples", judged["all"], 0.95),
        *[Row(name, f"judges: {attr} correct", judged[attr]) for attr in ("shape", "colour", "position")],
        Row(name, "toy-CLIP retrieval of the generating caption", clip.retrieval, 0.95),
        Row(name, "toy-CLIP AUC matched vs one-attribute-off", clip.auc),
        Row(name, f"sampling time per sample (batch {args.batch_size})", per_sample, unit="s"),
        Row(name, "folder size", folder_size_mb(folder), 14, higher_is_better=False, unit="MB"),
    ]


# ---------------------------------------------------------------------------------------------
# Audio zoo (toy-sounds-clap, toy-sounds, judges-sounds). Clips are judged on the waveform, after
# the vocoder; CLAP is measured through its own ClapProcessor at the extractor's sampling rate.
# ---------------------------------------------------------------------------------------------


def toy_clap_rows(args) -> list[Row]:
    """Zero-shot caption retrieval (8 captions) and matched-vs-one-off AUC on held-out sounds."""
    from transformers import ClapModel, ClapProcessor

    from pairsynth.world.sounds import render_sample
    from pairsynth_train.data import eval_seeds
    from pairsynth_train.model_card import folder_size_mb
    from pairsynth_train.sound_evaluation import clap_quality

    folder = args.weights / "toy-sounds-clap"
    model, processor = ClapModel.from_pretrained(folder), ClapProcessor.from_pretrained(folder)
    samples = [render_sample(seed) for seed in eval_seeds(args.eval_clips)]
    quality = clap_quality(model, processor, [s[0] for s in samples], [s[1] for s in samples])
    name = "toy-sounds-clap"
    return [
        Row(name, f"caption retrieval, {quality.count} held-out sounds", quality.retrieval, 0.95),
        Row(name, "ROC AUC matched vs one-attribute-off", quality.auc, 0.99),
        Row(name, "folder size", folder_size_mb(folder), 8, higher_is_better=False, unit="MB"),
    ]


def toy_t2a_rows(args) -> list[Row]:
    """Generate ``--samples`` clips over all 8 captions; grade the waveforms with the judges and the toy CLAP."""
    from transformers import ClapModel, ClapProcessor

    from pairsynth.world.sounds import all_captions
    from pairsynth_train.audioldm_export import load_pipeline
    from pairsynth_train.data import eval_seeds
    from pairsynth_train.judged_clips import judged_captions
    from pairsynth_train.model_card import folder_size_mb
    from pairsynth_train.sound_evaluation import clap_quality, generate_clips
    from pairsynth_train.judges import judge_accuracy, judge_waveforms, load_judges
    from pairsynth_train.vocoder_trainer import evaluate_vocoder

    folder = args.weights / "toy-sounds"
    judge = load_judges("sounds", args.weights / "judges-sounds")
    pipe = load_pipeline(folder)
    names = all_captions()
    captions = [names[i % len(names)] for i in range(args.samples)]
    seeds = list(range(args.samples))
    generate_clips(pipe, captions[:2], seeds[:2], args.steps, args.audio_guidance, args.batch_size)  # warm-up
    clips = generate_clips(pipe, captions, seeds, args.steps, args.audio_guidance, args.batch_size)
    judged = judge_waveforms(judge, clips.waveforms, captions)
    clap_folder = args.weights / "toy-sounds-clap"
    clap_model, clap_processor = ClapModel.from_pretrained(clap_folder), ClapProcessor.from_pretrained(clap_folder)
    clap = clap_quality(clap_model, clap_processor, list(clips.waveforms), captions)
    heard = judged_captions(judge, clips.waveforms)  # what the waveform judges hear in each clip
    clap_by_judges = clap_quality(clap_model, clap_processor, list(clips.waveforms), heard)
    _, ceiling = evaluate_vocoder(pipe.vocoder, pipe.vae, eval_seeds(args.eval_clips), judge)
    name = f"toy-sounds ({args.steps} DPM++ steps, guidance {args.audio_guidance:g})"
    return [
        Row("judges-sounds", f"all attributes correct on {args.eval_clips} held-out sounds",
            judge_accuracy("sounds", judge, eval_seeds(args.eval_clips))["all"]),
        Row("toy-sounds vocoder", "judges: all correct on vocoded real mels (ceiling)", ceiling["vocoded real mels"]["all"]),
        Row("toy-sounds vocoder", "judges: all correct on vocoded VAE reconstructions",
            ceiling["vocoded VAE reconstructions"]["all"]),
        Row(name, f"judges on waveforms: all attributes correct, {len(captions)} clips", judged["all"], 0.85),
        *[Row(name, f"judges on waveforms: {attr} correct", judged[attr]) for attr in ("kind", "pitch")],
        Row(name, "toy-CLAP retrieval of the generating caption", clap.retrieval, 0.90),
        Row(name, "toy-CLAP retrieval of the judges' caption", clap_by_judges.retrieval),
        Row(name, "toy-CLAP AUC matched vs one-attribute-off", clap.auc),
        Row(name, f"sampling time per 1 s clip (batch {args.batch_size})", clips.seconds_per_clip, unit="s"),
        Row(name, "folder size", folder_size_mb(folder), 14, higher_is_better=False, unit="MB"),
    ]


# Each section returns rows; the audio zoo registers its own (e.g. "audio": toy_audio_rows).
SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "image-clip": toy_clip_rows,
    "image-t2i": toy_t2i_rows,
    "audio-clap": toy_clap_rows,
    "audio-t2a": toy_t2a_rows,
}


def _save_grid(images, path: str) -> None:
    from PIL import Image

    columns = 12
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (32 * columns, 32 * rows))
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * 32, (i // columns) * 32))
    grid.resize((grid.width * 3, grid.height * 3), Image.Resampling.NEAREST).save(path)


def print_table(rows: list[Row]) -> None:
    header = ["model", "metric", "value", "bar", "status"]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in table]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    print("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--only", choices=list(SECTIONS), nargs="*", default=None)
    parser.add_argument("--samples", type=int, default=288, help="generated images (spread over all 24 captions)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-images", type=int, default=960, help="held-out renders for the toy CLIP")
    parser.add_argument("--audio-guidance", type=float, default=2.5, help="guidance of toy-sounds (AudioLDM's default)")
    parser.add_argument("--eval-clips", type=int, default=400, help="held-out sounds for the toy CLAP, judges and vocoder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-grid", default=None, help="write a PNG grid of the first generated samples")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    ensure_torchvision_importable()
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    rows: list[Row] = []
    for name in args.only or SECTIONS:
        rows += SECTIONS[name](args)
    print_table(rows)
    missed = [row for row in rows if row.status == "NOT met"]
    print(f"{len(rows) - len(missed)} rows ok; {len(missed)} bar(s) NOT met")
    print(f"zoo_quality: {len(rows) - len(missed)} of {len(rows)} rows ok "
          f"(goal every bar: {'not met' if missed else 'met'})")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
