"""Train ``toy-sounds-clap``: a tiny transformers ``ClapModel`` (HTSAT audio tower + RoBERTa text tower).

It is trained contrastively on freshly synthesized SOUNDS and exported with ``save_pretrained``
together with a ``ClapProcessor`` (``ClapFeatureExtractor`` + a small RoBERTa BPE tokenizer), so
``ClapModel.from_pretrained(dir)`` / ``ClapProcessor.from_pretrained(dir)`` load it offline like a
LAION checkpoint. Training features come from that very feature extractor, so the scorer's path
(resample to ``feature_extractor.sampling_rate``, extract, embed) is the trained path.

Feature extractor: 16 kHz (the world's rate: no resampling needed for toy audio, and no empty
8-24 kHz band a 48 kHz extractor would show), hop 160, window 512, 32 mel bins 50 Hz-8 kHz,
``max_length_s=1``, ``truncation="rand_trunc"`` (unfused checkpoints cannot use "fusion"),
``padding="repeatpad"``. The HTSAT ``spec_size`` of 64 with 32 mel bins gives ``freq_ratio`` 2:
101 frames are interpolated to 128 and folded into a 64×64 image.

Only 8 captions exist, so a batch holds many clips per caption: clips are classified against all 8
captions, and each caption present is matched to all of its clips (multi-positive), the same
contrastive objective without false negatives (as ``toy-shapes-clip`` does).
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.sounds import all_captions, render_sample
from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer, copy_tokenizer_files
from pairsynth_train.audioldm_components import clap_text_config
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, train_seeds
from pairsynth_train.evaluation import ClipQuality
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.sound_evaluation import clap_audio_inputs, clap_quality

logger = logging.getLogger(__name__)

NAME = "toy-sounds-clap"
PROJECTION_DIM = 64
FEATURE_EXTRACTOR = {
    "feature_size": 32, "sampling_rate": 16_000, "hop_length": 160, "max_length_s": 1, "fft_window_size": 512,
    "frequency_min": 50, "frequency_max": 8000, "truncation": "rand_trunc", "padding": "repeatpad",
}
AUDIO_CONFIG = {
    "spec_size": 64, "num_mel_bins": 32, "window_size": 4, "patch_size": 4, "patch_stride": [4, 4],
    "patch_embeds_hidden_size": 32, "depths": [1, 1, 2], "num_attention_heads": [2, 4, 8],
    "hidden_size": 128, "num_hidden_layers": 3, "num_classes": 8, "enable_fusion": False,
    "hidden_dropout_prob": 0.0, "mlp_ratio": 2.0,
}


@dataclass
class ClapTrainConfig:
    steps: int = 800
    batch_size: int = 48
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 50
    seed: int = 0
    noise_max: float = 0.01  # white-noise amplitude added to some clips, so generated (noisier) audio is judged fairly
    checkpoint_every_s: float = 120.0
    eval_clips: int = 400
    log_every: int = 25


def make_processor(folder: Path):
    """Build the tokenizer (files in ``folder``) and a ``ClapProcessor`` around it."""
    ensure_torchvision_importable()  # transformers' processor imports reach torchvision
    from transformers import ClapFeatureExtractor, ClapProcessor

    tokenizer = build_roberta_tokenizer(all_captions() + all_captions(stereo=True), folder / "_tokenizer")
    return ClapProcessor(feature_extractor=ClapFeatureExtractor(**FEATURE_EXTRACTOR), tokenizer=tokenizer)


def make_model(tokenizer):
    from transformers import ClapAudioConfig, ClapConfig, ClapModel

    text = clap_text_config(tokenizer, hidden=64, layers=2, projection_dim=PROJECTION_DIM)
    config = ClapConfig(text_config=text.to_dict(), audio_config=ClapAudioConfig(**AUDIO_CONFIG).to_dict(),
                        projection_dim=PROJECTION_DIM)
    return ClapModel(config)


def contrastive_loss(model, features: dict, captions: list[str], text_tokens: dict) -> torch.Tensor:
    """Clip→8-caption cross-entropy plus multi-positive caption→clip cross-entropy."""
    names = all_captions()
    audio = F.normalize(model.audio_projection(model.audio_model(**features).pooler_output), dim=-1)
    text = F.normalize(model.text_projection(model.text_model(**text_tokens).pooler_output), dim=-1)
    targets = torch.tensor([names.index(c) for c in captions])
    audio_loss = F.cross_entropy(model.logit_scale_a.exp() * audio @ text.T, targets)
    present = targets.unique()
    positives = (targets[None, :] == present[:, None]).float()  # (P, B)
    log_probs = (model.logit_scale_t.exp() * text @ audio.T)[present].log_softmax(dim=-1)
    text_loss = -((log_probs * positives).sum(-1) / positives.sum(-1)).mean()
    return (audio_loss + text_loss) / 2


def _augment(waveforms: list[np.ndarray], noise_max: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Random gain (×0.5-1.5) and, for half the clips, white noise up to ``noise_max``."""
    out = []
    for wave in waveforms:
        noisy = wave * rng.uniform(0.5, 1.5)
        if rng.random() < 0.5:
            noisy = noisy + rng.uniform(0, noise_max) * rng.standard_normal(len(wave))
        out.append(np.clip(noisy, -1, 1).astype(np.float32))
    return out


