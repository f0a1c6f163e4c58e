"""Byte-level BPE merges learned deterministically, for the toy zoo's and the tests' tokenizers.

``tokenizers``' ``BpeTrainer`` breaks ties between equally frequent pairs in hash-map order, which
differs between processes: the same words gave two different tokenizers (and so two different tiny
test models, and flaky tests) in one of four runs. The loop here is the same algorithm (merge the
most frequent adjacent pair until nothing is left to merge) with ties going to the
lexicographically smallest pair, so a word list always gives the same merges. Pre-tokenization
stays ``tokenizers``' own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def learn_merges(pieces: Iterable[str], *, end_of_word: str = "") -> list[tuple[str, str]]:
    """Merges, in rank order, until every distinct piece is one symbol.

    Args:
        pieces: pre-tokenized pieces (byte-level strings); repeats weigh their pairs.
        end_of_word: a suffix joined to each piece's last symbol (CLIP's ``</w>``), or nothing.
    """
    words = {tuple([*piece[:-1], piece[-1] + end_of_word]): count
             for piece, count in Counter(p for p in pieces if p).items()}
    merges: list[tuple[str, str]] = []
    while True:
        counts: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += count
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        words = {_merge(symbols, best): count for symbols, count in words.items()}


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged, index = [], 0
    while index < len(symbols):
        if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
            merged.append(symbols[index] + symbols[index + 1])
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return tuple(merged)
