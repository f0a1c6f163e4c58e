"""What CLIP and CLAP scoring share: cached caption embeddings, batching, cosines and ranks.

A subclass says how to encode a batch of captions and a batch of samples (images, clips) into
L2-normalised embeddings; everything else — the per-caption cache, the retrieval rank of the pair's
own caption among distractors, truncation warnings — lives here once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from pairsynth.alignment.scores import PairScores

logger = logging.getLogger(__name__)


class EmbeddingScorer:
    """Base class of the scorers. Subclasses implement the two ``_encode_*`` methods."""

    kind = "embedding"  # "clip" or "clap": the key of this scorer's scores in a candidate

    def __init__(self, *, model_id: str, device: torch.device, batch_size: int, precision: str,
                 context_length: int) -> None:
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.context_length = context_length
        self._text_cache: dict[str, np.ndarray] = {}

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Normalised embeddings of one batch of captions."""
        raise NotImplementedError

    def _encode_samples(self, samples: Sequence[Any]) -> torch.Tensor:
        """Normalised embeddings of one batch of samples."""
        raise NotImplementedError

    def _token_count(self, text: str) -> int | None:
        """Tokens ``text`` needs, markers included; ``None`` when the tokenizer cannot say."""
        return None

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised caption embeddings ``(len(texts), D)``, computed once per unique caption."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._text_cache]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            with torch.inference_mode(), self._autocast():
                features = self._encode_texts(chunk)
            for text, feature in zip(chunk, features.float().cpu().numpy()):
                self._text_cache[text] = feature
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([self._text_cache[text] for text in texts])

    def embed_samples(self, samples: Sequence[Any]) -> np.ndarray:
        """L2-normalised sample embeddings ``(len(samples), D)``, in batches of ``batch_size``."""
        chunks = []
        for start in range(0, len(samples), self.batch_size):
            with torch.inference_mode(), self._autocast():
                chunks.append(self._encode_samples(samples[start : start + self.batch_size]).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def is_truncated(self, text: str) -> bool:
        """Whether ``text`` is longer than the text context and will be cut to fit."""
        count = self._token_count(text)
        return count is not None and count > self.context_length

    def score_pairs(self, samples: Sequence[Any], captions: Sequence[str],
                    distractors: Sequence[str] = ()) -> list[PairScores]:
        """Score each sample against its caption, and rank that caption among ``distractors``.

        A distractor equal to the pair's own caption is skipped for that pair.
        """
        if len(samples) != len(captions):
            raise ValueError(f"{len(samples)} samples but {len(captions)} captions")
        if not samples:
            return []
        sample_features = self.embed_samples(samples)
        cosines = np.einsum("nd,nd->n", sample_features, self.embed_texts(captions))
        distractors = list(dict.fromkeys(distractors))
        others = sample_features @ self.embed_texts(distractors).T if distractors else None
        return [self._pair_scores(caption, float(cosine), None if others is None else others[row], distractors)
                for row, (caption, cosine) in enumerate(zip(captions, cosines))]

    def _pair_scores(self, caption: str, cosine: float, others: np.ndarray | None,
                     distractors: list[str]) -> PairScores:
        truncated = self.is_truncated(caption)
        if truncated:
            logger.warning("caption longer than the %d-token text context was truncated: %.60r…",
                           self.context_length, caption)
        mask = np.array([text != caption for text in distractors], dtype=bool)
        if others is None or not mask.any():
            return PairScores(self.kind, self.model_id, cosine, caption_truncated=truncated)
        best = int(np.argmax(np.where(mask, others, -np.inf)))
        return PairScores(self.kind, self.model_id, cosine, rank=1 + int((others[mask] > cosine).sum()),
                          distractors=int(mask.sum()), best_distractor=distractors[best],
                          best_distractor_cosine=float(others[best]), caption_truncated=truncated)

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)
