"""CLAP audio–caption scoring over transformers' ``ClapModel``, batched, text features cached per caption.

LAION's CLAP checkpoints in Hugging Face format (``laion/clap-htsat-unfused``,
``laion/clap-htsat-fused``, ``laion/larger_clap_general`` …) and the toy zoo's ``toy-sounds-clap``
all load through :meth:`ClapScorer.from_pretrained`.

How clips are prepared, and why:

* Every clip is down-mixed to mono (CLAP's audio tower takes one channel) and resampled with soxr's
  HQ filter to the feature extractor's ``sampling_rate`` (48 kHz for LAION's models).
* Shorter clips are repeated and then zero-padded to the model's window (``padding="repeatpad"``,
  LAION's own choice in training and inference).
* Truncation follows the checkpoint: ``enable_fusion`` models use ``"fusion"`` (a global view plus
  three local crops of a long clip); unfused ones must use ``"rand_trunc"`` (``"fusion"`` stacks four
  mel channels that an unfused patch embedding cannot take).
* Both truncations crop *randomly* in transformers, which would make a score differ from run to run.
  Here, clips longer than the window are center-cropped before an unfused model sees them, and a
  fused model's crops are drawn from a fixed seed per clip. transformers also marks a random clip of
  a batch as "longer" when none is (a training-time trick from HTSAT); ``is_longer`` is set from each
  clip's true length instead, so a clip scores the same in any batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.audio_io import resample, to_mono
from pairsynth.devices import resolve_device
from pairsynth.errors import ModelRefError
from pairsynth.refs import parse_ref
from pairsynth.torch_compat import ensure_torchvision_importable

AudioLike = tuple[np.ndarray, int]  # (waveform (samples,) or (channels, samples), sample rate)
FUSION_SEED = 0  # the numpy seed a fused model's three local crops are drawn from, for every clip


class ClapScorer(EmbeddingScorer):
    """Scores audio clips against captions with a transformers ``ClapModel``.

    Build it with :meth:`from_pretrained`; it loads once and then scores any number of batches.
    Samples are ``(waveform, sample_rate)`` tuples (objects with ``waveform`` and ``sample_rate``
    attributes, such as ``GeneratedAudio``, work too), at any rate and channel count.
    """

    kind = "clap"

    def __init__(self, model: torch.nn.Module, processor: Any, *, model_id: str, device: torch.device,
                 batch_size: int = 32, precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
        super().__init__(model_id=model_id, device=device, batch_size=batch_size, precision=precision,
                         context_length=_context_length(processor.tokenizer, model.config.text_config))
        self.model = model.eval()
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        self.fusion = bool(model.config.audio_config.enable_fusion)
        self.truncation = "fusion" if self.fusion else "rand_trunc"
        self.padding = "repeatpad"

    @classmethod
    def from_pretrained(cls, ref: str, *, device: str = "auto", batch_size: int = 32,
                        precision: str = "fp32") -> EmbeddingScorer:
        """Load a CLAP model and its processor.

        A ``laion-clap:PATH.pt`` reference loads a LAION-CLAP training checkpoint instead, as a
        :class:`~pairsynth.alignment.laion_clap_scorer.LaionClapScorer`: one entry point for both backends.

        Args:
            ref: ``toy-sounds-clap``, ``local:PATH``, a folder, a hub id such as ``laion/clap-htsat-unfused``,
                or ``laion-clap:PATH.pt``.
            device: ``auto``, ``cpu``, ``cuda`` …
            batch_size: clips (or captions) per forward pass.
            precision: ``fp32``, or ``bf16``/``fp16`` autocast for the forward passes.
        """
        ensure_torchvision_importable()
        from transformers import ClapModel, ClapProcessor

        parsed = parse_ref(ref)
        if parsed.scheme == "laion-clap":
            from pairsynth.alignment.laion_clap_scorer import LaionClapScorer

            return LaionClapScorer.from_checkpoint(ref, device=device, batch_size=batch_size, precision=precision)
        if parsed.scheme == "open_clip":
            raise ModelRefError(f"{ref!r} names an open_clip model; CLAP needs a ClapModel folder or hub id")
        torch_device = resolve_device(device)
        try:
            model = ClapModel.from_pretrained(parsed.location)
            processor = ClapProcessor.from_pretrained(parsed.location)
        except (OSError, ValueError) as err:
            raise ModelRefError(f"cannot load CLAP model {ref!r}: {err}") from err
        _check_tokenizer(ref, processor.tokenizer, model.config.text_config)
        return cls(model.to(torch_device), processor, model_id=ref, device=torch_device, batch_size=batch_size,
                   precision=precision)

    @property
    def sample_rate(self) -> int:
        """The rate clips are resampled to before feature extraction."""
        return int(self.feature_extractor.sampling_rate)

    def embed_audio(self, clips: Sequence[AudioLike]) -> np.ndarray:
        """L2-normalised audio embeddings ``(len(clips), D)``."""
        return self.embed_samples(clips)

    def prepare(self, sample: AudioLike | Any) -> np.ndarray:
        """One clip as the feature extractor receives it: mono float32 at :attr:`sample_rate`.

        Unfused models get clips longer than the window center-cropped to it (deterministic, unlike
        ``rand_trunc``); fused models get the whole clip, as fusion summarises all of it.
        """
        waveform, rate = _unpack(sample)
        clip = resample(to_mono(waveform), rate, self.sample_rate)
        window = int(self.feature_extractor.nb_max_samples)
        if not self.fusion and clip.shape[0] > window:
            start = (clip.shape[0] - window) // 2
            clip = clip[start : start + window]
        return clip

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.context_length,
                                return_tensors="pt").to(self.device)
        return _normalised(self.model.get_text_features(**tokens))

    def _encode_samples(self, samples: Sequence[AudioLike]) -> torch.Tensor:
        features, is_longer = self._features([self.prepare(sample) for sample in samples])
        output = self.model.get_audio_features(input_features=features.to(self.device, dtype=self.model.dtype),
                                               is_longer=is_longer.to(self.device))
        return _normalised(output)

    def _features(self, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel features and true ``is_longer`` flags, each clip independent of the batch."""
        kwargs = {"sampling_rate": self.sample_rate, "truncation": self.truncation, "padding": self.padding,
                  "return_tensors": "pt"}
        if not self.fusion:  # clips fit the window now: nothing random happens
            features = self.feature_extractor(clips, **kwargs)["input_features"]
        else:
            parts = []
            for clip in clips:  # one at a time, so each clip's crops come from the same seed
                with _numpy_seed(FUSION_SEED):
                    parts.append(self.feature_extractor([clip], **kwargs)["input_features"])
            features = torch.cat(parts)
        return features, torch.tensor([[self._is_longer(clip)] for clip in clips])

    def _is_longer(self, clip: np.ndarray) -> bool:
        """Whether the extractor fused crops of ``clip`` (it does not when the clip is under a hop longer)."""
        if not self.fusion:
            return False
        window, hop = int(self.feature_extractor.nb_max_samples), int(self.feature_extractor.hop_length)
        return clip.shape[0] > window and clip.shape[0] // hop != window // hop

    def _token_count(self, text: str) -> int | None:
        """RoBERTa tokens ``text`` needs, ``<s>`` and ``</s>`` included."""
        return len(self.tokenizer(text)["input_ids"])


