"""The contrastive objective of ``toy-shapes-clip`` and ``toy-sounds-clap``.

A world has few captions (24 shapes, 8 sounds), so a batch holds many items per caption. Plain
in-batch InfoNCE would treat those as negatives; instead each item is classified against all the
world's captions, and each caption in the batch is matched to all of its items (multi-positive):
the same contrastive objective without false negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pairsynth_train.loop import TrainConfig


@dataclass(kw_only=True)
class ContrastiveTrainConfig(TrainConfig):
    """Settings both contrastive judges use; each trainer's config adds its own and a ``default()``."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int
    eval_count: int  # held-out scenes measured after export
    log_every: int


def multi_positive_loss(item_logits: torch.Tensor, caption_logits: torch.Tensor, captions: list[str],
                        names: list[str]) -> torch.Tensor:
    """Item→caption cross-entropy plus multi-positive caption→item cross-entropy, averaged.

    Args:
        item_logits: (B, C) scaled similarities of each item to each of the world's captions.
        caption_logits: (C, B) scaled similarities of each caption to each item.
        captions: The true caption of each item.
        names: The world's captions, in the logits' caption order.
    """
    targets = torch.tensor([names.index(c) for c in captions])
    item_loss = F.cross_entropy(item_logits, targets)
    present = targets.unique()
    positives = (targets[None, :] == present[:, None]).float()  # (P, B)
    log_probs = caption_logits[present].log_softmax(dim=-1)
    caption_loss = -((log_probs * positives).sum(-1) / positives.sum(-1)).mean()
    return (item_loss + caption_loss) / 2
