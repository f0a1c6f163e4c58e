"""What a probe classifier sees: examples turned into tensors once, plus how a batch is prepared.

Two input spaces, one per ``--classifier``:

* :class:`PixelSpace` / :class:`MelSpace` — tiny images (``image_size``², uint8) or mono clips at
  16 kHz; the CNN trains on them from scratch. Classic augmentation runs per batch; clips become
  log-mel spectrograms after it (shift, gain and noise act on the waveform, as they would on a mic).
* :class:`EmbeddingSpace` — frozen judge embeddings (the CLIP image tower, the CLAP audio tower, via
  the scorers' ``embed_samples``); a linear probe trains on them. Embedding a fresh augmentation every
  step would cost the judge's forward pass each time, so ``views`` augmented copies of every example
  are embedded once and a training step picks one at random (view 0 is the clean example).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from PIL import Image

from pairsynth.audio_io import resample, to_mono
from pairsynth.probe.augmentation import augment_audio, augment_images, image_augmentation
from pairsynth.probe.labeled import LabeledExample

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
N_FFT, HOP, N_MELS = 512, 160, 40


class InputSpace:
    """Turns examples into stored tensors and a stored batch into model input."""

    def encode(self, examples: Sequence[LabeledExample]) -> torch.Tensor:
        """Stored form of ``examples``, stacked on dimension 0."""
        raise NotImplementedError

    def prepare(self, batch: torch.Tensor, *, augment: bool, generator: torch.Generator) -> torch.Tensor:
        """Model input of a stored batch, with classic augmentation when ``augment``."""
        raise NotImplementedError

    @property
    def input_channels(self) -> int:
        return 1


@dataclass
class PixelSpace(InputSpace):
    """RGB images resized to ``size``², stored as uint8 ``(N, 3, size, size)``."""

    size: int = 32

    def __post_init__(self) -> None:
        self.transform = image_augmentation(self.size)

    def encode(self, examples: Sequence[LabeledExample]) -> torch.Tensor:
        return torch.stack([pixels(example.image, self.size) for example in examples])

    def prepare(self, batch: torch.Tensor, *, augment: bool, generator: torch.Generator) -> torch.Tensor:
        if augment:
            batch = augment_images(batch, self.transform)
        return (batch.float() / 255.0 - 0.5) / 0.25

    @property
    def input_channels(self) -> int:
        return 3


@dataclass
class MelSpace(InputSpace):
    """Mono clips at 16 kHz, centre-cropped or zero-padded to ``seconds``; log-mel at :meth:`prepare`."""

    seconds: float = 1.0

    def __post_init__(self) -> None:
        self.window = torch.hann_window(N_FFT)
        self.filters = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)).float()

    def encode(self, examples: Sequence[LabeledExample]) -> torch.Tensor:
        return torch.stack([waveform(example, self.seconds) for example in examples])

    def prepare(self, batch: torch.Tensor, *, augment: bool, generator: torch.Generator) -> torch.Tensor:
        if augment:
            batch = augment_audio(batch, generator)
        return log_mel(batch, self.window, self.filters).unsqueeze(1)


@dataclass(kw_only=True)
class EmbeddingSpace(InputSpace):
    """Frozen judge embeddings, ``views + 1`` per example: view 0 clean, the others classic-augmented.

    Args:
        judge: a ``ClipScorer`` or ``ClapScorer`` (anything with ``embed_samples``).
        modality: ``image`` or ``audio``.
        views: augmented copies embedded per example.
        seed: seeds those augmentations.
    """

    judge: object
    modality: str
    views: int = 4
    seed: int = 0

    def encode(self, examples: Sequence[LabeledExample]) -> torch.Tensor:
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        samples = [self._sample(e) for e in examples]
        views = [self.judge.embed_samples(samples)]
        for _ in range(self.views):
            views.append(self.judge.embed_samples(self._augmented(samples, generator)))
        logger.info("embedded %d examples × %d views with the judge", len(examples), self.views + 1)
        return torch.from_numpy(np.stack(views, axis=1)).float()

    def prepare(self, batch: torch.Tensor, *, augment: bool, generator: torch.Generator) -> torch.Tensor:
        if not augment or self.views == 0:
            chosen = batch[:, 0]
        else:
            picks = torch.randint(1, self.views + 1, (len(batch),), generator=generator)
            chosen = batch[torch.arange(len(batch)), picks]
        return chosen * np.sqrt(chosen.shape[-1])  # unit vectors → features of unit variance per dimension

    @property
    def dimension(self) -> int:
        return int(self.judge.embed_samples([self._zero()]).shape[-1])

    def __post_init__(self) -> None:
        from pairsynth.media import medium

        self._hooks: MediumProbe = medium(self.modality).probe_hooks()

    def _sample(self, example: LabeledExample):
        return self._hooks.judge_sample(example)

    def _augmented(self, samples: list, generator: torch.Generator) -> list:
        return self._hooks.augmented(samples, generator)

    def _zero(self):
        return self._hooks.blank()


class MediumProbe:
    """What the probe does differently per medium; each :class:`pairsynth.media.Medium` names one."""

    def cnn_space(self, image_size: int, pool: Sequence[LabeledExample]) -> InputSpace:
        """The input space the CNN trains on from scratch; ``pool`` is the training pool."""
        raise NotImplementedError

    def judge_sample(self, example: LabeledExample):
        """The example as the judge's ``embed_samples`` takes it."""
        raise NotImplementedError

    def augmented(self, samples: list, generator: torch.Generator) -> list:
        """Classic-augmented copies of judge samples."""
        raise NotImplementedError

    def blank(self):
        """A blank judge sample (to measure the embedding's dimension)."""
        raise NotImplementedError

    def retrieval_kit(self, config, captions: Sequence[str]):
        """The tiny contrastive model ``--task retrieval`` trains from scratch (a
        :class:`pairsynth.probe.retrieval.RetrievalKit`); ``captions`` are every caption it will see."""
        raise NotImplementedError


