"""Reading, writing and resampling audio, with soundfile and soxr (no torchaudio).

Shape convention everywhere in pairsynth: float32 ``(samples,)`` for mono, ``(channels, samples)``
for more channels — the layout diffusers' audio pipelines return. soundfile itself works in
``(frames, channels)``; the transposes live here and nowhere else.

torchaudio is deliberately not used: its mere presence breaks transformers' CLAP feature extractor,
and its load/save need torchcodec.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from pairsynth.errors import PairsynthError

MAX_CHANNELS = 8
"""More "channels" than this almost always means a ``(samples, channels)`` array passed by mistake."""
RESAMPLE_QUALITY = "HQ"
"""soxr's high quality, the same filter ``librosa.resample``'s default ``soxr_hq`` uses."""
FLAC_SUBTYPE = "PCM_16"
"""16-bit FLAC: what CLAP's and AudioLDM's training sets use; quantization noise sits near -96 dBFS."""


class AudioInputError(PairsynthError):
    """An audio file cannot be read: missing, corrupt, empty or in an unsupported format."""


def read_audio(path: str | Path, *, target_rate: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 in ``[-1, 1]``.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile ≥ 1.1).
        target_rate: resample to this rate; ``None`` keeps the file's own.
        mono: average the channels into one.

    Returns:
        ``(waveform, sample_rate)``: ``(samples,)`` for a mono file or with ``mono=True``, else
        ``(channels, samples)``.

    Raises:
        AudioInputError: naming the file, when it is missing, unreadable or holds no samples.
    """
    if not Path(path).is_file():  # libsndfile reports a missing file as "System error."
        reason = "is a folder, not a file" if Path(path).is_dir() else "does not exist"
        raise AudioInputError(f"cannot read audio file {str(path)!r}: it {reason}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise AudioInputError(f"cannot read audio file {str(path)!r}: {_reason(err)}") from err
    if data.shape[0] == 0:
        raise AudioInputError(f"audio file {str(path)!r} holds no samples")
    waveform = data[:, 0] if data.shape[1] == 1 else np.ascontiguousarray(data.T)
    if mono:
        waveform = to_mono(waveform)
    if target_rate is not None and target_rate != rate:
        waveform, rate = resample(waveform, rate, target_rate), int(target_rate)
    return waveform, int(rate)


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """Average ``(channels, samples)`` into ``(samples,)``; a mono waveform is returned unchanged."""
    waveform = _checked(waveform)
    return waveform if waveform.ndim == 1 else waveform.mean(axis=0, dtype=np.float32)


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample ``(samples,)`` or ``(channels, samples)`` with soxr's HQ filter; float32 out."""
    waveform = _checked(waveform)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} → {to_rate}")
    if from_rate == to_rate:
        return waveform
    # soxr wants (frames, channels); it filters each channel independently.
    frames = waveform if waveform.ndim == 1 else waveform.T
    out = soxr.resample(frames, from_rate, to_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(out if waveform.ndim == 1 else out.T, dtype=np.float32)


def write_flac(path: str | Path, waveform: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC atomically: a temporary file in the same folder, renamed when complete.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    payload = encode_flac(waveform, sample_rate)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def encode_flac(waveform: np.ndarray, sample_rate: int) -> bytes:
    """16-bit FLAC bytes of a waveform, for tar shards and in-memory writers.

    Values are clipped to ``[-1, 1]`` first: libsndfile's float→int conversion would otherwise wrap
    loud samples around. NaN or infinite values are refused (they have no 16-bit meaning; the quality
    checks reject such clips before they get here).
    """
    waveform = _checked(waveform)
    if not np.isfinite(waveform).all():
        raise ValueError("cannot encode a waveform with NaN or infinite samples as FLAC")
    buffer = io.BytesIO()
    frames = np.clip(waveform if waveform.ndim == 1 else waveform.T, -1.0, 1.0)
    sf.write(buffer, frames, int(sample_rate), format="FLAC", subtype=FLAC_SUBTYPE)
    return buffer.getvalue()


def as_written(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """The waveform exactly as a reader of its FLAC file will see it (16-bit quantised).

    Judges score this rather than the float output, so the scores in the manifest are the scores of
    the files in the dataset, to the last bit.
    """
    decoded, _ = sf.read(io.BytesIO(encode_flac(waveform, sample_rate)), dtype="float32", always_2d=False)
    return decoded if decoded.ndim == 1 else decoded.T


def _checked(waveform: np.ndarray) -> np.ndarray:
    """float32, and in pairsynth's shape convention; a transposed stereo array fails loudly."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim not in (1, 2) or waveform.shape[-1] == 0:
        raise ValueError(f"expected a (samples,) or (channels, samples) waveform, got shape {waveform.shape}")
    if waveform.ndim == 2 and waveform.shape[0] > MAX_CHANNELS:
        raise ValueError(f"waveform of shape {waveform.shape} has more than {MAX_CHANNELS} channels; "
                         "pairsynth expects (channels, samples) — was a (samples, channels) array passed?")
    return waveform


def _reason(err: Exception) -> str:
    """The library's own explanation, without soundfile's repetition of the path."""
    text = str(getattr(err, "error_string", "") or err)
    return text.strip() or type(err).__name__
