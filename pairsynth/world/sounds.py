"""The SOUNDS world: one synthesized sound (1 s, mono, 16 kHz) of one kind at one pitch.

Four kinds × two pitches give 8 mono captions such as ``"a high beeping tone"``. The kinds were
chosen to differ clearly in a log-mel spectrogram (a tiny vocoder and diffusion model must be able to
reproduce the difference, and a tiny CNN to judge it): a steady tone is one long horizontal line, a
beeping tone a dashed line, a rising chirp a diagonal line, a noise burst a short wide smear. Low
pitches sit at 200-320 Hz and high ones at 1.1-1.7 kHz, more than two octaves apart.

A third attribute, the ``side`` (left/right), exists only for stereo renders
(:func:`render_stereo`, :func:`stereo_caption`): it is what synchronized augmentation flips together
with the caption (``"... on the left"``). Mono models and mono captions ignore it.

Exact frequency, loudness, onset, duration, beep count and noise floor vary per sample and never
appear in the caption, so models must learn to ignore them. Everything caption-related derives from
:data:`VOCAB`; the grammar, the parser and the judges' class lists all read that one table.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np

# One table for the whole world. Order matters: it fixes class indices for judges.
VOCAB = MappingProxyType(
    {
        "kind": ("steady tone", "beeping tone", "rising chirp", "noise burst"),
        "pitch": ("low", "high"),
        "side": ("left", "right"),
    }
)
ATTRIBUTES: tuple[str, ...] = tuple(VOCAB)
MONO_ATTRIBUTES: tuple[str, ...] = ("kind", "pitch")  # what a mono caption names and mono judges recover
CAPTION_TEMPLATE = "a {pitch} {kind}"
STEREO_CAPTION_TEMPLATE = "a {pitch} {kind} on the {side}"
_CAPTION_RE = re.compile(
    r"^\s*a\s+(?P<pitch>\w+)\s+(?P<kind>\w+\s+\w+)(?:\s+on\s+the\s+(?P<side>\w+))?\s*\.?\s*$"
)

SAMPLE_RATE = 16_000
DURATION_S = 1.0
PITCH_RANGES_HZ = MappingProxyType({"low": (200.0, 320.0), "high": (1100.0, 1700.0)})
CHIRP_RATIO = 2.5  # a chirp ends this many times above its start frequency
STEREO_FAR_GAIN = 0.35  # the far channel's gain in a stereo render (about 9 dB quieter)
_FADE_S = 0.01  # fades avoid clicks, which would smear broadband energy over the mel


@dataclass(frozen=True, kw_only=True)
class SoundScene:
    """Everything needed to synthesize one sound; times in seconds, frequencies in Hz.

    Attributes:
        kind: One of ``VOCAB["kind"]``.
        pitch: ``"low"`` or ``"high"``.
        side: ``"left"`` or ``"right"``: used by stereo renders only.
        frequency: Fundamental (tones), start frequency (chirp) or band centre (noise).
        amplitude: Peak amplitude of the sound, 0-1.
        onset: Start time of the sound.
        duration: Length of the sound (for beeps, of the whole beep train).
        beeps: Number of beeps (beeping tone only).
        noise_floor: Amplitude of the white background noise.
        noise_seed: Seed of the noise (noise burst and background).
    """

    kind: str
    pitch: str
    side: str = "left"
    frequency: float = 440.0
    amplitude: float = 0.5
    onset: float = 0.05
    duration: float = 0.8
    beeps: int = 4
    noise_floor: float = 0.001
    noise_seed: int = 0

    def __post_init__(self) -> None:
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if value not in VOCAB[name]:
                raise ValueError(f"SoundScene.{name}={value!r}; accepted: {', '.join(VOCAB[name])}")
        if not 0 < self.amplitude <= 1:
            raise ValueError(f"SoundScene.amplitude={self.amplitude}; must be in (0, 1]")
        if self.onset < 0 or self.duration <= 0 or self.onset + self.duration > DURATION_S:
            raise ValueError(f"SoundScene onset={self.onset}, duration={self.duration}; must fit in {DURATION_S} s")
        if self.beeps < 1:
            raise ValueError(f"SoundScene.beeps={self.beeps}; must be >= 1")

    def attributes(self, stereo: bool = False) -> dict[str, str]:
        """The captioned attributes (what a judge must recover); ``side`` only for stereo."""
        names = ATTRIBUTES if stereo else MONO_ATTRIBUTES
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict:
        return asdict(self)


def caption(scene: SoundScene) -> str:
    """The mono caption of a scene, e.g. ``"a high beeping tone"``."""
    return CAPTION_TEMPLATE.format(**scene.attributes())


def stereo_caption(scene: SoundScene) -> str:
    """The caption of a stereo render, e.g. ``"a high beeping tone on the left"``."""
    return STEREO_CAPTION_TEMPLATE.format(**scene.attributes(stereo=True))


def all_captions(stereo: bool = False) -> list[str]:
    """All 8 mono captions (or 16 stereo ones) in a fixed order: kind, then pitch, then side."""
    if not stereo:
        return [CAPTION_TEMPLATE.format(kind=k, pitch=p) for k, p in itertools.product(VOCAB["kind"], VOCAB["pitch"])]
    return [
        STEREO_CAPTION_TEMPLATE.format(kind=k, pitch=p, side=s)
        for k, p, s in itertools.product(VOCAB["kind"], VOCAB["pitch"], VOCAB["side"])
    ]


def world_words() -> list[str]:
    """Every word the caption grammars can produce (for building tokenizers)."""
    templates = CAPTION_TEMPLATE + " " + STEREO_CAPTION_TEMPLATE
    grammar_words = re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", templates))
    value_words = {w for values in VOCAB.values() for value in values for w in value.split()}
    return sorted(set(grammar_words) | value_words)


def parse_caption(text: str) -> dict[str, str]:
    """Recover the attributes named by a mono or stereo caption (``side`` only when named).

    Raises:
        ValueError: If the text does not follow the world's grammar or names an unknown value.
    """
    match = _CAPTION_RE.match(text.lower())
    if match is None:
        raise ValueError(f"caption {text!r} does not match {CAPTION_TEMPLATE!r} or {STEREO_CAPTION_TEMPLATE!r}")
    found = {name: re.sub(r"\s+", " ", value) for name, value in match.groupdict().items() if value is not None}
    for name, value in found.items():
        if value not in VOCAB[name]:
            raise ValueError(f"caption {text!r}: unknown {name} {value!r}; accepted: {', '.join(VOCAB[name])}")
    return found


def _format(found: dict[str, str]) -> str:
    return (STEREO_CAPTION_TEMPLATE if "side" in found else CAPTION_TEMPLATE).format(**found)


def one_attribute_off(text: str) -> list[str]:
    """Captions differing from ``text`` in exactly one named attribute (hard negatives).

    A mono caption has 4 (3 other kinds, 1 other pitch); a stereo caption 5 (plus the other side).
    """
    found = parse_caption(text)
    variants = []
    for name in found:
        for value in VOCAB[name]:
            if value != found[name]:
                variants.append(_format({**found, name: value}))
    return variants


def scene_from_caption(text: str) -> SoundScene:
    """A canonical scene for a caption: mid-range frequency and loudness, default timing."""
    found = parse_caption(text)
    low, high = PITCH_RANGES_HZ[found["pitch"]]
    return SoundScene(**found, frequency=math.sqrt(low * high))


def sample_scene(rng: random.Random) -> SoundScene:
    """Draw the attributes uniformly, then jitter frequency, loudness, timing and noise."""
    kind = rng.choice(VOCAB["kind"])
    pitch = rng.choice(VOCAB["pitch"])
    side = rng.choice(VOCAB["side"])
    low, high = PITCH_RANGES_HZ[pitch]
    frequency = math.exp(rng.uniform(math.log(low), math.log(high)))
    onset = rng.uniform(0.0, 0.12)
    if kind == "noise burst":
        duration = rng.uniform(0.25, 0.45)
    elif kind == "rising chirp":
        duration = rng.uniform(0.6, 0.85)
    else:
        duration = rng.uniform(0.7, 0.88)
    return SoundScene(
        kind=kind, pitch=pitch, side=side, frequency=frequency, amplitude=rng.uniform(0.3, 0.8),
        onset=onset, duration=duration, beeps=rng.randint(3, 5),
        noise_floor=math.exp(rng.uniform(math.log(3e-4), math.log(3e-3))), noise_seed=rng.randrange(2**31),
    )


def synthesize(scene: SoundScene, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesize a scene as a mono float32 waveform of ``DURATION_S`` seconds, peak below 1."""
    if sample_rate < 8000:
        raise ValueError(f"synthesize: sample_rate={sample_rate} is too low; use at least 8000 (high pitches reach 4.3 kHz)")
    n = int(round(DURATION_S * sample_rate))
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(scene.noise_seed)
    local = t - scene.onset  # time since onset
    inside = (local >= 0) & (local < scene.duration)
    envelope = inside * _fades(local, scene.duration)
    if scene.kind == "steady tone":
        signal = _harmonic(2 * np.pi * scene.frequency * t)
    elif scene.kind == "beeping tone":
        signal = _harmonic(2 * np.pi * scene.frequency * t)
        period = scene.duration / scene.beeps
        beep_len = 0.5 * period  # on half, off half: gaps of >= 70 ms, 7 mel frames
        phase = np.mod(local, period)
        envelope = envelope * (phase < beep_len) * _fades(phase, beep_len)
    elif scene.kind == "rising chirp":
        # exponential sweep: instantaneous frequency f0 * ratio ** (local / duration)
        rate = math.log(CHIRP_RATIO) / scene.duration
        clipped = np.clip(local, 0, scene.duration)
        signal = _harmonic(2 * np.pi * scene.frequency * np.expm1(rate * clipped) / rate)
    else:  # noise burst: band-limited noise (about ±0.7 octave) with a sharp attack and a decay
        signal = _band_noise(rng, n, sample_rate, scene.frequency)
        envelope = envelope * np.exp(-3.0 * np.clip(local, 0, None) / scene.duration)
    wave = scene.amplitude * envelope * signal + scene.noise_floor * rng.standard_normal(n)
    return np.clip(wave, -0.99, 0.99).astype(np.float32)


