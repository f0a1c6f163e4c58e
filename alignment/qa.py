"""The numbers of an alignment QA report, as pure functions of embeddings and scores.

Nothing here loads a model or touches a file, so every number the report shows can be pinned by a
unit test on a handful of hand-made vectors.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 30.0
"""Score (``100·max(cos, 0)``) a pair must reach by default: CLIPScore 30 is cosine 0.3, the filter
LAION-400M applied with ViT-B/32. No threshold suits every judge: read the report's histogram and
sweep, then choose yours."""

DEFAULT_DISTRACTORS = 100
"""Distractor captions per pair: enough that rank 1 means something, few enough to stay linear in N."""

DEFAULT_DUPLICATE_COSINE = 0.95
"""Two samples whose embeddings' cosine reaches this are near-duplicates (same picture re-encoded,
cropped a little, or the same sound); CLIP puts unrelated photos of one subject well below it."""

SIMILARITY_BLOCK_BYTES = 64 * 2**20
"""Memory for one block of the all-pairs similarity matrix; bounds duplicate search on big datasets."""


@dataclass(frozen=True, kw_only=True)
class Ranks:
    """Where each pair's own caption ranks among its distractor captions.

    Attributes:
        rank: 1 + the number of distractors the sample matches better than its own caption.
        distractors: how many distractors each pair was compared with.
        best: index into the pool of the best-matching distractor, ``-1`` when there were none.
        best_cosine: that distractor's cosine (NaN when there were none).
    """

    rank: np.ndarray
    distractors: np.ndarray
    best: np.ndarray
    best_cosine: np.ndarray


def distractor_pool(captions: Sequence[str], count: int, seed: int) -> list[str]:
    """The captions pairs are ranked against: ``count + 1`` distinct captions of the dataset, sampled.

    Sampling from the *sorted* unique captions with a seeded generator makes the pool independent of
    the order the dataset was read in. A pool of ``count + 1`` lets every pair use exactly ``count``
    of them after leaving out its own caption (see :func:`distractors_for`). A dataset with at most
    ``count + 1`` distinct captions uses all of them: ranks are then exact retrieval ranks.
    """
    if count < 1:
        raise ValueError(f"distractor count must be at least 1, got {count}")
    unique = sorted(set(captions))
    if len(unique) <= count + 1:
        return unique
    picks = np.random.default_rng(seed).choice(len(unique), size=count + 1, replace=False)
    return [unique[i] for i in picks]


def distractors_for(caption: str, pool: Sequence[str], count: int) -> list[str]:
    """The distractors of one pair: the pool without its own caption, first ``count`` of them."""
    return [text for text in pool if text != caption][:count]


def own_caption_ranks(sample_features: np.ndarray, cosines: np.ndarray, captions: Sequence[str],
                      pool: Sequence[str], pool_features: np.ndarray, count: int) -> Ranks:
    """Rank each pair's own caption among its distractors (:func:`distractors_for`).

    Args:
        sample_features: L2-normalised sample embeddings ``(N, D)``.
        cosines: each sample's cosine with its own caption ``(N,)``.
        captions: each pair's caption.
        pool: the distractor pool (:func:`distractor_pool`), ``K`` captions.
        pool_features: their L2-normalised embeddings ``(K, D)``.
        count: distractors per pair.
    """
    n = len(captions)
    if not len(pool) or not n:
        return rank_among(np.zeros((n, 0)), np.asarray(cosines), np.zeros((n, 0), bool))
    used = distractor_mask(captions, pool)
    used &= np.cumsum(used, axis=1) <= count  # the first `count` of the others, as distractors_for
    return rank_among(sample_features @ pool_features.T, np.asarray(cosines), used)


def distractor_mask(captions: Sequence[str], pool: Sequence[str]) -> np.ndarray:
    """``(N, K)``: which pool captions may count against each pair (never the pair's own caption)."""
    pool_index = {text: j for j, text in enumerate(pool)}
    used = np.ones((len(captions), len(pool)), dtype=bool)
    own = np.array([pool_index.get(caption, -1) for caption in captions], dtype=int)
    used[np.flatnonzero(own >= 0), own[own >= 0]] = False
    return used


def rank_among(sims: np.ndarray, cosines: np.ndarray, used: np.ndarray) -> Ranks:
    """Rank each pair's own-caption cosine among the distractor cosines ``sims`` where ``used``.

    A distractor counts against the pair only when its cosine is strictly higher. This is the one
    definition of the retrieval rank: the judges' :meth:`score_features` and the report use it.
    """
    n = len(cosines)
    if not used.size:
        return Ranks(rank=np.ones(n, int), distractors=np.zeros(n, int), best=np.full(n, -1),
                     best_cosine=np.full(n, np.nan))
    beats = used & (sims > cosines[:, None])
    masked = np.where(used, sims, -np.inf)
    best = np.argmax(masked, axis=1)
    distractors = used.sum(axis=1)
    best_cosine = np.where(distractors > 0, masked[np.arange(n), best], np.nan)
    return Ranks(rank=1 + beats.sum(axis=1), distractors=distractors, best=np.where(distractors > 0, best, -1),
                 best_cosine=best_cosine)


def duplicate_groups(features: np.ndarray, threshold: float = DEFAULT_DUPLICATE_COSINE) -> list[list[int]]:
    """Groups of near-duplicate samples: connected components of "cosine ≥ threshold".

    Connected components rather than pairs, because near-duplication is what a person removes as a
    set: A≈B and B≈C put all three in one group even when A and C fall just below the threshold.
    The similarity matrix is computed in row blocks, so memory stays bounded for large datasets.

    Returns:
        Groups of two or more row indices, each sorted; largest group first, then by first index.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(features)
    if n < 2:
        return []
    block = max(1, SIMILARITY_BLOCK_BYTES // (4 * n))
    rows, cols = [], []
    for start in range(0, n, block):
        sims = features[start : start + block] @ features[start:].T
        r, c = np.nonzero(sims >= threshold)
        keep = c > r  # upper triangle, the diagonal excluded: each pair once
        rows.append(r[keep] + start)
        cols.append(c[keep] + start)
    row, col = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(row), np.int8), (row, col)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(int(label), []).append(index)
    groups = [group for group in members.values() if len(group) > 1]
    return sorted(groups, key=lambda group: (-len(group), group[0]))


def score_histogram(scores: Sequence[float], bins: int = 50, upper: float = 100.0) -> tuple[list[float], list[int]]:
    """Counts of 0–``upper`` scores in equal bins; returns (bin edges, counts). The top edge is closed."""
    counts, edges = np.histogram(np.asarray(scores, float), bins=bins, range=(0.0, upper))
    return [round(float(e), 6) for e in edges], [int(c) for c in counts]


def threshold_sweep(scores: Sequence[float], total: int, thresholds: Sequence[float]) -> list[float]:
    """The fraction of ``total`` pairs whose score reaches each threshold (``score >= t`` keeps).

    ``total`` may exceed ``len(scores)``: pairs that were never scored (unusable media) are never kept.
    """
    if total <= 0:
        return [0.0 for _ in thresholds]
    values = np.sort(np.asarray(scores, float))
    below = np.searchsorted(values, np.asarray(thresholds, float), side="left")
    return [round(float((len(values) - b) / total), 6) for b in below]


def pass_rate(passed: int, total: int) -> float | None:
    """The share of pairs that passed, ``None`` for an empty dataset (nothing to judge)."""
    return passed / total if total else None


def gate_passes(rate: float | None, fail_under: float | None) -> bool | None:
    """The ``--fail-under`` gate: passes when at least ``fail_under`` of the pairs reach the threshold.

    ``None`` when no gate was asked for. An empty dataset fails a gate: nothing reached the threshold.
    """
    if fail_under is None:
        return None
    return rate is not None and rate >= fail_under


@dataclass(frozen=True, kw_only=True)
class GroupStats:
    """Acceptance of one caption, class or folder.

    Attributes:
        group: the caption, class label or folder.
        pairs: how many pairs it has.
        passed: how many reached the threshold with usable media.
        mean_score: their mean score (NaN when none was scored).
        top1: the share of scored pairs whose own caption ranked first (NaN when none was ranked).
    """

    group: str
    pairs: int
    passed: int
    mean_score: float
    top1: float

    @property
    def pass_rate(self) -> float:
        return self.passed / self.pairs if self.pairs else 0.0


def group_stats(groups: Sequence[str], passed: Sequence[bool], scores: Sequence[float | None],
                ranks: Sequence[int | None]) -> list[GroupStats]:
    """Per-group acceptance, worst pass rate first (ties: more pairs first, then by name)."""
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    stats = []
    for group, indices in members.items():
        scored = [scores[i] for i in indices if scores[i] is not None]
        ranked = [ranks[i] for i in indices if ranks[i] is not None]
        stats.append(GroupStats(
            group=group, pairs=len(indices), passed=sum(bool(passed[i]) for i in indices),
            mean_score=float(np.mean(scored)) if scored else float("nan"),
            top1=sum(r == 1 for r in ranked) / len(ranked) if ranked else float("nan"),
        ))
    return sorted(stats, key=lambda s: (s.pass_rate, -s.pairs, s.group))


def worst_and_best(scores: Sequence[float], k: int) -> tuple[list[int], list[int]]:
    """Indices of the ``k`` lowest (lowest first) and ``k`` highest (highest first) scores.

    The two never overlap: with fewer than ``2k`` scores the lower half is "worst" and the rest
    "best", so a small dataset still shows both ends. Ties are broken by index.
    """
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    cut = min(k, (len(order) + 1) // 2)
    return order[:cut], order[cut:][::-1][:k]


# --- streaming: the same numbers in memory that does not grow with the number of pairs -----------

SCORE_GRID = 10_000
"""Scores are stored rounded to 4 decimals (:meth:`PairScores.as_dict`), so counting them on a 1e-4 grid
over 0–100 (one million counters, 8 MB) is exact: quantiles, histogram and sweep come out of the
counts as they would out of the sorted list."""


class ScoreCounts:
    """Exact counts of 0–100 scores on the 1e-4 grid; fixed memory however many scores are added.

    Scores off the grid are rounded onto it (at most 5e-5 off; the report rounds to 1e-4 anyway).
    """

    def __init__(self) -> None:
        self.counts = np.zeros(100 * SCORE_GRID + 1, np.int64)
        self._n = 0
        self.total = 0.0
        self._buffer: list[float] = []

    @property
    def n(self) -> int:
        """How many scores were added."""
        return self._n + len(self._buffer)

    def add(self, score: float) -> None:
        self._buffer.append(score)
        if len(self._buffer) >= 65_536:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            values = np.asarray(self._buffer, float)
            self.total += float(values.sum())
            self._n += len(values)
            np.add.at(self.counts, np.clip(np.rint(values * SCORE_GRID), 0, len(self.counts) - 1).astype(np.int64), 1)
            self._buffer.clear()

    def _cumulative(self) -> np.ndarray:
        self._flush()
        return np.cumsum(self.counts)

    def _order(self, cumulative: np.ndarray, index: int) -> float:
        """The ``index``-th smallest score (0-based)."""
        return float(np.searchsorted(cumulative, index, side="right")) / SCORE_GRID

    def percentile(self, q: float) -> float:
        """As ``np.percentile(scores, q)`` (linear interpolation); NaN when empty."""
        cumulative = self._cumulative()
        if not self.n:
            return float("nan")
        position = (self.n - 1) * q / 100.0
        low = int(np.floor(position))
        below = self._order(cumulative, low)
        above = self._order(cumulative, min(low + 1, self.n - 1))
        return below + (position - low) * (above - below)

    def mean(self) -> float:
        self._flush()
        return self.total / self.n if self.n else float("nan")

    def min(self) -> float:
        return self.percentile(0.0)

    def max(self) -> float:
        return self.percentile(100.0)

    def histogram(self, bins: int = 50, upper: float = 100.0) -> tuple[list[float], list[int]]:
        """As :func:`score_histogram` of the scores (equal bins over 0–``upper``, top edge closed)."""
        self._flush()
        grid = np.arange(len(self.counts)) / SCORE_GRID
        counts, edges = np.histogram(grid, bins=bins, range=(0.0, upper), weights=self.counts)
        return [round(float(e), 6) for e in edges], [int(c) for c in counts]

    def reaching(self, thresholds: Sequence[float]) -> list[int]:
        """How many scores reach each threshold (``score >= t``)."""
        cumulative = self._cumulative()
        reached = []
        for threshold in thresholds:
            first = int(np.ceil(threshold * SCORE_GRID - 1e-6))  # the lowest grid point that reaches it
            if first <= 0:
                reached.append(self.n)
            elif first >= len(self.counts):
                reached.append(0)
            else:
                reached.append(self.n - int(cumulative[first - 1]))
        return reached

    def sweep(self, total: int, thresholds: Sequence[float]) -> list[float]:
        """As :func:`threshold_sweep`: the share of ``total`` pairs whose score reaches each threshold."""
        if total <= 0:
            return [0.0 for _ in thresholds]
        return [round(count / total, 6) for count in self.reaching(thresholds)]


class GroupTally:
    """:func:`group_stats`, one row at a time: per group, five counters and a score sum.

    The counters live in typed arrays, not per-group objects: about 100 bytes a group with its name,
    so the report of a run with 250,000 captions keeps ~25 MB of group state, not ~300 MB.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._pairs, self._passed = array("q"), array("q")
        self._scored, self._top1, self._ranked = array("q"), array("q"), array("q")
        self._score_sum = array("d")

    def __len__(self) -> int:
        return len(self._index)

    def add(self, group: str, passed: bool, score: float | None, rank: int | None) -> None:
        i = self._index.setdefault(group, len(self._index))
        if i == len(self._pairs):
            for column in (self._pairs, self._passed, self._scored, self._top1, self._ranked, self._score_sum):
                column.append(0)
        self._pairs[i] += 1
        self._passed[i] += bool(passed)
        if score is not None:
            self._score_sum[i] += score
            self._scored[i] += 1
        if rank is not None:
            self._top1[i] += rank == 1
            self._ranked[i] += 1

    def __iter__(self) -> Iterator[GroupStats]:
        """Every group as :func:`group_stats` orders them (worst pass rate first, then more pairs, then name)."""
        names = list(self._index)
        if not names:
            return
        pairs, passed = np.frombuffer(self._pairs, np.int64), np.frombuffer(self._passed, np.int64)
        by_name = np.empty(len(names), np.int64)
        by_name[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
        for i in np.lexsort((by_name, -pairs, passed / pairs)).tolist():
            yield GroupStats(group=names[i], pairs=self._pairs[i], passed=self._passed[i],
                             mean_score=self._score_sum[i] / self._scored[i] if self._scored[i] else float("nan"),
                             top1=self._top1[i] / self._ranked[i] if self._ranked[i] else float("nan"))

    def stats(self) -> list[GroupStats]:
        return list(self)


class Extremes:
    """:func:`worst_and_best` over a stream: the ``k`` lowest and ``k`` highest scores, with their items.

    Two heaps of ``k`` entries each; ties are broken by arrival order, as the list version breaks
    them by index.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.n = 0
        self._low: list[tuple[float, int, object]] = []  # max-heap of the k lowest (negated keys)
        self._high: list[tuple[float, int, object]] = []  # min-heap of the k highest

    def add(self, score: float, item: object) -> None:
        import heapq

        index = self.n
        self.n += 1
        if self.k <= 0:
            return
        entry_low = (-score, -index, item)
        if len(self._low) < self.k:
            heapq.heappush(self._low, entry_low)
        elif (score, index) < (-self._low[0][0], -self._low[0][1]):
            heapq.heapreplace(self._low, entry_low)
        entry_high = (score, index, item)
        if len(self._high) < self.k:
            heapq.heappush(self._high, entry_high)
        elif (score, index) > self._high[0][:2]:
            heapq.heapreplace(self._high, entry_high)

    def worst_and_best(self) -> tuple[list[object], list[object]]:
        """The items :func:`worst_and_best` would pick, in its order."""
        kept = {index: (score, item) for score, index, item in
                [(-s, -i, it) for s, i, it in self._low] + list(self._high)}
        indices = sorted(kept)
        worst, best = worst_and_best([kept[i][0] for i in indices], self.k) if self.n <= 2 * self.k else (None, None)
        if worst is not None:
            return [kept[indices[i]][1] for i in worst], [kept[indices[i]][1] for i in best]
        low = sorted(((-s, -i, it) for s, i, it in self._low), key=lambda e: (e[0], e[1]))
        high = sorted(self._high, key=lambda e: (e[0], e[1]), reverse=True)
        return [item for _, _, item in low], [item for _, _, item in high]
