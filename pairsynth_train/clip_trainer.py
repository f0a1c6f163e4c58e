"""Train ``toy-shapes-clip``: a tiny open_clip model (ViT image tower + text transformer).

It is trained contrastively on freshly rendered SHAPES scenes and exported as an open_clip
``local-dir:`` folder: ``open_clip_config.json`` + ``open_clip_model.safetensors`` + a small
CLIP-format HF tokenizer (``text_cfg.hf_tokenizer_name`` makes open_clip's ``get_tokenizer`` load
the tokenizer files from that same folder). The small tokenizer keeps the token embedding at ~550
rows instead of CLIP's 49,408.

Only 24 captions exist, so a batch holds many images per caption: the loss is
:func:`pairsynth_train.contrastive.multi_positive_loss` (no false negatives).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.world.shapes import all_captions, render_sample, world_words
from pairsynth.zoo.tokenizer import build_clip_tokenizer
from pairsynth_train.augment import soften
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.contrastive import ContrastiveTrainConfig, multi_positive_loss
from pairsynth_train.data import eval_seeds, render_batch, train_seeds
from pairsynth_train.evaluation import ClipQuality, open_clip_quality
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine

logger = logging.getLogger(__name__)

NAME = "toy-shapes-clip"
CONTEXT_LENGTH = 16  # longest caption is 6 words + 2 specials
PREPROCESS_CFG = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", "resize_mode": "shortest"}


def model_cfg(vocab_size: int) -> dict:
    """The architecture, in open_clip's ``model_cfg`` schema."""
    return {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 128, "layers": 4, "head_width": 32, "mlp_ratio": 3.0},
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": vocab_size,
            "width": 128,
            "heads": 4,
            "layers": 3,
            "mlp_ratio": 3.0,
            "hf_tokenizer_name": "local-dir",  # any non-empty value: open_clip loads the tokenizer files beside the config
        },
    }


@dataclass(kw_only=True)
class ClipTrainConfig(ContrastiveTrainConfig):
    noise_std: float = 0.08  # pixel noise in [-1, 1] units; with blur (augment.soften) so it copes with generated images

    @classmethod
    def default(cls, **overrides) -> ClipTrainConfig:
        """The shipped run's settings, updated by ``overrides``."""
        return cls(**{"steps": 1500, "batch_size": 96, "warmup": 100, "eval_count": 480, "log_every": 50, **overrides})


def prepare_model_folder(folder: Path) -> Path:
    """Write the tokenizer and ``open_clip_config.json`` (no weights yet) into ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    tokenizer = build_clip_tokenizer(world_words(), folder)
    config = {"model_cfg": model_cfg(len(tokenizer)), "preprocess_cfg": PREPROCESS_CFG}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def _load_open_clip(folder: Path):
    ensure_torchvision_importable()
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return model, preprocess, open_clip.get_tokenizer(f"local-dir:{folder}")


def contrastive_loss(model, images: torch.Tensor, captions: list[str], caption_tokens: torch.Tensor) -> torch.Tensor:
    """Image→24-caption cross-entropy plus multi-positive caption→image cross-entropy."""
    names = all_captions()
    image_feats = F.normalize(model.encode_image(images), dim=-1)
    text_feats = F.normalize(model.encode_text(caption_tokens), dim=-1)
    logits = model.logit_scale.exp() * image_feats @ text_feats.T  # (B, 24)
    return multi_positive_loss(logits, logits.T, captions, names)


def train_toy_shapes_clip(out_dir: Path, work_dir: Path, config: ClipTrainConfig, resume: bool = False) -> ClipQuality:
    """Train, export to ``out_dir`` and evaluate the exported folder through open_clip."""
    torch.manual_seed(config.seed)
    staging = prepare_model_folder(work_dir / "staging")
    model, _, tokenizer = _load_open_clip(staging)
    caption_tokens = tokenizer(all_captions())
    optimizer, schedule = adamw_with_cosine(model.parameters(), config.lr, config.steps, config.warmup, config.weight_decay)
    trainee = Trainee(parts={"model": model}, optimizer=optimizer, schedule=schedule)
    logger.info("%s: %.2fM params, %d steps of batch %d", NAME, _params(model) / 1e6, config.steps, config.batch_size)

    def loss_fn(step: int) -> torch.Tensor:
        batch = render_batch(train_seeds(config.seed, step, config.batch_size))
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        return contrastive_loss(model, soften(batch.inputs, generator, config.noise_std), batch.captions, caption_tokens)

    def clamp_scale(step: int) -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    model.train()
    keeper = CheckpointKeeper(work_dir, "clip", config.checkpoint_every_s)
    seconds = run_steps(NAME, trainee, loss_fn, config.steps, keeper, resume, config.log_every, after_step=clamp_scale)
    logger.info("%s: logit scale %.1f after %.0f s", NAME, model.logit_scale.exp().item(), seconds)
    return export_and_evaluate(model, staging, out_dir, config, seconds)


def export_and_evaluate(model, staging: Path, out_dir: Path, config: ClipTrainConfig, train_seconds: float) -> ClipQuality:
    """Write the ``local-dir`` folder, reload it the public way and measure it on held-out renders."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(staging, out_dir)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "open_clip_model.safetensors"))

    loaded, preprocess, tokenizer = _load_open_clip(out_dir)
    samples = [render_sample(seed) for seed in eval_seeds(config.eval_count)]
    quality = open_clip_quality(loaded, preprocess, tokenizer, [s[0] for s in samples], [s[1] for s in samples])
    logger.info("%s held-out: retrieval %.4f, AUC %.4f over %d renders", NAME, quality.retrieval, quality.auc, quality.count)
    _write_card(out_dir, loaded, config, train_seconds, quality)
    return quality


def _write_card(out_dir: Path, model, config: ClipTrainConfig, train_seconds: float, quality: ClipQuality) -> None:
    cfg = json.loads((out_dir / "open_clip_config.json").read_text())["model_cfg"]
    write_model_card(
        out_dir,
        f"{NAME}: a tiny open_clip model for the SHAPES world",
        {
            "World": "32×32 renders of one shape (circle/square/triangle) in one colour (red/green/blue/yellow) on "
            "the left or right half of a grey canvas; captions like `a red circle on the left` (24 in all). "
            "Size, position within the half and background grey are jittered and not captioned.",
            "Usage": "```python\nimport open_clip\nmodel, _, preprocess = open_clip.create_model_and_transforms('local-dir:PATH')\n"
            "tokenizer = open_clip.get_tokenizer('local-dir:PATH')  # HF CLIPTokenizer in this folder\n```",
            "Architecture": {"params": _params(model), "embed_dim": cfg["embed_dim"], "vision_cfg": cfg["vision_cfg"], "text_cfg": cfg["text_cfg"]},
            "Training": {**asdict(config), "training_seconds": round(train_seconds), "threads": torch.get_num_threads(),
                         "data": "fresh renders every step (seeds derived from run seed and step)"},
            "Metrics (held-out renders)": {"caption retrieval over 24 captions": quality.retrieval,
                                           "ROC AUC matched vs one-attribute-off": quality.auc, "images": quality.count,
                                           "folder size MB": round(folder_size_mb(out_dir), 2)},
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} --steps {config.steps}\n```",
        },
    )


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())
