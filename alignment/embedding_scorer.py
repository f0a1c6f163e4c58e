"""What CLIP and CLAP scoring share: cached caption embeddings, batching, cosines and ranks.

A subclass says how to encode a batch of captions and a batch of samples (images, clips) into
L2-normalised embeddings; everything else — the per-caption cache, the retrieval rank of the pair's
own caption among distractors, truncation warnings — lives here once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from pairsynth.alignment import qa
from pairsynth.alignment.scores import PairScores

logger = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 16_384
"""Caption embeddings a judge keeps (32 MB at CLIP's 512 dimensions); older ones are encoded again if asked."""


class _Recent(OrderedDict):
    """A per-caption cache of the last :data:`TEXT_CACHE_SIZE` captions used (least recent evicted first)."""

    def recall(self, key: str) -> Any:
        """``self[key]``, marked as just used (``KeyError`` when absent)."""
        value = self[key]
        self.move_to_end(key)
        return value

    def keep(self, key: str, value: Any) -> Any:
        """Store ``value`` as the newest entry, evicting the oldest beyond the bound; returns it."""
        self[key] = value
        while len(self) > TEXT_CACHE_SIZE:
            self.popitem(last=False)
        return value


class EmbeddingScorer:
    """Base class of the scorers. Subclasses implement the two ``_encode_*`` methods."""

    kind = "embedding"  # "clip" or "clap": the key of this scorer's scores in a candidate

    def __init__(self, *, model_id: str, device: torch.device, batch_size: int, precision: str,
                 context_length: int) -> None:
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        if precision == "auto":  # bf16 only where it measurably helps on this device
            from pairsynth.devices import auto_precision

            precision = auto_precision(device)
        self.precision = precision
        self.context_length = context_length
        self._text_cache = _Recent()  # caption → embedding

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
        """L2-normalised caption embeddings ``(len(texts), D)``.

        The last :data:`TEXT_CACHE_SIZE` captions used are kept, so a caption is encoded once while
        its candidates are judged, and a run over millions of captions keeps a bounded cache.
        """
        found: dict[str, np.ndarray] = {}
        missing = []
        for text in dict.fromkeys(texts):
            if text in self._text_cache:
                found[text] = self._text_cache.recall(text)
            else:
                missing.append(text)
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            with torch.inference_mode(), self._autocast():
                features = self._encode_texts(chunk)
            for text, feature in zip(chunk, features.float().cpu().numpy()):
                found[text] = self._text_cache.keep(text, feature)
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([found[text] for text in texts])

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
        return self.score_features(self.embed_samples(samples), captions, distractors)

    def score_features(self, features: np.ndarray, captions: Sequence[str],
                       distractors: Sequence[str] | Sequence[Sequence[str]] = ()) -> list[PairScores]:
        """Scores of already-embedded samples: cosine with the own caption, rank among distractors.

        Args:
            features: L2-normalised sample embeddings ``(N, D)`` (:meth:`embed_samples`).
            captions: each sample's own caption.
            distractors: one list of captions shared by every pair, or one list per pair. The pair's
                own caption never counts as its distractor.
        """
        if not len(captions):
            return []
        cosines = np.einsum("nd,nd->n", features, self.embed_texts(captions))
        shared = not distractors or isinstance(distractors[0], str)
        pool = list(dict.fromkeys(distractors if shared else (t for texts in distractors for t in texts)))
        if pool:
            used = qa.distractor_mask(captions, pool)
            if not shared:
                index = {text: j for j, text in enumerate(pool)}
                listed = np.zeros_like(used)
                for row, texts in enumerate(distractors):
                    listed[row, [index[text] for text in texts]] = True
                used &= listed
            ranks = qa.rank_among(features @ self.embed_texts(pool).T, cosines, used)
        truncated = {caption: self.is_truncated(caption) for caption in dict.fromkeys(captions)}
        for caption in (c for c, cut in truncated.items() if cut):
            logger.warning("caption longer than the %d-token text context was truncated: %.60r…",
                           self.context_length, caption)
        scores = []
        for row, (caption, cosine) in enumerate(zip(captions, cosines)):
            counted = int(ranks.distractors[row]) if pool else 0
            if not counted:
                scores.append(PairScores(judge=self.kind, model=self.model_id, cosine=float(cosine),
                                         caption_truncated=truncated[caption]))
                continue
            scores.append(PairScores(judge=self.kind, model=self.model_id, cosine=float(cosine),
                                     rank=int(ranks.rank[row]), distractors=counted,
                                     best_distractor=pool[ranks.best[row]],
                                     best_distractor_cosine=float(ranks.best_cosine[row]),
                                     caption_truncated=truncated[caption]))
        return scores

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


class BoundedDistractors:
    """A fixed number of distractors per sample, however many captions a recipe has.

    Each sample is ranked against ``count`` captions: its ``hard`` nearest neighbours in the judge's
    text-embedding space (the hard negatives: the captions most easily confused with its own) plus a
    sample of the others drawn with the sample's own seed, so a resumed run draws the same. Cost per
    sample stays constant as the caption list grows, and the nearest captions make rank 1 harder to
    reach than a uniform draw would.

    Args:
        pool: every candidate distractor (the recipe's prompts and its negatives), distinct.
        count: distractors per sample.
        hard: how many of them are nearest neighbours (``0 <= hard <= count``).
        scorer: the judge whose text embeddings define "nearest".
    """

    def __init__(self, pool: Sequence[str], count: int, hard: int, scorer: EmbeddingScorer) -> None:
        if not 0 <= hard <= count:
            raise ValueError(f"hard negatives ({hard}) must be between 0 and the distractor count ({count})")
        self.pool, self.count, self.hard, self.scorer = list(pool), count, hard, scorer
        self._index = {text: position for position, text in enumerate(self.pool)}
        self._features: np.ndarray | None = None
        self._nearest = _Recent()  # caption → its hard negatives' pool positions

    def nearest(self, caption: str) -> list[int]:
        """Pool positions of the ``hard`` captions nearest ``caption`` (itself excluded), nearest first.

        The last :data:`TEXT_CACHE_SIZE` captions' answers are kept (a caption's attempts come
        together); one evicted is computed again, to the same answer.
        """
        if not self.hard:
            return []
        if caption in self._nearest:
            return self._nearest.recall(caption)
        if self._features is None:
            self._features = self.scorer.embed_texts(self.pool)
        similarity = self._features @ self.scorer.embed_texts([caption])[0]
        own = self._index.get(caption)
        if own is not None:
            similarity[own] = -np.inf
        top = np.argpartition(-similarity, self.hard - 1)[: self.hard]
        return self._nearest.keep(caption, sorted(top.tolist(), key=lambda j: (-similarity[j], j)))

    def pick(self, caption: str, seed: int) -> tuple[list[str], dict[str, int]]:
        """The distractors of one sample, and what the manifest records about them."""
        own = self._index.get(caption)
        hard = self.nearest(caption)
        taken = set(hard) | ({own} if own is not None else set())
        rng = np.random.default_rng([seed, 0xD157])
        draws = rng.choice(len(self.pool), size=min(len(self.pool), self.count + len(taken)), replace=False)
        sampled = [int(j) for j in draws if int(j) not in taken][: self.count - len(hard)]
        others = len(self.pool) - (own is not None)
        return ([self.pool[j] for j in hard + sampled],
                {"distractors": len(hard) + len(sampled), "hard_negatives": len(hard), "sampled": len(sampled),
                 "of": others})