def _harmonic(phase: np.ndarray) -> np.ndarray:
    """A tone with a weak second harmonic (a little timbre; it stays within its pitch band)."""
    return (np.sin(phase) + 0.2 * np.sin(2 * phase)) / 1.2


def _fades(local: np.ndarray, length: float) -> np.ndarray:
    """Linear fade-in and fade-out ramps of ``_FADE_S`` at both ends of ``[0, length)``."""
    return np.clip(np.minimum(local, length - local) / _FADE_S, 0.0, 1.0)


def _band_noise(rng: np.random.Generator, n: int, sample_rate: int, centre: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[(freqs < centre / 1.6) | (freqs > centre * 1.6)] = 0
    band = np.fft.irfft(spectrum, n)
    return band / (np.abs(band).max() + 1e-9)


def render_stereo(scene: SoundScene, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A (2, samples) float32 render, louder on ``scene.side`` (level difference only)."""
    mono = synthesize(scene, sample_rate)
    near, far = mono, STEREO_FAR_GAIN * mono
    channels = (near, far) if scene.side == "left" else (far, near)
    return np.stack(channels).astype(np.float32)


def render_sample(seed: int, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, str, SoundScene]:
    """The seed → sample contract: the same seed always gives the same waveform, caption and scene."""
    scene = sample_scene(random.Random(seed))
    return synthesize(scene, sample_rate), caption(scene), scene
