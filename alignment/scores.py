"""Score records with their units stated, so no number leaves pairsynth without one."""

from __future__ import annotations

from dataclasses import dataclass

COSINE_UNIT = "cosine similarity of L2-normalised embeddings, in [-1, 1]"
SCORE_UNITS = {
    "clip": "CLIPScore = 100 * max(cosine, 0), in [0, 100]",
    "clap": "CLAPScore = 100 * max(cosine, 0), in [0, 100] (the CLIPScore convention applied to CLAP)",
}


def clip_score(cosine: float) -> float:
    """The CLIPScore convention of Hessel et al. (2021) with w = 100, as torchmetrics reports it."""
    return 100.0 * max(cosine, 0.0)


@dataclass(frozen=True, kw_only=True)
class PairScores:
    """How well one sample agrees with its caption, by one judge model.

    Attributes:
        judge: ``clip`` (image–text) or ``clap`` (audio–text).
        model: the judge model's reference.
        cosine: raw cosine between the sample's and the caption's embeddings.
        rank: 1 + the number of distractor captions that score higher than the pair's own caption;
            ``None`` when there were no distractors.
        distractors: how many distractor captions were compared.
        best_distractor: the highest-scoring distractor caption, for explaining rejections.
        best_distractor_cosine: its cosine.
        caption_truncated: the caption was longer than the model's text context and was cut.
    """

    judge: str
    model: str
    cosine: float
    rank: int | None = None
    distractors: int = 0
    best_distractor: str | None = None
    best_distractor_cosine: float | None = None
    caption_truncated: bool = False

    @property
    def score(self) -> float:
        """The cosine on the CLIPScore scale, 100·max(cos, 0)."""
        return clip_score(self.cosine)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready record that names its units."""
        return {
            "model": self.model,
            "cosine": round(self.cosine, 6),
            "cosine_unit": COSINE_UNIT,
            "score": round(self.score, 4),
            "score_unit": SCORE_UNITS.get(self.judge, "100 * max(cosine, 0)"),
            "rank": self.rank,
            "distractors": self.distractors,
            "best_distractor": self.best_distractor,
            "best_distractor_cosine": None if self.best_distractor_cosine is None else round(self.best_distractor_cosine, 6),
            "caption_truncated": self.caption_truncated,
        }
