"""The generated-audio checks: NaN, silence, DC, clipping and shape."""

from __future__ import annotations

import numpy as np
import pytest

from pairsynth.alignment.audio_checks import CLIPPED_FRACTION, SILENCE_DBFS, audio_problem

RATE = 16_000
T = np.arange(RATE) / RATE
TONE = (0.3 * np.sin(2 * np.pi * 440 * T)).astype(np.float32)  # about -13 dBFS


def _db(level_dbfs: float) -> float:
    return 10 ** (level_dbfs / 20)


@pytest.mark.parametrize("waveform", [
    TONE,
    np.stack([TONE, np.zeros_like(TONE)]),  # hard-panned: one silent channel is a valid "on the left"
    TONE + 0.2,  # a DC offset under real content is not DC-only
    np.where(np.arange(RATE) == 100, 1.0, TONE).astype(np.float32),  # one full-scale peak is not clipping
    (np.sqrt(2) * _db(SILENCE_DBFS + 3) * np.sin(2 * np.pi * 440 * T)).astype(np.float32),  # just above the floor
], ids=["tone", "hard-panned-stereo", "offset-tone", "single-peak", "quiet-tone"])
def test_healthy_clips_pass(waveform):
    assert audio_problem(waveform, RATE) is None


@pytest.mark.parametrize("waveform, reason", [
    (np.where(np.arange(RATE) == 5, np.nan, TONE), "nan_output"),
    (np.where(np.arange(RATE) == 5, np.inf, TONE), "nan_output"),
    (np.zeros(RATE, np.float32), "silent_audio"),
    ((_db(-75) * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32), "silent_audio"),
    (np.full(RATE, 0.5, np.float32), "dc_only_audio"),
    (np.full(RATE, -0.5, np.float32) + _db(-80) * np.sin(2 * np.pi * 440 * T), "dc_only_audio"),
    (np.clip(5 * TONE, -1, 1), "clipped_audio"),
    (np.full((2, 10), 0.1, np.float32)[:, :0], "bad_shape"),
    (np.zeros((2, 3, 4), np.float32), "bad_shape"),
    (np.zeros((RATE, 2), np.float32), "bad_shape"),  # (samples, channels) by mistake
    ((TONE * 32767).astype(np.int16), "bad_shape"),
], ids=["nan", "inf", "zeros", "noise-75dBFS", "dc", "dc-with-whisper", "clipped", "empty", "3d", "transposed", "int16"])
def test_unusable_clips_are_caught_with_a_reason(waveform, reason):
    problem = audio_problem(waveform, RATE)
    assert problem is not None and problem[0] == reason, problem
    assert problem[1]  # a detail a person can read


def test_details_name_the_measured_level_and_threshold():
    reason, detail = audio_problem(np.zeros(RATE, np.float32) + 1e-5, RATE)
    assert reason == "silent_audio" and "-100.0 dBFS" in detail and "-60 dBFS" in detail
    reason, detail = audio_problem(np.clip(5 * TONE, -1, 1), RATE)
    assert reason == "clipped_audio" and f"{100 * CLIPPED_FRACTION:.0f}%" in detail


def test_a_bad_sample_rate_is_a_shape_problem():
    assert audio_problem(TONE, 0)[0] == "bad_shape"
