"""The held-out real test split and the seeded few-shot training draws.

Every condition of a probe trains on the *same* draws and is tested on the *same* held-out real
examples, so the difference between two conditions on one draw is a paired measurement: the draw's
luck (which five cats it got) cancels, and the interval of the gain is much tighter than the
intervals of the two accuracies it compares.

Draws are nested: draw ``d`` at 10 shots holds draw ``d`` at 5 shots plus five more per class, as
in DA-Fusion's and most few-shot protocols, so a curve over shots is not jagged by resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from pairsynth.probe.errors import SplitError


@dataclass(frozen=True)
class Split:
    """Positions into the real examples: the training pool and the held-out test set."""

    train: np.ndarray
    test: np.ndarray


def stratified_split(labels: Sequence[str], *, test_fraction: float, seed: int) -> Split:
    """Hold out ``test_fraction`` of the real examples, the same share of every class.

    Raises:
        SplitError: fewer test examples than classes, or a class too small to appear on both sides.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"--test-fraction must lie in (0, 1), got {test_fraction}")
    test_size = int(round(test_fraction * len(labels)))
    if test_size < len(classes):
        raise SplitError(f"a test split of {test_fraction:g} holds {test_size} real examples but there are "
                             f"{len(classes)} classes; give more real data, a larger --test-fraction or --test DIR")
    small = [str(c) for c, n in zip(classes, counts) if n < 2]
    if small:
        raise SplitError(f"class {small[0]!r} has one real example; it cannot be both trained on and tested")
    if len(labels) - test_size < len(classes):
        raise SplitError(f"a test split of {test_fraction:g} leaves {len(labels) - test_size} real examples to "
                             f"train on, fewer than the {len(classes)} classes; use a smaller --test-fraction")
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed)
    return Split(np.sort(train), np.sort(test))


def check_test_set(labels: Sequence[str], classes: Sequence[str], where: str) -> None:
    """A given test set must hold at least one example of every class and one example per class overall."""
    present = set(labels)
    missing = [c for c in classes if c not in present]
    if len(labels) < len(classes):
        raise SplitError(f"{where}: {len(labels)} test examples for {len(classes)} classes; "
                             "the test set needs at least one example of each class")
    if missing:
        raise SplitError(f"{where}: no test example of class {missing[0]!r}")


def few_shot_draws(labels: Sequence[str], pool: np.ndarray, shots: Sequence[int], draws: int,
                   seed: int) -> dict[int, list[np.ndarray]]:
    """Per shot count, ``draws`` training subsets with ``shots`` examples of every class (nested over shots).

    Args:
        labels: the label of every real example.
        pool: positions (into ``labels``) that may be drawn: the training side of the split.
        shots: examples per class, e.g. ``(5, 10, 20)``.
        draws: subsets per shot count.
        seed: draw ``d`` depends on ``(seed, d)`` only.

    Raises:
        SplitError: a class has fewer than ``max(shots)`` examples in the training pool.
    """
    labels = np.asarray(labels)
    by_class = {c: pool[labels[pool] == c] for c in np.unique(labels[pool])}
    largest = max(shots)
    short = {c: len(members) for c, members in by_class.items() if len(members) < largest}
    if short:
        name, have = next(iter(short.items()))
        raise SplitError(f"class {name!r} has {have} real training examples, fewer than --shots {largest}; "
                             "lower the shots or give more real data")
    out: dict[int, list[np.ndarray]] = {n: [] for n in shots}
    for draw in range(draws):
        rng = np.random.default_rng([seed, draw])
        orders = {c: rng.permutation(members) for c, members in sorted(by_class.items())}
        for n in shots:
            out[n].append(np.sort(np.concatenate([order[:n] for order in orders.values()])))
    return out
