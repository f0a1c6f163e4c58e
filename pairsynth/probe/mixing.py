"""Mix real and synthetic training data the way DA-Fusion does, for plain PyTorch and for ``datasets``.

DA-Fusion's rule (Trabucco et al. 2023): each time a real training example would be used, it is
replaced by a synthetic example *of its class* with probability ``p`` (0.5 by default). The real
set keeps its size and class balance; synthetic data only ever stands in for a real example.

One function, :func:`mixing_plan`, decides every replacement from a seed; the two front ends share it:

* :class:`MixingSampler` — a ``torch.utils.data.Sampler`` over ``ConcatDataset([real, synthetic])``,
  one plan per epoch (call :meth:`MixingSampler.set_epoch` like ``DistributedSampler``'s);
* :func:`mix_datasets` — a ``datasets.Dataset`` built with ``datasets``' own ``concatenate_datasets`` and
  ``select``, each row carrying its provenance (``origin``: ``real``/``synthetic``, ``source_key``).

``pairsynth probe`` trains through :class:`MixingSampler`, so it measures what a user would train with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch.utils.data

from pairsynth.probe.errors import MissingClassError

if TYPE_CHECKING:
    import datasets

REAL, SYNTHETIC = "real", "synthetic"


@dataclass(frozen=True)
class Provenance:
    """Where one training example came from."""

    origin: str  # "real" or "synthetic"
    index: int  # position in its own dataset (real or synthetic)
    key: str | None = None  # that example's key, when the keys were given


def mixing_plan(real_labels: Sequence[str], synthetic_labels: Sequence[str], *, p: float,
                rng: np.random.Generator, shuffle: bool = True, strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One epoch: which example stands in each real example's place.

    Args:
        real_labels: the class of each real example.
        synthetic_labels: the class of each synthetic example.
        p: probability that a real example is replaced by a synthetic one of its class.
        rng: decides the order, the coin flips and which synthetic example is drawn.
        shuffle: visit the real examples in a random order (as a shuffled DataLoader does).
        strict: raise when a real class has no synthetic example; otherwise such examples stay real.

    Returns:
        ``(is_synthetic, index)``: per step, whether the example is synthetic and its position in its
        own dataset (real or synthetic).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    real = np.asarray(real_labels, dtype=object)
    synthetic = np.asarray(synthetic_labels, dtype=object)
    by_class = {c: np.flatnonzero(synthetic == c) for c in set(synthetic.tolist())}
    missing = sorted({str(c) for c in real.tolist()} - set(map(str, by_class)))
    if p > 0 and missing and strict:
        raise MissingClassError(f"class {missing[0]!r} has no synthetic example to mix in "
                                f"(synthetic classes: {', '.join(sorted(map(str, by_class))) or 'none'})")
    order = rng.permutation(len(real)) if shuffle else np.arange(len(real))
    flips = rng.random(len(real)) < p
    picks = rng.random(len(real))  # drawn for every step, so the plan does not depend on which coins fell
    is_synthetic = np.zeros(len(real), dtype=bool)
    index = order.copy()
    for step, position in enumerate(order):
        members = by_class.get(real[position])
        if flips[step] and members is not None and len(members):
            is_synthetic[step] = True
            index[step] = members[int(picks[step] * len(members))]
    return is_synthetic, index


class MixingSampler(torch.utils.data.Sampler[int]):
    """Indices into ``ConcatDataset([real, synthetic])``: each real example replaced w.p. ``p`` by a synthetic one of its class.

    Example::

        data = ConcatDataset([real_ds, synthetic_ds])
        sampler = MixingSampler(real_labels, synthetic_labels, p=0.5, seed=0)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for x, y in DataLoader(data, batch_size=32, sampler=sampler): ...

    Args:
        real_labels: the class of each example of the real dataset (the first in the concatenation).
        synthetic_labels: the class of each synthetic example (the second).
        p: replacement probability; 0 gives a plain shuffled pass over the real data.
        seed: with the epoch, fixes every choice.
        real_keys, synthetic_keys: optional keys, reported by :meth:`provenance`.
        strict: raise :class:`MissingClassError` when a real class has no synthetic example.
    """

    def __init__(self, real_labels: Sequence[str], synthetic_labels: Sequence[str], *, p: float = 0.5,
                 seed: int = 0, real_keys: Sequence[str] | None = None,
                 synthetic_keys: Sequence[str] | None = None, strict: bool = True) -> None:
        self.real_labels = list(real_labels)
        self.synthetic_labels = list(synthetic_labels)
        self.p, self.seed, self.strict = p, seed, strict
        self.real_keys, self.synthetic_keys = real_keys, synthetic_keys
        self.epoch = 0
        mixing_plan(self.real_labels, self.synthetic_labels, p=p, rng=np.random.default_rng(0), strict=strict)

    def set_epoch(self, epoch: int) -> None:
        """Use the plan of ``epoch`` (each epoch flips its own coins)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.real_labels)

    def __iter__(self) -> Iterator[int]:
        is_synthetic, index = mixing_plan(self.real_labels, self.synthetic_labels, p=self.p, strict=self.strict,
                                          rng=np.random.default_rng([self.seed, self.epoch]))
        offset = len(self.real_labels)
        return iter((index + offset * is_synthetic).tolist())

    def provenance(self, index: int) -> Provenance:
        """Where the concatenated dataset's example ``index`` (as this sampler yields it) comes from."""
        if index < len(self.real_labels):
            return Provenance(REAL, index, self.real_keys[index] if self.real_keys is not None else None)
        own = index - len(self.real_labels)
        return Provenance(SYNTHETIC, own, self.synthetic_keys[own] if self.synthetic_keys is not None else None)

    def label(self, index: int) -> str:
        """The class of the concatenated dataset's example ``index``."""
        own = self.provenance(index)
        return (self.real_labels if own.origin == REAL else self.synthetic_labels)[own.index]


