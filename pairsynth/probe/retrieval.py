"""``pairsynth probe --task retrieval``: do synthetic pairs help a small CLIP/CLAP learn from a few real ones?

Image–caption and audio–caption datasets exist to train CLIP/CLAP-style models, so this probe trains
one from scratch on ``shots`` real pairs per caption — alone, with classic augmentation, and with
synthetic pairs mixed in by DA-Fusion's rule (each real pair replaced, with probability ``p``, by a
synthetic pair *of the same caption*). It then ranks held-out real pairs: sample → caption among the
test set's distinct captions, and caption → sample (a hit when any of the top ``k`` samples carries
that caption). Same draws, same seeds, same paired t intervals as the classification probe.

The model is the medium's (its :class:`RetrievalKit`, from the media registry's probe hooks): for
images open_clip's own ``CLIP`` class with a tiny config (a 2-layer ViT on ``image_size``² images, a
2-layer text tower over open_clip's BPE tokens) and open_clip's ``ClipLoss`` (:class:`ClipKit`); for
audio a tiny transformers ``ClapModel`` (:mod:`pairsynth.probe.clap_retrieval`).
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

from pairsynth.media import media_held, medium
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


class RetrievalKit:
    """A medium's contrastive model for the retrieval probe: how its samples and captions are stored,
    how a fresh model is built, trained one step and asked for embeddings.

    Stored samples and caption tokens are tensors stacked on dimension 0, so the probe's mixing
    (a ``ConcatDataset`` of ``TensorDataset``\ s) is the same for every medium.
    """

    description: str = ""

    def encode(self, pairs: Sequence[PairRecord]) -> torch.Tensor:
        """Stored form of the pairs' samples."""
        raise NotImplementedError

    def tokens(self, captions: Sequence[str]) -> torch.Tensor:
        """Caption tokens, one row per caption."""
        raise NotImplementedError

    def build(self) -> torch.nn.Module:
        """A freshly initialised model (the caller seeds torch first)."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, samples: torch.Tensor, tokens: torch.Tensor, *, augment: bool,
             generator: torch.Generator) -> torch.Tensor:
        """The model's own contrastive loss on a batch, with classic augmentation when ``augment``."""
        raise NotImplementedError

    def after_step(self, model: torch.nn.Module) -> None:
        """Keep the learned temperature in range, as the model's own trainer does."""

    def embed(self, model: torch.nn.Module, samples: torch.Tensor,
              tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised sample and caption embeddings (no augmentation)."""
        raise NotImplementedError


class ClipKit(RetrievalKit):
    """Images: a tiny open_clip ``CLIP`` on ``image_size``² pixels, trained with open_clip's ``ClipLoss``."""

    def __init__(self, image_size: int, captions: Sequence[str]) -> None:
        self.space = PixelSpace(image_size)
        self.caption_tokens = caption_tokens(captions)
        self.description = f"open_clip.CLIP {TINY_CLIP}, ClipLoss, trained from scratch"
        self._loss = None

    def encode(self, pairs: Sequence[PairRecord]) -> torch.Tensor:
        return self.space.encode(pairs)

    def tokens(self, captions: Sequence[str]) -> torch.Tensor:
        return self.caption_tokens(captions)

    def build(self) -> torch.nn.Module:
        return tiny_clip(self.space.size, self.caption_tokens)

    def loss(self, model, samples, tokens, *, augment, generator):
        from open_clip import ClipLoss

        self._loss = self._loss or ClipLoss()
        out = model(self.space.prepare(samples, augment=augment, generator=generator), tokens)
        return self._loss(out["image_features"], out["text_features"], out["logit_scale"])

    def after_step(self, model):
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))  # as open_clip's trainer does

    def embed(self, model, samples, tokens):
        generator = torch.Generator().manual_seed(0)
        images = model.encode_image(self.space.prepare(samples, augment=False, generator=generator))
        return F.normalize(images, dim=-1), F.normalize(model.encode_text(tokens), dim=-1)