class ImageProbe(MediumProbe):
    """Images: tiny pixels for the CNN, 8-bit RGB for the judge, a tiny open_clip CLIP for retrieval."""

    def cnn_space(self, image_size: int, pool: Sequence[LabeledExample]) -> InputSpace:
        return PixelSpace(image_size)

    def judge_sample(self, example: LabeledExample):
        return example.image

    def augmented(self, samples: list, generator: torch.Generator) -> list:
        out = []
        for image in samples:
            tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
            transform = image_augmentation(min(image.shape[:2]))
            out.append(augment_images(tensor.unsqueeze(0), transform)[0].permute(1, 2, 0).numpy())
        return out

    def blank(self):
        return np.zeros((32, 32, 3), np.uint8)

    def retrieval_kit(self, config, captions: Sequence[str]):
        from pairsynth.probe.retrieval import ClipKit

        return ClipKit(config.image_size, captions)


class AudioProbe(MediumProbe):
    """Clips: log-mels of the pool's typical length for the CNN, mono waveforms for the judge, a tiny
    transformers CLAP for retrieval."""

    def cnn_space(self, image_size: int, pool: Sequence[LabeledExample]) -> InputSpace:
        return MelSpace(typical_seconds(pool))

    def judge_sample(self, example: LabeledExample):
        return (to_mono(example.audio), int(example.sample_rate))

    def augmented(self, samples: list, generator: torch.Generator) -> list:
        return [(augment_audio(torch.from_numpy(clip).unsqueeze(0), generator)[0].numpy(), rate)
                for clip, rate in samples]

    def blank(self):
        return (np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)

    def retrieval_kit(self, config, captions: Sequence[str]):
        from pairsynth.probe.clap_retrieval import ClapKit

        return ClapKit(captions)


IMAGE_PROBE, AUDIO_PROBE = ImageProbe(), AudioProbe()
"""The hooks :attr:`pairsynth.media.Medium.probe` names."""


def pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """``(3, size, size)`` uint8 from ``(H, W, 3)`` uint8 (area-averaged down, bilinear up)."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    resample_filter = Image.Resampling.BOX if min(picture.size) > size else Image.Resampling.BILINEAR
    resized = picture.resize((size, size), resample_filter)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)


def waveform(example: LabeledExample, seconds: float) -> torch.Tensor:
    """The clip as mono 16 kHz float32, centre-cropped or zero-padded to ``seconds``."""
    clip = resample(to_mono(example.audio), int(example.sample_rate), SAMPLE_RATE)
    length = int(round(seconds * SAMPLE_RATE))
    if len(clip) >= length:
        start = (len(clip) - length) // 2
        clip = clip[start:start + length]
    else:
        before = (length - len(clip)) // 2
        clip = np.pad(clip, (before, length - len(clip) - before))
    return torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))


def log_mel(batch: torch.Tensor, window: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``(N, N_MELS, frames)`` log-mel power, roughly standardised (dB / 20, shifted by 3)."""
    spectrum = torch.stft(batch, N_FFT, HOP, window=window, return_complex=True).abs().pow(2)
    mel = torch.matmul(filters, spectrum)
    return (10 * torch.log10(mel.clamp_min(1e-10)) / 20.0) + 3.0


def typical_seconds(examples: Sequence[LabeledExample]) -> float:
    """The median clip length, the window every clip is cropped or padded to (at most 4 s)."""
    lengths = [ex.audio.shape[-1] / ex.sample_rate for ex in examples if ex.audio is not None]
    return float(min(max(np.median(lengths), 0.1), 4.0)) if lengths else 1.0
