"""AudioLDM's 16 kHz log-mel front end, in torch (so training losses can flow through it).

The settings follow AudioLDM's 16 kHz front end (n_fft 1024, window 1024, hop 160, 64 Slaney mel
bins from 0 to 8 kHz, magnitude spectrum, natural log with a 1e-5 floor, reflect padding of
(n_fft - hop) / 2 and no centring), so a 1 s clip is exactly 100 frames and the vocoder's
upsampling (160×) maps frames back to samples one to one. Real AudioLDM checkpoints were trained on
this front end; the toy zoo's VAE, vocoder, UNet and judges use it too, and audio→audio variation
encodes source clips with it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 160
N_MELS = 64
F_MAX = 8000.0
LOG_FLOOR = 1e-5
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100
SILENCE = float(np.log(LOG_FLOOR))  # the log-mel value of digital silence, about -11.5


@lru_cache(maxsize=4)
def _mel_basis(sample_rate: int, n_mels: int) -> torch.Tensor:
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=n_mels, fmin=0.0, fmax=F_MAX)
    return torch.from_numpy(basis).float()


@lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    return torch.hann_window(N_FFT)


def mel_magnitude(waveforms: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """(B, samples) waveforms at 16 kHz → (B, n_mels, frames) linear mel magnitudes, ``samples / 160`` frames."""
    if waveforms.dim() != 2:
        raise ValueError(f"mel_magnitude: waveforms must be (batch, samples), got shape {tuple(waveforms.shape)}")
    pad = (N_FFT - HOP) // 2
    padded = F.pad(waveforms.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(padded, N_FFT, hop_length=HOP, win_length=N_FFT, window=_window(), center=False,
                      return_complex=True)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)  # (B, freq, frames)
    return _mel_basis(SAMPLE_RATE, n_mels) @ magnitude


def log_mel(waveforms: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """(B, samples) waveforms at 16 kHz → (B, frames, n_mels) log-mel, ``samples / 160`` frames."""
    return torch.log(torch.clamp(mel_magnitude(waveforms, n_mels), min=LOG_FLOOR)).transpose(1, 2)


def waveforms_to_tensor(waveforms) -> torch.Tensor:
    """A list of equal-length 1-D numpy/torch waveforms → (B, samples) float32 tensor."""
    return torch.stack([torch.as_tensor(np.asarray(w), dtype=torch.float32) for w in waveforms])
