"""Metrics the toy zoo's bars are stated in; shared by the trainers and ``benchmarks/zoo_quality.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pairsynth.world.shapes import all_captions, one_attribute_off


@dataclass
class ClipQuality:
    """How well a CLIP model tells matched from mismatched SHAPES pairs.

    Attributes:
        retrieval: Fraction of images whose best-scoring caption (of all 24) is their own.
        auc: ROC AUC of matched (image, caption) scores against one-attribute-off captions, pooled
            over all images (so scores must be comparable across images, as a filter threshold needs).
        count: Number of images evaluated.
    """

    retrieval: float
    auc: float
    count: int


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores = np.concatenate([positives, negatives])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    n_pos, n_neg = len(positives), len(negatives)
    rank_sum = ranks[:n_pos].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def caption_quality(sims: np.ndarray, captions: list[str], names: list[str],
                    one_attribute_off: Callable[[str], list[str]]) -> ClipQuality:
    """Retrieval and matched-vs-one-attribute-off AUC from a (N, len(names)) similarity matrix.

    Args:
        sims: Similarity of each item (row) to each of the world's captions ``names`` (column).
        captions: The true caption of each item.
        names: All captions of the world, in the columns' order.
        one_attribute_off: The world's hard negatives of a caption.
    """
    index = {c: i for i, c in enumerate(names)}
    truth = np.array([index[c] for c in captions])
    retrieval = float((sims.argmax(axis=1) == truth).mean())
    positives = sims[np.arange(len(captions)), truth]
    negatives = np.array([sims[i, index[off]] for i, c in enumerate(captions) for off in one_attribute_off(c)])
    return ClipQuality(retrieval=retrieval, auc=roc_auc(positives, negatives), count=len(captions))


def clip_quality(image_features: torch.Tensor, captions: list[str], text_features: dict[str, torch.Tensor]) -> ClipQuality:
    """Score SHAPES images against the world's captions.

    Args:
        image_features: L2-normalised image embeddings, (N, D).
        captions: The true caption of each image.
        text_features: L2-normalised embedding per caption, for all 24 captions of the world.
    """
    names = all_captions()
    table = torch.stack([text_features[c] for c in names])
    return caption_quality((image_features @ table.T).numpy(), captions, names, one_attribute_off)


@torch.no_grad()
def open_clip_quality(model, preprocess, tokenizer, images, captions: list[str], batch_size: int = 128) -> ClipQuality:
    """:func:`clip_quality` for an open_clip model and PIL images, through its own preprocessing."""
    model.eval()
    names = all_captions()
    text = model.encode_text(tokenizer(names))
    text = torch.nn.functional.normalize(text, dim=-1)
    text_features = dict(zip(names, text))
    feats = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([preprocess(im) for im in images[start : start + batch_size]])
        feats.append(torch.nn.functional.normalize(model.encode_image(pixels), dim=-1))
    return clip_quality(torch.cat(feats), captions, text_features)


def images_to_tensor(images) -> torch.Tensor:
    """PIL RGB images → (B, 3, H, W) in [-1, 1], the judges' input convention."""
    pixels = np.stack([np.asarray(im.convert("RGB")) for im in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@dataclass(kw_only=True)
class Generated:
    """What a pipeline made for ``captions`` (PIL images, or waveforms (B, samples)), and the time it took."""

    outputs: list
    captions: list[str]
    seconds: float

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / max(1, len(self.captions))


@torch.no_grad()
def generate(pipe, captions: list[str], seeds: list[int], steps: int, guidance: float, batch_size: int = 32,
             **call) -> Generated:
    """One sample per (caption, seed), each from its own generator (batch-size independent).

    ``call`` holds the pipeline's own arguments (``output_type``, ``audio_length_in_s``...); images
    come back as the pipeline's ``images``, audio as its ``audios``.
    """
    began = time.monotonic()
    outputs = []
    for start in range(0, len(captions), batch_size):
        chunk = slice(start, start + batch_size)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds[chunk]]
        out = pipe(prompt=captions[chunk], generator=generators, num_inference_steps=steps, guidance_scale=guidance, **call)
        outputs.extend(out.images if hasattr(out, "images") else out.audios)
    return Generated(outputs=outputs, captions=list(captions), seconds=time.monotonic() - began)


def generate_images(pipe, captions: list[str], seeds: list[int], steps: int, guidance: float, batch_size: int = 32) -> list:
    """SHAPES: one PIL image per (caption, seed)."""
    return generate(pipe, captions, seeds, steps, guidance, batch_size, output_type="pil").outputs


def judge_images(judge, images, captions: list[str]) -> dict[str, float]:
    """Fraction of images whose judged attributes match their caption, per attribute and all at once."""
    from pairsynth.world.shapes import parse_caption
    from pairsynth_train.judges import score_predictions

    return score_predictions(judge.predict(images_to_tensor(images)), [parse_caption(c) for c in captions])
