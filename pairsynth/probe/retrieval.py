"""``pairsynth probe --task retrieval``: do synthetic pairs help a small CLIP learn from a few real ones?

Image–caption datasets exist to train CLIP-style models, so this probe trains one: open_clip's own
``CLIP`` class with a tiny config (a 2-layer ViT on ``image_size``² images, a 2-layer text tower over
open_clip's BPE tokens) and open_clip's ``ClipLoss``, from scratch, on ``shots`` real pairs per
caption — alone, with classic augmentation, and with synthetic pairs mixed in by DA-Fusion's rule
(each real pair replaced, with probability ``p``, by a synthetic pair *of the same caption*). It then
ranks held-out real pairs: image → caption among the test set's distinct captions, and caption →
image (a hit when any of the top ``k`` images carries that caption). Same draws, same seeds, same
paired t intervals as the classification probe.

Audio–caption retrieval is not implemented: a tiny ``ClapModel`` trained from scratch on a few clips
is a separate piece of work, so audio datasets get a one-line error naming the alternative.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, ConcatDataset, TensorDataset

from pairsynth.probe.errors import MixedMediaError, ProbeError
from pairsynth.probe.features import PixelSpace
from pairsynth.probe.labeled import synthetic_name
from pairsynth.probe.mixing import MixingSampler
from pairsynth.probe.splits import few_shot_draws, stratified_split
from pairsynth.probe.stats import condition_table
from pairsynth.readers import PairRecord, ReadError, read_pairs
from pairsynth.torch_compat import ensure_torchvision_importable

logger = logging.getLogger(__name__)

METRICS = ("i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5")
REAL, CLASSIC = "real", "real+classic"
MAX_CONTEXT = 77
TINY_CLIP = {"embed_dim": 64, "vision": {"layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
             "text": {"layers": 2, "width": 64, "heads": 2}}


@dataclass(frozen=True)
class CaptionTokens:
    """open_clip BPE tokens of every caption the probe sees, renumbered onto the ids that occur.

    A 49,408-row token table would hold 90 % of a tiny CLIP's parameters and most of its optimizer's
    time while a probe's captions use a few dozen tokens. Renumbering keeps the order of the ids, so
    padding stays 0 and end-of-text stays the largest id, which open_clip's argmax pooling relies on.
    """

    rows: dict[str, torch.Tensor]
    vocab_size: int
    context_length: int

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.rows[c] for c in captions]) if captions else torch.zeros(0, self.context_length,
                                                                                         dtype=torch.long)


def caption_tokens(captions: Sequence[str]) -> CaptionTokens:
    """Tokenize ``captions`` once with open_clip's own tokenizer and renumber the ids (see :class:`CaptionTokens`)."""
    ensure_torchvision_importable()
    import open_clip

    unique = sorted(set(captions))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=MAX_CONTEXT)
    tokens = tokenizer(unique).numpy()
    context = int((tokens != 0).sum(axis=1).max())
    tokens = tokens[:, :context]
    used = np.unique(np.concatenate([[0], tokens.ravel()]))
    compact = torch.from_numpy(np.searchsorted(used, tokens)).long()
    return CaptionTokens(dict(zip(unique, compact)), len(used), context)


def tiny_clip(image_size: int, tokens: CaptionTokens) -> torch.nn.Module:
    """open_clip's ``CLIP`` with a tiny config (a 2-layer ViT and a 2-layer text tower, width 64)."""
    ensure_torchvision_importable()
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(image_size=image_size, **TINY_CLIP["vision"])
    text = CLIPTextCfg(context_length=tokens.context_length, vocab_size=tokens.vocab_size, **TINY_CLIP["text"])
    return open_clip.CLIP(TINY_CLIP["embed_dim"], vision, text, output_dict=True)