def _unpack(sample: AudioLike | Any) -> tuple[np.ndarray, int]:
    if hasattr(sample, "waveform") and hasattr(sample, "sample_rate"):
        return np.asarray(sample.waveform), int(sample.sample_rate)
    if isinstance(sample, tuple) and len(sample) == 2:
        return np.asarray(sample[0]), int(sample[1])
    raise TypeError(f"a CLAP sample is a (waveform, sample_rate) tuple, got {type(sample).__name__}")


def _normalised(features: Any) -> torch.Tensor:
    """transformers 5 returns an output object whose ``pooler_output`` holds the projection (v4: a tensor)."""
    tensor = getattr(features, "pooler_output", features)
    return F.normalize(tensor.float(), dim=-1)


def _context_length(tokenizer: Any, text_config: Any) -> int:
    """Tokens a caption may have: the tokenizer's limit, capped by the position table.

    RoBERTa positions start after the padding id, so ``max_position_embeddings - 2`` tokens fit
    (512 for LAION's checkpoints).
    """
    positions = int(text_config.max_position_embeddings) - 2
    limit = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return min(limit, positions)


def _check_tokenizer(ref: str, tokenizer: Any, text_config: Any) -> None:
    """transformers 5 returns a 5-token tokenizer instead of raising when the files are missing."""
    size, vocab = len(tokenizer), int(text_config.vocab_size)
    if size > vocab or size < vocab // 2:
        raise ModelRefError(f"CLAP model {ref!r}: its tokenizer has {size} tokens but the text model expects "
                            f"{vocab}; are the tokenizer files (tokenizer.json or vocab.json + merges.txt) missing?")


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (which transformers' extractor draws from) and restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