def mix_datasets(real: datasets.Dataset, synthetic: datasets.Dataset, *, p: float = 0.5, seed: int = 0,
                 epochs: int = 1, label_column: str = "label", key_column: str | None = None,
                 shuffle: bool = True, strict: bool = True) -> datasets.Dataset:
    """A ``datasets.Dataset`` of ``epochs × len(real)`` rows mixed by DA-Fusion's rule, with provenance columns.

    Row ``i`` is real row ``j`` or, with probability ``p``, a synthetic row of ``j``'s class. Two columns
    are added: ``origin`` (``real``/``synthetic``) and ``source_key`` (``key_column``'s value, or
    ``real:ROW``/``synthetic:ROW``). The result is built with ``concatenate_datasets`` and ``select``, so
    it stays memory-mapped; ``.to_iterable_dataset()`` streams it.

    Args:
        real: the real rows; ``label_column`` holds their class (string or ``ClassLabel``).
        synthetic: the synthetic rows, with the same columns and features.
        p: replacement probability.
        seed: with the epoch index, fixes every choice (the same as :class:`MixingSampler`'s epochs).
        epochs: passes over the real data, each with its own coin flips.
        label_column: the class column of both datasets.
        key_column: a column naming each row, copied into ``source_key``.
        shuffle: shuffle each epoch's order.
        strict: raise when a real class has no synthetic row.
    """
    import datasets as hf

    for name, part in (("real", real), ("synthetic", synthetic)):
        if label_column not in part.column_names:
            raise MissingClassError(f"the {name} dataset has no {label_column!r} column "
                                    f"(columns: {', '.join(part.column_names)})")
    real_labels, synthetic_labels = _label_strings(real, label_column), _label_strings(synthetic, label_column)
    tagged = []
    for origin, part in ((REAL, real), (SYNTHETIC, synthetic)):
        keys = [str(k) for k in part[key_column]] if key_column else [f"{origin}:{row}" for row in range(len(part))]
        tagged.append(part.add_column("origin", [origin] * len(part)).add_column("source_key", keys))
    combined = hf.concatenate_datasets(tagged)
    rows: list[int] = []
    for epoch in range(epochs):
        is_synthetic, index = mixing_plan(real_labels, synthetic_labels, p=p, shuffle=shuffle, strict=strict,
                                          rng=np.random.default_rng([seed, epoch]))
        rows.extend((index + len(real) * is_synthetic).tolist())
    return combined.select(rows)


def _label_strings(part: datasets.Dataset, column: str) -> list[str]:
    feature = part.features[column]
    values = part[column]
    if hasattr(feature, "int2str"):  # a ClassLabel: compare class names, not per-dataset ids
        return [feature.int2str(int(v)) for v in values]
    return [str(v) for v in values]