def run_retrieval(real: str | Path, synthetic: Sequence[str | Path], config, *, test: str | Path | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train a tiny CLIP per condition and draw; return the summary (R@1, R@5 both ways, paired gains).

    Args:
        real: real image–caption pairs, any layout :func:`pairsynth.readers.read_pairs` reads; each
            caption needs several pairs (``shots`` to train on, at least one to test on).
        synthetic: one or more synthetic pair datasets; pairs whose caption is not a real caption are ignored.
        config: a :class:`~pairsynth.probe.protocol.ProbeConfig`; ``shots`` count pairs per caption.
        test: real pairs to test on; default: a split of ``real`` stratified by caption.
        on_progress: called with (runs done, runs in all).
    """
    started = time.perf_counter()
    # 1. Check inputs
    config.check()
    if not synthetic:
        raise ProbeError("give at least one --synthetic dataset to compare with the real data")
    pairs, unreadable = _image_pairs(real)
    captions = sorted({p.caption for p in pairs})
    test_pairs = _image_pairs(test)[0] if test is not None else None
    synthetic_sets, synthetic_unreadable = {}, {}
    for path in synthetic:
        name = synthetic_name(Path(path), synthetic_sets)
        records, synthetic_unreadable[name] = _image_pairs(path)
        usable = [p for p in records if p.caption in set(captions)]
        if not usable:
            raise ProbeError(f"{path}: no synthetic pair has one of the real captions (e.g. {captions[0]!r})")
        synthetic_sets[name] = usable
    # 2. Split by caption, draw few-shot subsets
    if test_pairs is None:
        split = stratified_split([p.caption for p in pairs], test_fraction=config.test_fraction, seed=config.seed)
        pool, test_pairs = [pairs[i] for i in split.train], [pairs[i] for i in split.test]
        test_source = f"held out: {config.test_fraction:g} of {real}, stratified by caption, seed {config.seed}"
    else:
        pool, test_source = pairs, f"given: {test}"
    draws = few_shot_draws([p.caption for p in pool], np.arange(len(pool)), config.shots, config.draws, config.seed)
    # 3. Encode: images once, captions once
    space = PixelSpace(config.image_size)
    every = [*pool, *test_pairs, *(pair for part in synthetic_sets.values() for pair in part)]
    tokenizer = caption_tokens([pair.caption for pair in every])
    pool_x, test_x = space.encode(pool), space.encode(test_pairs)
    pool_t = tokenizer([p.caption for p in pool])
    test_captions = sorted({p.caption for p in test_pairs})
    test_caption_index = np.array([test_captions.index(p.caption) for p in test_pairs])
    test_t = tokenizer(test_captions)
    stored = {name: (space.encode(part), tokenizer([p.caption for p in part]), [p.caption for p in part])
              for name, part in synthetic_sets.items()}
    # 4. Train every condition on every draw
    conditions = [(REAL, None, False), (CLASSIC, None, True)]
    for name in synthetic_sets:
        conditions += [(f"real+{name}", name, False), (f"real+{name}+classic", name, True)]
    runs = {n: {c[0]: [] for c in conditions} for n in config.shots}
    total, done = len(config.shots) * config.draws * len(conditions), 0
    for shots in config.shots:
        for draw, rows in enumerate(draws[shots]):
            seed = int(np.random.SeedSequence([config.seed, shots, draw]).generate_state(1)[0])
            real_part = (pool_x[rows], pool_t[rows], [pool[i].caption for i in rows])
            for condition, source, augment in conditions:
                model, share = _train(space, tokenizer, real_part, stored.get(source), p=config.p,
                                      augment=augment, config=config, seed=seed)
                runs[shots][condition].append({**recall_at_k(model, space, test_x, test_t, test_caption_index),
                                               "synthetic_share": share})
                done += 1
                if on_progress:
                    on_progress(done, total)
            logger.info("%d pairs per caption, draw %d: %s", shots, draw,
                        ", ".join(f"{c} R@1 {runs[shots][c][-1]['i2t_r1']:.3f}" for c, _, _ in conditions))
    # 5. Summarise
    results = [{"shots": shots, **condition_table(by, METRICS, [REAL, CLASSIC]),
                "synthetic_share": {c: float(np.mean([r["synthetic_share"] for r in by[c]])) for c in by},
                "runs": {c: [r["i2t_r1"] for r in by[c]] for c in by}} for shots, by in runs.items()]
    return {
        "task": "retrieval",
        "metrics": list(METRICS),
        "model": f"open_clip.CLIP {TINY_CLIP}, ClipLoss, trained from scratch",
        "config": {**asdict(config), "shots": list(config.shots)},
        "medium": "image",
        "captions": len(captions),
        "conditions": [c[0] for c in conditions],
        "baselines": [REAL, CLASSIC],
        "real": {"path": str(real), "examples": len(pairs), "training_pool": len(pool), "unreadable": unreadable},
        "test": {"source": test_source, "examples": len(test_pairs), "captions": len(test_captions)},
        "synthetic": {name: {"path": str(path), "examples": len(part), "unreadable": synthetic_unreadable[name]}
                      for (name, part), path in zip(synthetic_sets.items(), synthetic)},
        "results": results,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


def _train(space: PixelSpace, tokens: CaptionTokens, real: tuple, synthetic: tuple | None, *, p: float, augment: bool, config,
           seed: int) -> tuple[torch.nn.Module, float]:
    """A tiny CLIP trained with ``ClipLoss`` on real pairs (+ synthetic ones mixed by DA-Fusion's rule), and
    the share of training pairs that were synthetic."""
    from open_clip import ClipLoss

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = tiny_clip(space.size, tokens)
    real_x, real_t, real_captions = real
    syn_x, syn_t, syn_captions = synthetic if synthetic is not None else (real_x[:0], real_t[:0], [])
    data = ConcatDataset([TensorDataset(real_x, real_t), TensorDataset(syn_x, syn_t)])
    # captions without synthetic pairs stay real (strict=False): a synthetic set need not cover every caption
    sampler = MixingSampler(real_captions, syn_captions, p=p if synthetic is not None else 0.0, seed=seed, strict=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train.steps)
    loss_fn = ClipLoss()
    model.train()
    step, epoch, drawn, synthetic_drawn = 0, 0, 0, 0
    while step < config.train.steps:
        sampler.set_epoch(epoch)
        for indices in BatchSampler(sampler, config.train.batch_size, drop_last=False):
            if step >= config.train.steps:
                break
            images, tokens = (torch.stack(part) for part in zip(*(data[i] for i in indices)))
            out = model(space.prepare(images, augment=augment, generator=generator), tokens)
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))  # as open_clip's trainer does
            step += 1
            drawn += len(indices)
            synthetic_drawn += sum(i >= len(real_x) for i in indices)
        epoch += 1
    return model, synthetic_drawn / drawn if drawn else 0.0


@torch.inference_mode()
def recall_at_k(model: torch.nn.Module, space: PixelSpace, images: torch.Tensor, caption_tokens: torch.Tensor,
                caption_of_image: np.ndarray) -> dict[str, float]:
    """Image → caption and caption → image recall at 1 and 5 over the test pairs' distinct captions.

    Args:
        model: a trained CLIP.
        space: prepares the stored test images.
        images: stored test images.
        caption_tokens: tokens of the distinct test captions.
        caption_of_image: per test image, the index of its caption in ``caption_tokens``.
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    image_features = F.normalize(model.encode_image(space.prepare(images, augment=False, generator=generator)), dim=-1)
    text_features = F.normalize(model.encode_text(caption_tokens), dim=-1)
    similarity = (image_features @ text_features.T).numpy()  # (images, captions)
    truth = np.asarray(caption_of_image)
    own = similarity[np.arange(len(truth)), truth]
    image_rank = 1 + (similarity > own[:, None]).sum(axis=1)  # rank of the own caption among all captions
    order = np.argsort(-similarity.T, axis=1, kind="stable")  # per caption, images best first
    first_hit = np.array([int(np.flatnonzero(truth[order[c]] == c)[0]) + 1 for c in range(similarity.shape[1])])
    return {"i2t_r1": float((image_rank <= 1).mean()), "i2t_r5": float((image_rank <= 5).mean()),
            "t2i_r1": float((first_hit <= 1).mean()), "t2i_r5": float((first_hit <= 5).mean())}


def _image_pairs(path: str | Path) -> tuple[list[PairRecord], int]:
    """The readable image–caption pairs at ``path`` and how many items could not be read."""
    records, unreadable = [], 0
    for item in read_pairs(path):
        if isinstance(item, ReadError):
            unreadable += 1
            continue
        if item.image is None:
            raise MixedMediaError(f"{item.source}: --task retrieval trains an open_clip model on image–caption pairs; "
                                  "audio–caption retrieval is not supported yet (use --task classify with labels)")
        records.append(item)
    if unreadable:
        logger.warning("%s: %d unreadable pairs skipped", path, unreadable)
    if not records:
        raise ProbeError(f"{path}: no readable image–caption pairs")
    return records, unreadable
