"""Means, spreads and paired intervals over draws: what every number in a probe report rests on.

A gain is measured per draw (condition A and condition B trained on the same few examples, tested
on the same real test set), so its uncertainty is that of the *paired* differences: a Student t
interval ``mean(d) ± t(0.975, n−1) · sd(d) / √n`` (``scipy.stats.t``). With fewer than two draws
there is no interval, and the report says so instead of printing one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of per-draw values."""

    mean: float
    std: float | None  # None with one draw
    draws: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class PairedGain:
    """The mean paired difference ``a − b`` over draws, with its t interval.

    Attributes:
        mean: mean of the per-draw differences.
        low, high: the interval's ends (``None`` with fewer than two draws).
        confidence: the interval's level (0.95).
        draws: how many paired differences it rests on.
        wins: draws where ``a`` beat ``b``.
        p_value: two-sided paired t-test p-value (``None`` with fewer than two draws or no variation).
    """

    mean: float
    low: float | None
    high: float | None
    confidence: float
    draws: int
    wins: int
    p_value: float | None

    @property
    def above_zero(self) -> bool:
        """Whether the whole interval lies above zero: a gain the draws support."""
        return self.low is not None and self.low > 0

    def as_dict(self) -> dict:
        return {**asdict(self), "above_zero": self.above_zero}


def spread(values: Sequence[float]) -> Spread:
    """Mean ± sample std (``ddof=1``) of per-draw values."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("no draws to summarise")
    return Spread(float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else None, int(array.size))


def paired_gain(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedGain:
    """The paired gain of ``a`` over ``b`` (same draws, same order) with a Student t interval.

    Raises:
        ValueError: ``a`` and ``b`` differ in length or are empty.
    """
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(a) != len(b) or diffs.size == 0:
        raise ValueError(f"paired values need the same non-zero number of draws, got {len(a)} and {len(b)}")
    n = int(diffs.size)
    mean = float(diffs.mean())
    wins = int((diffs > 0).sum())
    if n < 2:
        return PairedGain(mean=mean, low=None, high=None, confidence=confidence, draws=n, wins=wins, p_value=None)
    sem = float(diffs.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:
        return PairedGain(mean=mean, low=mean, high=mean, confidence=confidence, draws=n, wins=wins, p_value=None)
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    p_value = float(2 * stats.t.sf(abs(mean / sem), df=n - 1))
    return PairedGain(mean=mean, low=float(low), high=float(high), confidence=confidence, draws=n, wins=wins,
                      p_value=p_value)


def condition_table(by_condition: Mapping[str, Sequence[Mapping[str, float]]], metrics: Sequence[str],
                    baselines: Sequence[str]) -> dict:
    """Per metric: each condition's spread, the best baseline, and every other condition's paired gains.

    Args:
        by_condition: per condition, one dict of metric values per draw (draws in the same order).
        metrics: the metrics to summarise, e.g. ``["accuracy"]``.
        baselines: the conditions without synthetic data; the best of them (by mean) is what a
            synthetic condition must beat. ``over_real`` compares with the first baseline too.
    """
    table: dict = {"metrics": {}, "baseline": {}, "gains": {}, "draws": {}}
    for metric in metrics:
        values = {c: [run[metric] for run in runs] for c, runs in by_condition.items()}
        table["metrics"][metric] = {c: spread(v).as_dict() for c, v in values.items()}
        best = max(baselines, key=lambda c: table["metrics"][metric][c]["mean"])
        table["baseline"][metric] = best
        table["gains"][metric] = {
            c: {"over": best, **paired_gain(v, values[best]).as_dict(),
                "over_real": {"over": baselines[0], **paired_gain(v, values[baselines[0]]).as_dict()}}
            for c, v in values.items() if c not in baselines}
    table["draws"] = min(len(runs) for runs in by_condition.values())
    return table
