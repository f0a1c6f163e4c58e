"""AdamW with linear warmup and cosine decay: the one optimiser recipe every toy trainer uses."""

from __future__ import annotations

import math

import torch


def adamw_with_cosine(
    params, lr: float, steps: int, warmup: int, weight_decay: float = 0.0
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW whose rate ramps up over ``warmup`` steps, then decays to 5 % of ``lr`` by ``steps``."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    warmup = max(1, min(warmup, steps // 2))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
