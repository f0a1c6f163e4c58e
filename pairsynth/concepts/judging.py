"""Judges read a concept's token as the plain words it stands for.

A caption such as ``a <purple> circle on the left`` steers the generator through the learned token,
but CLIP/CLAP never saw that token: they score ``a purple circle on the left`` instead (the words
recorded in the concept's card). Captions are stored with the token, as generated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pairsynth.concepts.card import default_words


class ConceptWordsJudge:
    """Wraps a scorer so that every caption and distractor it scores has its tokens replaced by words."""

    def __init__(self, scorer: Any, words: Mapping[str, str]) -> None:
        self._scorer = scorer
        self.words = dict(words)

    def __getattr__(self, name: str) -> Any:  # kind, model_id, context_length …: the scorer's own
        return getattr(self._scorer, name)

    def plain(self, text: str) -> str:
        for token, words in self.words.items():
            text = text.replace(token, words)
        return text

    def score_pairs(self, samples: Sequence[Any], captions: Sequence[str], distractors: Sequence[str] = ()) -> list:
        return self._scorer.score_pairs(samples, [self.plain(c) for c in captions], [self.plain(d) for d in distractors])


def concept_judges(scorers: Mapping[str, Any], generators: Mapping[str, Any]) -> dict[str, Any]:
    """Each medium's scorer, wrapped when that medium's generator has concepts loaded."""
    wrapped = {}
    for medium, scorer in scorers.items():
        concepts = getattr(generators.get(medium), "concepts", None) or []
        words = {c["token"]: c.get("words", default_words(c["token"])) for c in concepts}
        wrapped[medium] = ConceptWordsJudge(scorer, words) if words else scorer
    return wrapped