def run_retrieval(real: str | Path, synthetic: Sequence[str | Path], config, *, test: str | Path | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train a tiny CLIP/CLAP per condition and draw; return the summary (R@1, R@5 both ways, paired gains).

    Args:
        real: real image–caption or audio–caption pairs, any layout :func:`pairsynth.readers.read_pairs`
            reads; each caption needs several pairs (``shots`` to train on, at least one to test on).
        synthetic: one or more synthetic pair datasets of the same medium; pairs whose caption is not a
            real caption are ignored.
        config: a :class:`~pairsynth.probe.protocol.ProbeConfig`; ``shots`` count pairs per caption.
        test: real pairs to test on; default: a split of ``real`` stratified by caption.
        on_progress: called with (runs done, runs in all).
    """
    started = time.perf_counter()
    # 1. Check inputs
    config.check()
    if not synthetic:
        raise ProbeError("give at least one --synthetic dataset to compare with the real data")
    pairs, unreadable, held = read_caption_pairs(real)
    captions = sorted({p.caption for p in pairs})
    test_pairs = read_caption_pairs(test, expect=(held, real))[0] if test is not None else None
    synthetic_sets, synthetic_unreadable = {}, {}
    for path in synthetic:
        name = synthetic_name(Path(path), synthetic_sets)
        records, synthetic_unreadable[name], _ = read_caption_pairs(path, expect=(held, real))
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
    # 3. Encode: samples once, captions once
    every = [*pool, *test_pairs, *(pair for part in synthetic_sets.values() for pair in part)]
    kit: RetrievalKit = medium(held).probe_hooks().retrieval_kit(config, [pair.caption for pair in every])
    pool_x, test_x = kit.encode(pool), kit.encode(test_pairs)
    pool_t = kit.tokens([p.caption for p in pool])
    test_captions = sorted({p.caption for p in test_pairs})
    test_caption_index = np.array([test_captions.index(p.caption) for p in test_pairs])
    test_t = kit.tokens(test_captions)
    stored = {name: (kit.encode(part), kit.tokens([p.caption for p in part]), [p.caption for p in part])
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
                model, share = _train(kit, real_part, stored.get(source), p=config.p,
                                      augment=augment, config=config, seed=seed)
                runs[shots][condition].append({**recall_at_k(model, kit, test_x, test_t, test_caption_index),
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
        "model": kit.description,
        "config": {**asdict(config), "shots": list(config.shots)},
        "medium": held,
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


def _train(kit: RetrievalKit, real: tuple, synthetic: tuple | None, *, p: float, augment: bool, config,
           seed: int) -> tuple[torch.nn.Module, float]:
    """A tiny contrastive model trained with its own loss on real pairs (+ synthetic ones mixed by
    DA-Fusion's rule), and the share of training pairs that were synthetic."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = kit.build()
    real_x, real_t, real_captions = real
    syn_x, syn_t, syn_captions = synthetic if synthetic is not None else (real_x[:0], real_t[:0], [])
    data = ConcatDataset([TensorDataset(real_x, real_t), TensorDataset(syn_x, syn_t)])
    # captions without synthetic pairs stay real (strict=False): a synthetic set need not cover every caption
    sampler = MixingSampler(real_captions, syn_captions, p=p if synthetic is not None else 0.0, seed=seed, strict=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train.steps)
    model.train()
    step, epoch, drawn, synthetic_drawn = 0, 0, 0, 0
    while step < config.train.steps:
        sampler.set_epoch(epoch)
        for indices in BatchSampler(sampler, config.train.batch_size, drop_last=False):
            if step >= config.train.steps:
                break
            samples, tokens = (torch.stack(part) for part in zip(*(data[i] for i in indices)))
            loss = kit.loss(model, samples, tokens, augment=augment, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            kit.after_step(model)
            step += 1
            drawn += len(indices)
            synthetic_drawn += sum(i >= len(real_x) for i in indices)
        epoch += 1
    return model, synthetic_drawn / drawn if drawn else 0.0


@torch.inference_mode()
def recall_at_k(model: torch.nn.Module, kit: RetrievalKit, samples: torch.Tensor, caption_tokens: torch.Tensor,
                caption_of_sample: np.ndarray) -> dict[str, float]:
    """Sample → caption and caption → sample recall at 1 and 5 over the test pairs' distinct captions.

    Args:
        model: a trained CLIP/CLAP.
        kit: the medium's kit, which embeds the stored test samples and caption tokens.
        samples: stored test samples.
        caption_tokens: tokens of the distinct test captions.
        caption_of_sample: per test sample, the index of its caption in ``caption_tokens``.
    """
    model.eval()
    sample_features, text_features = kit.embed(model, samples, caption_tokens)
    return recall_from_similarity((sample_features @ text_features.T).numpy(), caption_of_sample)


def recall_from_similarity(similarity: np.ndarray, caption_of_sample: np.ndarray) -> dict[str, float]:
    """R@1/R@5 both ways from a ``(samples, captions)`` similarity matrix.

    Sample → caption: the rank of the sample's own caption among all captions (ties count against it).
    Caption → sample: a hit at ``k`` when any of the ``k`` most similar samples carries the caption.
    """
    truth = np.asarray(caption_of_sample)
    own = similarity[np.arange(len(truth)), truth]
    sample_rank = 1 + (similarity > own[:, None]).sum(axis=1)  # rank of the own caption among all captions
    order = np.argsort(-similarity.T, axis=1, kind="stable")  # per caption, samples best first
    first_hit = np.array([int(np.flatnonzero(truth[order[c]] == c)[0]) + 1 for c in range(similarity.shape[1])])
    return {"i2t_r1": float((sample_rank <= 1).mean()), "i2t_r5": float((sample_rank <= 5).mean()),
            "t2i_r1": float((first_hit <= 1).mean()), "t2i_r5": float((first_hit <= 5).mean())}


def read_caption_pairs(path: str | Path, *, expect: tuple[str, str | Path] | None = None
                       ) -> tuple[list[PairRecord], int, str]:
    """The readable pairs at ``path``, how many items could not be read, and the medium they hold.

    A pair's medium is the first the registry lists among those it holds (a triplet's image). Every
    pair must hold the same one, and ``expect`` (medium, the real data's path) when given.

    Raises:
        MixedMediaError: pairs of two media, or not the expected one.
        ProbeError: no readable pair.
    """
    records, unreadable, held, first_error = [], 0, expect[0] if expect else None, None
    for item in read_pairs(path):
        if isinstance(item, ReadError):
            unreadable += 1
            first_error = first_error or item
            continue
        kinds = media_held(item)
        kind = kinds[0] if kinds else None
        if held is None:
            held = kind
        if kind != held:
            where = (f"the real data {expect[1]} holds {medium(held).plural}" if expect
                     else f"others in {path} hold {held}")
            raise MixedMediaError(f"{item.source} holds {kind or 'no sample'} but {where}; "
                                  "--task retrieval trains on one medium")
        records.append(item)
    if unreadable:
        logger.warning("%s: %d unreadable pairs skipped", path, unreadable)
    if not records:
        why = f"; first: {first_error.source}: {first_error.reason}" if first_error else ""
        raise ProbeError(f"{path}: no readable caption pairs ({unreadable} unreadable{why})")
    return records, unreadable, held
