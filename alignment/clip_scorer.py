"""CLIP image–caption scoring over open_clip, batched, with text features cached per caption."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from PIL import Image

from alignment.scores import PairScores
from pairsynth.devices import resolve_device
from pairsynth.errors import ModelRefError
from pairsynth.refs import parse_ref
from pairsynth.torch_compat import ensure_torchvision_importable

logger = logging.getLogger(__name__)

ImageLike = Image.Image | np.ndarray


class ClipScorer:
    """Scores images against captions with an open_clip model.

    Build it with :meth:`from_pretrained`; it loads once and then scores any number of batches.
    Caption embeddings are cached by text, so a dataset with few unique captions pays for each once.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Any,
        tokenizer: Any,
        *,
        model_id: str,
        device: torch.device,
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.context_length = int(getattr(tokenizer, "context_length", 77))
        self._text_cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_pretrained(
        cls,
        ref: str,
        *,
        pretrained: str | None = None,
        device: str = "auto",
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> ClipScorer:
        """Load an open_clip model.

        Args:
            ref: ``toy-shapes-clip``, ``local-dir:PATH``, ``ARCH/TAG`` (e.g.
                ``ViT-B-32/laion2b_s34b_b79k``), ``ARCH`` with ``pretrained``, or ``hf-hub:ORG/NAME``.
            pretrained: an open_clip pretrained tag or a checkpoint path, for a bare ``ARCH``.
            device: ``auto``, ``cpu``, ``cuda`` …
            batch_size: images per forward pass.
            precision: ``fp32``, or ``bf16``/``fp16`` autocast for the forward passes.
        """
        ensure_torchvision_importable()
        import open_clip

        name, tag = _open_clip_name(ref, pretrained, open_clip.list_models())
        torch_device = resolve_device(device)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag, device=torch_device)
        except RuntimeError as err:
            raise ModelRefError(f"cannot load CLIP model {ref!r}: {err}") from err
        tokenizer = open_clip.get_tokenizer(name)
        return cls(model, preprocess, tokenizer, model_id=ref, device=torch_device,
                   batch_size=batch_size, precision=precision)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings ``(len(texts), D)``, computed once per unique text."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._text_cache]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            tokens = self.tokenizer(chunk).to(self.device)
            with torch.no_grad(), self._autocast():
                features = self.model.encode_text(tokens, normalize=True)
            for text, feature in zip(chunk, features.float().cpu().numpy()):
                self._text_cache[text] = feature
        return np.stack([self._text_cache[text] for text in texts]) if texts else np.zeros((0, 0), np.float32)

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """L2-normalised image embeddings ``(len(images), D)``, in batches of ``batch_size``."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(_as_pil(image)) for image in images[start : start + self.batch_size]])
            with torch.no_grad(), self._autocast():
                features = self.model.encode_image(batch.to(self.device), normalize=True)
            chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def is_truncated(self, text: str) -> bool:
        """Whether ``text`` is longer than the text context and will be cut to fit."""
        count = _token_count(self.tokenizer, text)
        return count is not None and count > self.context_length

    def score_pairs(
        self, images: Sequence[ImageLike], captions: Sequence[str], distractors: Sequence[str] = ()
    ) -> list[PairScores]:
        """Score each image against its caption, and rank that caption among ``distractors``.

        A distractor equal to the pair's own caption is skipped for that pair.
        """
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        if not images:
            return []
        image_features = self.embed_images(images)
        own = self.embed_texts(captions)
        cosines = np.einsum("nd,nd->n", image_features, own)
        distractors = list(dict.fromkeys(distractors))
        others = image_features @ self.embed_texts(distractors).T if distractors else None
        results = []
        for row, (caption, cosine) in enumerate(zip(captions, cosines)):
            truncated = self.is_truncated(caption)
            if truncated:
                logger.warning("caption longer than the %d-token text context was truncated: %.60r…",
                               self.context_length, caption)
            if others is None:
                results.append(PairScores(self.model_id, float(cosine), caption_truncated=truncated))
                continue
            mask = np.array([text != caption for text in distractors])
            competing = others[row][mask]
            best = int(np.argmax(np.where(mask, others[row], -np.inf))) if mask.any() else None
            results.append(PairScores(
                self.model_id,
                float(cosine),
                rank=1 + int((competing > cosine).sum()),
                distractors=int(mask.sum()),
                best_distractor=distractors[best] if best is not None else None,
                best_distractor_cosine=float(others[row][best]) if best is not None else None,
                caption_truncated=truncated,
            ))
        return results

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def _open_clip_name(ref: str, pretrained: str | None, known: Sequence[str]) -> tuple[str, str | None]:
    """Map a pairsynth reference onto open_clip's (model name, pretrained) pair."""
    if ref.startswith(("hf-hub:", "local-dir:")):
        return ref, pretrained
    arch, _, tag = ref.removeprefix("open_clip:").partition("/")
    if arch in known:
        return arch, tag or pretrained
    parsed = parse_ref(ref)
    if parsed.scheme in ("toy", "local"):
        return f"local-dir:{parsed.location}", pretrained
    return f"hf-hub:{parsed.location}", pretrained


def _token_count(tokenizer: Any, text: str) -> int | None:
    """Tokens ``text`` needs with start/end markers, for open_clip's own and its HF tokenizers."""
    if hasattr(tokenizer, "encode"):
        return len(tokenizer.encode(text)) + 2
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is not None:
        return len(inner(text)["input_ids"])
    return None


def _as_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(array).convert("RGB")
