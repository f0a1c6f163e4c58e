"""Every output format reads back in `datasets` 3.x (this venv) and in the current release (a second venv).

datasets is only a test dependency: pairsynth writes plain files. The current release (5.x) runs in
``.venv-ds5`` (``scripts/setup.sh --datasets-current`` makes it; ``PAIRSYNTH_DATASETS_VENV`` points
elsewhere); without it that test skips and says so. Since datasets 4, audio decodes only through
torchcodec, whose wheels for torch 2.13 need CUDA: on a CPU machine 5.x reads the audio columns as
FLAC bytes (checked here with soundfile) and the decode error is recorded, not hidden.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets_readback import CAPTIONS, RATE, read_all, write_all

REPO = Path(__file__).resolve().parents[1]


def check(report: dict, *, audio_decodes: bool | None) -> None:
    for name in ("imagefolder", "webdataset", "parquet_image"):
        assert report[name]["rows"] == 3 and report[name]["text"] == sorted(CAPTIONS), name
        assert report[name]["size"] == [16, 16], name
    assert report["parquet_image"]["feature"] == "Image"
    for name in ("audiofolder", "parquet_audio"):
        entry = report[name]
        if name == "audiofolder" and audio_decodes is False:  # 4.x+ cannot even load it without torchcodec
            assert "torchcodec" in entry.get("load_error", "").lower(), entry
            continue
        assert entry["rows"] == 3 and entry["bytes_rate"] == RATE and entry["bytes_samples"] == RATE // 8, name
        if audio_decodes is True:
            assert entry.get("decoded_samples") == RATE // 8, entry
        elif audio_decodes is False:
            assert "torchcodec" in entry.get("decode_error", "").lower(), entry
    assert report["parquet_triplet"]["rows"] == 3 and {"image", "audio", "text"} <= set(report["parquet_triplet"]["columns"])


def test_every_format_reads_back_in_the_installed_datasets(tmp_path):
    import datasets

    write_all(tmp_path)
    report = read_all(tmp_path)
    major = int(datasets.__version__.split(".")[0])
    check(report, audio_decodes=True if major < 4 else None)


def current_datasets_python() -> Path | None:
    venv = Path(os.environ.get("PAIRSYNTH_DATASETS_VENV", REPO / ".venv-ds5"))
    python = venv / "bin" / "python"
    return python if python.exists() else None


def test_every_format_reads_back_in_the_current_datasets_release(tmp_path):
    python = current_datasets_python()
    if python is None:
        pytest.skip("no venv with the current datasets release (.venv-ds5); make it with "
                    "`scripts/setup.sh --datasets-current` or point PAIRSYNTH_DATASETS_VENV at one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([str(python), str(REPO / "tests" / "datasets_readback.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert int(report["datasets"].split(".")[0]) >= 5, report["datasets"]
    has_torchcodec = subprocess.run([str(python), "-c", "import torchcodec"], capture_output=True).returncode == 0
    check(report, audio_decodes=has_torchcodec)
    print(f"datasets {report['datasets']}: images read in every format; parquet audio: "
          f"{report['parquet_audio'].get('decode_error', 'decoded')}; audiofolder: "
          f"{report['audiofolder'].get('load_error', 'loaded')}", file=sys.stderr)