def train_toy_sounds_clap(out_dir: Path, work_dir: Path, config: ClapTrainConfig, resume: bool = False) -> ClipQuality:
    """Train, export to ``out_dir`` and evaluate the exported folder through ``from_pretrained``."""
    work_dir = Path(work_dir)
    torch.manual_seed(config.seed)
    processor = make_processor(work_dir)
    model = make_model(processor.tokenizer)
    text_tokens = dict(processor.tokenizer(all_captions(), padding=True, return_tensors="pt"))
    optimizer, schedule = adamw_with_cosine(model.parameters(), config.lr, config.steps, config.warmup, config.weight_decay)
    trainee = Trainee({"model": model}, optimizer, schedule, grad_clip=1.0, params=list(model.parameters()))
    logger.info("%s: %.2fM params, %d steps of batch %d", NAME, _params(model) / 1e6, config.steps, config.batch_size)

    def loss_fn(step: int) -> torch.Tensor:
        samples = [render_sample(seed) for seed in train_seeds(config.seed, step, config.batch_size)]
        rng = np.random.default_rng(config.seed * 1_000_003 + step)
        features = clap_audio_inputs(processor, _augment([s[0] for s in samples], config.noise_max, rng))
        features = {"input_features": features["input_features"]}
        return contrastive_loss(model, features, [s[1] for s in samples], text_tokens)

    def clamp_scales(step: int) -> None:
        with torch.no_grad():
            model.logit_scale_a.clamp_(0, math.log(100))
            model.logit_scale_t.clamp_(0, math.log(100))

    model.train()
    keeper = CheckpointKeeper(work_dir, "clap", config.checkpoint_every_s)
    seconds = run_steps(NAME, trainee, loss_fn, config.steps, keeper, resume, config.log_every, after_step=clamp_scales)
    return export_and_evaluate(model.eval(), processor, out_dir, config, seconds)


def export_and_evaluate(model, processor, out_dir: Path, config: ClapTrainConfig, train_seconds: float) -> ClipQuality:
    """Save model + processor, reload them the public way and measure them on held-out sounds."""
    ensure_torchvision_importable()
    from transformers import ClapModel, ClapProcessor

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    copy_tokenizer_files(processor.tokenizer.name_or_path, out_dir)
    loaded, loaded_processor = ClapModel.from_pretrained(out_dir), ClapProcessor.from_pretrained(out_dir)
    if len(loaded_processor.tokenizer) != len(processor.tokenizer):
        raise ValueError(f"{out_dir}: tokenizer reloaded with {len(loaded_processor.tokenizer)} tokens, "
                         f"expected {len(processor.tokenizer)}")
    samples = [render_sample(seed) for seed in eval_seeds(config.eval_clips)]
    quality = clap_quality(loaded, loaded_processor, [s[0] for s in samples], [s[1] for s in samples])
    logger.info("%s held-out: retrieval %.4f, AUC %.4f over %d clips", NAME, quality.retrieval, quality.auc, quality.count)
    _write_card(out_dir, loaded, config, train_seconds, quality)
    return quality


def _write_card(out_dir: Path, model, config: ClapTrainConfig, train_seconds: float, quality: ClipQuality) -> None:
    write_model_card(
        out_dir,
        f"{NAME}: a tiny CLAP model for the SOUNDS world",
        {
            "World": "1 s, 16 kHz mono sounds: steady tone / beeping tone / rising chirp / noise burst, low or high pitch; "
            "captions like `a high beeping tone` (8 in all). Frequency, loudness, onset, duration and noise floor vary.",
            "Usage": "```python\nfrom transformers import ClapModel, ClapProcessor\nmodel = ClapModel.from_pretrained('PATH')\n"
            "processor = ClapProcessor.from_pretrained('PATH')\n# resample audio to processor.feature_extractor.sampling_rate "
            "(16 kHz) first\ninputs = processor.feature_extractor(waves, sampling_rate=16000, return_tensors='pt')\n"
            "audio = model.get_audio_features(**inputs).pooler_output  # transformers 5: normalised features\n```",
            "Processor (what a scorer must use)": {**FEATURE_EXTRACTOR, "tokenizer": "RobertaTokenizer (vocab.json + merges.txt), "
                                                   f"{model.config.text_config.vocab_size} tokens, model_max_length 32"},
            "Architecture": {"params": _params(model), "projection_dim": PROJECTION_DIM, "audio (HTSAT)": AUDIO_CONFIG,
                             "text": "ClapTextModel (RoBERTa), 2 layers, hidden 64"},
            "Training": {**asdict(config), "training_seconds": round(train_seconds), "threads": torch.get_num_threads(),
                         "data": "fresh synthesized sounds every step; random gain and white noise"},
            "Metrics (held-out sounds)": {"caption retrieval over 8 captions": quality.retrieval,
                                          "ROC AUC matched vs one-attribute-off": quality.auc, "clips": quality.count,
                                          "folder size MB": round(folder_size_mb(out_dir), 2)},
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} --steps {config.steps}\n```",
        },
    )


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())
