"""What flows between the stages: a condition, the candidate made from it, its scores and verdict."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pairsynth.alignment.acceptance import Decision
from pairsynth.alignment.scores import PairScores
from pairsynth.media import modality_of, to_uint8


def derive_seed(recipe_seed: int, caption: str, sample_index: int) -> int:
    """The seed of one sample, from the recipe seed, the caption text and the sample's index.

    It depends on the caption's text rather than its position, so adding or reordering captions leaves
    every other caption's samples unchanged; and on nothing about batching, so a sample is the same
    whatever batch it lands in.
    """
    digest = hashlib.sha256(f"{recipe_seed}\x1f{caption}\x1f{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def sample_key(caption: str, provenance: dict[str, Any], seed: int) -> str:
    """A key that names a sample by everything that made it, so re-runs are idempotent.

    Hex only: WebDataset splits keys at the first dot, and keys double as file names.
    """
    payload = json.dumps({"caption": caption, "provenance": provenance, "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True, kw_only=True)
class Condition:
    """One requested sample: a caption and the seed that makes it reproducible."""

    caption: str
    caption_index: int
    sample_index: int
    seed: int
    prompts: dict[str, str] = field(default_factory=dict, compare=False)
    source: str | None = None  # the key of the pair being varied, for variations
    blend: Any = field(default=None, compare=False)  # an interpolation point (modalities.noise_paths.Blend)

    @property
    def unit(self) -> str:
        """What the sample belongs to: its caption, or the source pair it is a variation of."""
        return self.source if self.source is not None else self.caption

    def prompt_for(self, medium: str) -> str:
        """What a medium's generator and judge see: the caption itself, unless a triplet recipe
        gave that medium its own prompt template (an image prompt and a sound prompt of one scene)."""
        return self.prompts.get(medium, self.caption)


@dataclass(kw_only=True)
class Candidate:
    """A generated sample on its way through scoring and acceptance.

    A candidate carries one medium per modality it was generated in: an image, a clip, or both (a
    triplet). Each is kept as the model produced it, NaN included, so the quality checks can see it.

    Attributes:
        condition: what was asked for.
        key: the sample's stable key (see :func:`sample_key`).
        provenance: model id, revision, scheduler, steps, guidance … per modality, as adapters report.
        image: float32 ``(H, W, 3)`` in ``[0, 1]``, or ``None``.
        audio: float32 ``(samples,)`` or ``(channels, samples)``, or ``None``.
        sample_rate: the audio's rate in Hz.
        scores: filled by the score stage, one entry per judge (``clip``, ``clap``).
        decision: filled by the accept stage.
        notes: warnings worth keeping with the sample (e.g. a caption truncated by the text context).
    """

    condition: Condition
    key: str
    provenance: dict[str, Any]
    image: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    scores: dict[str, PairScores] = field(default_factory=dict)
    decision: Decision | None = None
    notes: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)  # variations: source key, path, similarity
    encoded: dict[str, Any] = field(default_factory=dict, repr=False)  # file bytes, shared by the writers
    retrieval: dict[str, Any] = field(default_factory=dict)  # per judge: the bounded distractors used, if bounded
    early: dict[str, Any] = field(default_factory=dict)  # per judge: the preview's scores and verdict (early rejection)

    @property
    def caption(self) -> str:
        return self.condition.caption

    @property
    def modality(self) -> str:
        """``image``, ``audio`` or ``triplet`` (image + audio + caption)."""
        return modality_of(self.image, self.audio)

    @property
    def accepted(self) -> bool:
        return self.decision is not None and self.decision.accepted

    @property
    def dropped_early(self) -> bool:
        """Rejected from a preview (early rejection): its denoising was never finished, it has no media."""
        return any(record.get("dropped") for record in self.early.values())

    def image_uint8(self) -> np.ndarray:
        """The image as 8-bit RGB, rounded the way diffusers' ``numpy_to_pil`` does."""
        if self.image is None:
            raise ValueError(f"candidate {self.key} has no image")
        return to_uint8(self.image)

    def manifest_row(self) -> dict[str, Any]:
        """One manifest line: every candidate gets one, accepted or not, and says why."""
        decision = self.decision
        return {
            "key": self.key,
            "caption": self.caption,
            "caption_index": self.condition.caption_index,
            "sample_index": self.condition.sample_index,
            "seed": self.condition.seed,
            "modality": self.modality,
            **({"prompts": self.condition.prompts} if self.modality == "triplet" else {}),
            **self.provenance,
            **({"source": self.lineage} if self.lineage else {}),
            **({"interpolation": _blend_record(self.condition)} if self.condition.blend is not None else {}),
            "scores": {judge: scores.as_dict() for judge, scores in self.scores.items()},
            **({"retrieval": self.retrieval} if self.retrieval else {}),
            **({"early": self.early} if self.early else {}),
            "accepted": self.accepted,
            "reason": decision.reason if decision else None,
            "detail": decision.detail if decision else None,
            "notes": self.notes,
        }


def _blend_record(condition: Condition) -> dict[str, Any]:
    from pairsynth.interpolation import blend_record

    return blend_record(condition.blend, condition.unit)
