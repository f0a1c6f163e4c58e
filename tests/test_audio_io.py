"""Reading, down-mixing, resampling and FLAC writing with soundfile and soxr."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pairsynth.audio_io import AudioInputError, encode_flac, read_audio, resample, to_mono, write_flac
from pairsynth.errors import PairsynthError


def _sine(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _peak_hz(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[np.argmax(spectrum)])


@pytest.fixture()
def stereo_file(tmp_path):
    """44.1 kHz stereo: the same 1 kHz sine, louder on the left (0.6) than on the right (0.2)."""
    path = tmp_path / "stereo.wav"
    sine = _sine(1000.0, 44_100)
    sf.write(path, np.stack([0.6 * sine, 0.2 * sine], axis=1), 44_100, subtype="FLOAT")
    return path


def test_stereo_44k_is_read_as_channels_first(stereo_file):
    waveform, rate = read_audio(stereo_file)
    assert rate == 44_100 and waveform.shape == (2, 44_100) and waveform.dtype == np.float32
    assert np.abs(waveform[0]).max() == pytest.approx(0.6, abs=1e-3)
    assert np.abs(waveform[1]).max() == pytest.approx(0.2, abs=1e-3)


def test_stereo_44k_is_down_mixed_and_resampled_keeping_its_frequency(stereo_file):
    waveform, rate = read_audio(stereo_file, target_rate=16_000, mono=True)
    assert rate == 16_000 and waveform.shape == (16_000,) and waveform.dtype == np.float32
    assert _peak_hz(waveform, rate) == pytest.approx(1000.0, abs=1.0)
    middle = waveform[1000:-1000]  # away from the resampler's edge transients
    assert np.abs(middle).max() == pytest.approx(0.4, abs=0.005)  # the mean of 0.6 and 0.2


@pytest.mark.parametrize("from_rate, to_rate", [(16_000, 48_000), (48_000, 16_000), (44_100, 22_050)])
def test_resample_keeps_a_sine_s_frequency_and_channels(from_rate, to_rate):
    stereo = np.stack([_sine(440.0, from_rate), _sine(2000.0, from_rate)])
    out = resample(stereo, from_rate, to_rate)
    assert out.shape == (2, to_rate) and out.dtype == np.float32
    assert _peak_hz(out[0], to_rate) == pytest.approx(440.0, abs=1.0)
    assert _peak_hz(out[1], to_rate) == pytest.approx(2000.0, abs=1.0)
    assert resample(stereo[0], from_rate, to_rate).shape == (to_rate,)


def test_to_mono_and_shape_checks():
    mono = _sine(100.0, 8000)
    assert to_mono(mono) is not None and np.array_equal(to_mono(mono), mono)
    assert np.allclose(to_mono(np.stack([mono, -mono])), 0.0)
    with pytest.raises(ValueError, match=r"\(samples, channels\) array"):
        to_mono(np.zeros((8000, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        resample(np.zeros((1, 2, 3), np.float32), 8000, 16000)


def test_flac_round_trip_within_16_bit_quantization(tmp_path):
    stereo = np.stack([_sine(440.0, 16_000, amplitude=0.5), _sine(880.0, 16_000, amplitude=0.25)])
    path = tmp_path / "clip.flac"
    write_flac(path, stereo, 16_000)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.flac"]  # the temporary name was renamed away
    waveform, rate = read_audio(path)
    assert rate == 16_000 and waveform.shape == stereo.shape
    assert np.abs(waveform - stereo).max() <= 1 / 32768 + 1e-7
    assert sf.info(path).subtype == "PCM_16"


def test_encode_flac_gives_flac_bytes_clipped_to_full_scale(tmp_path):
    payload = encode_flac(np.array([0.0, 0.5, 1.7, -3.0], np.float32), 16_000)
    assert payload[:4] == b"fLaC"
    (tmp_path / "loud.flac").write_bytes(payload)
    waveform, _ = read_audio(tmp_path / "loud.flac")
    assert waveform[2] == pytest.approx(1.0, abs=1e-4) and waveform[3] == pytest.approx(-1.0, abs=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        encode_flac(np.array([0.0, np.nan], np.float32), 16_000)


def test_a_failed_write_leaves_no_file_behind(tmp_path):
    with pytest.raises(ValueError):
        write_flac(tmp_path / "bad.flac", np.array([np.inf], np.float32), 16_000)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_missing_and_empty_files_raise_errors_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 4)
    with pytest.raises(AudioInputError, match=r"corrupt\.wav': (Error in WAV file|Format not recognised)") as caught:
        read_audio(corrupt)
    assert isinstance(caught.value, PairsynthError)
    with pytest.raises(AudioInputError, match=r"missing\.flac.*does not exist"):
        read_audio(tmp_path / "missing.flac")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16_000)
    with pytest.raises(AudioInputError, match=r"empty\.wav.*no samples"):
        read_audio(empty)
