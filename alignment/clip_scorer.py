"""CLIP image–caption scoring over open_clip, batched, with text features cached per caption."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.devices import resolve_device
from pairsynth.errors import ModelRefError
from pairsynth.media import to_pil
from pairsynth.refs import parse_ref
from pairsynth.torch_compat import ensure_torchvision_importable

ImageLike = Image.Image | np.ndarray


class ClipScorer(EmbeddingScorer):
    """Scores images against captions with an open_clip model.

    Build it with :meth:`from_pretrained`; it loads once and then scores any number of batches.
    Images may be PIL images, uint8 arrays or float arrays in ``[0, 1]``.
    """

    kind = "clip"

    def __init__(self, model: torch.nn.Module, preprocess: Any, tokenizer: Any, *, model_id: str,
                 device: torch.device, batch_size: int = 64, precision: str = "fp32") -> None:
        super().__init__(model_id=model_id, device=device, batch_size=batch_size, precision=precision,
                         context_length=int(getattr(tokenizer, "context_length", 77)))
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, ref: str, *, pretrained: str | None = None, device: str = "auto",
                        batch_size: int = 64, precision: str = "fp32") -> ClipScorer:
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
        except (RuntimeError, ValueError, FileNotFoundError) as err:
            raise ModelRefError(f"cannot load CLIP model {ref!r}: {err}") from err
        return cls(model, preprocess, open_clip.get_tokenizer(name), model_id=ref, device=torch_device,
                   batch_size=batch_size, precision=precision)

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """L2-normalised image embeddings ``(len(images), D)``."""
        return self.embed_samples(images)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device), normalize=True)

    def _encode_samples(self, samples: Sequence[ImageLike]) -> torch.Tensor:
        batch = torch.stack([self.preprocess(to_pil(image)) for image in samples])
        return self.model.encode_image(batch.to(self.device), normalize=True)

    def _token_count(self, text: str) -> int | None:
        """open_clip's own tokenizer has ``encode``; its HF wrapper holds a ``tokenizer``."""
        if hasattr(self.tokenizer, "encode"):
            return len(self.tokenizer.encode(text)) + 2
        inner = getattr(self.tokenizer, "tokenizer", None)
        return len(inner(text)["input_ids"]) if inner is not None else None


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

