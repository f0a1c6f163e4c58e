"""One way to load a judge, for every command: the same options whether ``generate``, ``vary`` or
``score`` asks, so each command offers every judge option the others do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from pairsynth.media import MEDIA, medium

if TYPE_CHECKING:
    from pairsynth.alignment.embedding_scorer import EmbeddingScorer

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16", "auto"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class JudgeSettings(BaseModel):
    """Which judges score which media, and how they run (the recipe's ``scorer:`` section).

    Attributes:
        clip: the image judge: ``toy-NAME``, ``local-dir:PATH``, ``ARCH/TAG`` or ``hf-hub:ORG/NAME``.
        pretrained: an open_clip tag or a checkpoint path, for a bare CLIP ``ARCH``.
        clap: the audio judge: ``toy-NAME``, ``local:PATH`` or a hub id.
        batch_size: samples (or captions) per forward pass.
        precision: ``fp32``, or ``bf16``/``fp16`` autocast for the forward passes; ``auto`` takes bf16
            where it measurably helps on the device at hand (:func:`pairsynth.devices.auto_precision`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str = Field(MEDIA["image"].default_judge, description="toy-NAME, local-dir:PATH, ARCH/TAG or hf-hub:ORG/NAME")
    pretrained: str | None = Field(None, description="an open_clip tag or a checkpoint path for an ARCH")
    clap: str = Field(MEDIA["audio"].default_judge,
                      description="toy-NAME, local:PATH or a hub id such as laion/clap-htsat-unfused")
    batch_size: int = Field(64, ge=1, le=4096)
    precision: Precision = "fp32"

    def model_for(self, judge: str) -> str:
        """The model reference of a judge kind (``clip`` → :attr:`clip`)."""
        return getattr(self, judge)


def _load_clip(settings: JudgeSettings, device: str) -> EmbeddingScorer:
    from pairsynth.alignment.clip_scorer import ClipScorer

    return ClipScorer.from_pretrained(settings.clip, pretrained=settings.pretrained, device=device,
                                      batch_size=settings.batch_size, precision=settings.precision)


def _load_clap(settings: JudgeSettings, device: str) -> EmbeddingScorer:
    from pairsynth.alignment.clap_scorer import ClapScorer

    return ClapScorer.from_pretrained(settings.clap, device=device, batch_size=settings.batch_size,
                                      precision=settings.precision)


JUDGE_LOADERS: dict[str, Callable[[JudgeSettings, str], EmbeddingScorer]] = {"clip": _load_clip, "clap": _load_clap}
"""Judge kind → loader; :attr:`pairsynth.media.Medium.judge` names the kind of each medium."""


def load_judge(medium_name: str, settings: JudgeSettings = JudgeSettings(), *, device: str = "auto") -> EmbeddingScorer:
    """The judge of a medium (CLIP for images, CLAP for audio), loaded with ``settings``."""
    kind = medium(medium_name).judge
    scorer = JUDGE_LOADERS[kind](settings, device)
    logger.info("%s judge: %s", kind.upper(), scorer.model_id)
    return scorer


def judge_refs(settings: JudgeSettings) -> dict[str, str]:
    """Every judge reference in ``settings``, by judge kind, for checks made before anything loads."""
    return {kind: settings.model_for(kind) for kind in JUDGE_LOADERS}
