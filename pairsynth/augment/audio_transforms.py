"""Audio transforms: time shift, time stretch, gain and pitch shift.

They follow the contract of :class:`~pairsynth.augment.transforms.Transform` and act on every
channel alike, so a stereo clip keeps its left/right balance (what the caption's side word says).
On a sample without audio they do not run, which lets one chain serve image, audio and triplet data.
Shifts and stretches that keep the clip's length can push the sound out of it; when less than
``min_kept`` of its energy remains, the pair is dropped or flagged (``audio_cut``) rather than
written with a caption for a sound that is no longer there.

librosa (stretch, pitch) is imported on first use: importing pairsynth stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from pairsynth.augment.caption_rules import PITCH_DOWN, PITCH_UP
from pairsynth.augment.sample import Drop, Sample
from pairsynth.augment.transforms import OnCut, Params, Transform, check_on_cut, check_range, cut_verdict


class _AudioTransform(Transform):
    def not_applicable(self, sample: Sample) -> str | None:
        return "no audio" if sample.audio is None else None


def _energy(audio: np.ndarray) -> float:
    return float(np.sum(np.square(audio, dtype=np.float64)))


def _kept(part: np.ndarray, whole: np.ndarray) -> float:
    total = _energy(whole)
    return 1.0 if total == 0.0 else _energy(part) / total


def _check_kept(transform: str, min_kept: float) -> float:
    if not 0.0 <= float(min_kept) <= 1.0:
        raise ValueError(f"{transform}: min_kept={min_kept}; must be in [0, 1]")
    return float(min_kept)


class TimeShift(_AudioTransform):
    """Move the sound earlier (negative) or later (positive) in the clip, keeping its length.

    Args:
        shift_s: range of the shift in seconds.
        mode: ``pad`` fills the gap with silence (what falls off the end is lost); ``roll`` wraps it
            round to the other end (nothing lost, but a sound may start mid-way).
        min_kept: with ``pad``, the fraction of the clip's energy that must remain.
        on_cut: ``drop`` or ``flag`` a pair that keeps less.
    """

    name = "time_shift"

    def __init__(self, shift_s: Sequence[float] = (-0.1, 0.1), *, mode: Literal["pad", "roll"] = "pad",
                 min_kept: float = 0.8, on_cut: OnCut = "drop", p: float = 1.0, **common: Any) -> None:
        super().__init__(p=p, **common)
        self.shift_s = check_range(self.name, "shift_s", shift_s)
        if mode not in ("pad", "roll"):
            raise ValueError(f"time_shift: mode={mode!r}; accepted: pad, roll")
        self.mode = mode
        self.min_kept = _check_kept(self.name, min_kept)
        self.on_cut = check_on_cut(self.name, on_cut)

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        shift = float(rng.uniform(*self.shift_s))
        return {"shift_s": shift, "shift_samples": int(round(shift * sample.sample_rate))}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        audio, shift = sample.audio, int(params["shift_samples"])
        if self.mode == "roll":
            return sample.replace(audio=np.roll(audio, shift, axis=-1))
        length = audio.shape[-1]
        shifted = np.zeros_like(audio)
        if 0 <= shift < length:
            shifted[..., shift:] = audio[..., : length - shift]
        elif -length < shift < 0:
            shifted[..., :shift] = audio[..., -shift:]
        kept = _kept(shifted, audio)
        problems = [] if kept >= self.min_kept else [
            ("audio_cut", f"{kept:.0%} of the sound's energy left after a {params['shift_s']:+.3f} s shift "
                          f"(min {self.min_kept:.0%})")]
        return cut_verdict(sample.replace(audio=shifted), self.on_cut, problems)

    def settings(self) -> dict[str, Any]:
        return {"shift_s": list(self.shift_s), "mode": self.mode, "min_kept": self.min_kept, "on_cut": self.on_cut}


class TimeStretch(_AudioTransform):
    """Speed the sound up (``rate`` > 1) or slow it down without changing its pitch (phase vocoder).

    Args:
        rate: range of the speed factor.
        keep_length: pad or trim back to the input length (fixed-length datasets need it);
            a slowed sound's tail can then be cut off, checked with ``min_kept``.
        min_kept: fraction of the stretched sound's energy that must survive the trim.
        on_cut: ``drop`` or ``flag`` a pair that keeps less.
    """

    name = "time_stretch"

    def __init__(self, rate: Sequence[float] = (0.9, 1.1), *, keep_length: bool = True, min_kept: float = 0.8,
                 on_cut: OnCut = "drop", p: float = 1.0, **common: Any) -> None:
        super().__init__(p=p, **common)
        self.rate = check_range(self.name, "rate", rate, low=0.0, open_low=True)
        self.keep_length = bool(keep_length)
        self.min_kept = _check_kept(self.name, min_kept)
        self.on_cut = check_on_cut(self.name, on_cut)

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        return {"rate": float(rng.uniform(*self.rate))}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        import librosa

        stretched = librosa.effects.time_stretch(sample.audio, rate=float(params["rate"])).astype(np.float32)
        if not self.keep_length:
            return sample.replace(audio=stretched)
        length = sample.audio.shape[-1]
        kept = _kept(stretched[..., :length], stretched)
        fitted = librosa.util.fix_length(stretched, size=length, axis=-1).astype(np.float32)
        problems = [] if kept >= self.min_kept else [
            ("audio_cut", f"{kept:.0%} of the sound's energy left after stretching by {params['rate']:.3f} "
                          f"(min {self.min_kept:.0%})")]
        return cut_verdict(sample.replace(audio=fitted), self.on_cut, problems)

    def settings(self) -> dict[str, Any]:
        return {"rate": list(self.rate), "keep_length": self.keep_length, "min_kept": self.min_kept,
                "on_cut": self.on_cut}


class Gain(_AudioTransform):
    """Make the clip louder or quieter by a random number of decibels.

    Args:
        db: range of the gain in dB.
        max_peak: lower the drawn gain where needed so the peak stays at or below this (``None``:
            never). Clipping later, in a FLAC encoder, would add distortion the caption does not
            mention. The params record both the drawn and the applied gain.
    """

    name = "gain"

    def __init__(self, db: Sequence[float] = (-6.0, 6.0), *, max_peak: float | None = 1.0, p: float = 1.0,
                 **common: Any) -> None:
        super().__init__(p=p, **common)
        self.db = check_range(self.name, "db", db)
        if max_peak is not None and not float(max_peak) > 0.0:
            raise ValueError(f"gain: max_peak={max_peak}; must be positive or null")
        self.max_peak = None if max_peak is None else float(max_peak)

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        drawn = float(rng.uniform(*self.db))
        applied = drawn
        peak = float(np.max(np.abs(sample.audio)))
        if self.max_peak is not None and peak > 0.0:
            applied = min(drawn, 20.0 * math.log10(self.max_peak / peak))
        return {"db": applied, "db_drawn": drawn}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        factor = 10.0 ** (float(params["db"]) / 20.0)
        return sample.replace(audio=(sample.audio * np.float32(factor)).astype(np.float32))

    def settings(self) -> dict[str, Any]:
        return {"db": list(self.db), "max_peak": self.max_peak}


class PitchShift(_AudioTransform):
    """Shift the pitch by a random number of semitones, keeping the duration (librosa.effects).

    The built-in rules (:data:`PITCH_UP`, :data:`PITCH_DOWN`) turn "low" into "high" after a shift of
    an octave or more up, and back; add rules of your own for the pitch bands of your data, e.g.
    invalidate "low"/"high" between 3 and 12 semitones, where neither word is safe.

    Args:
        semitones: range of the shift (negative: down).
    """

    name = "pitch_shift"
    builtin_rules = (PITCH_UP, PITCH_DOWN)

    def __init__(self, semitones: Sequence[float] = (-2.0, 2.0), *, p: float = 1.0, **common: Any) -> None:
        super().__init__(p=p, **common)
        self.semitones = check_range(self.name, "semitones", semitones, low=-48.0, high=48.0)

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        return {"semitones": float(rng.uniform(*self.semitones))}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        import librosa

        shifted = librosa.effects.pitch_shift(sample.audio, sr=int(sample.sample_rate),
                                              n_steps=float(params["semitones"]))
        return sample.replace(audio=np.asarray(shifted, dtype=np.float32))

    def settings(self) -> dict[str, Any]:
        return {"semitones": list(self.semitones)}
