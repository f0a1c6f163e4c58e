"""Shared fixtures. Every test runs offline, on one CPU thread, on tiny or toy models."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(1)  # two cores: leave one for whatever else runs (zoo training, a browser)

from tests.dummy_components import save_tiny_open_clip, save_tiny_sd_pipeline, save_tiny_sdxl_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_audioldm_dir(tmp_path_factory: pytest.TempPathFactory):
    from tests.dummy_audio_components import save_tiny_audioldm_pipeline

    return save_tiny_audioldm_pipeline(tmp_path_factory.mktemp("tiny-audioldm"))


@pytest.fixture(scope="session")
def tiny_audioldm2_dir(tmp_path_factory: pytest.TempPathFactory):
    from tests.dummy_audio_components import save_tiny_audioldm2_pipeline

    return save_tiny_audioldm2_pipeline(tmp_path_factory.mktemp("tiny-audioldm2"))


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory):
    from tests.dummy_audio_components import save_tiny_clap

    return save_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="session")
def tiny_audioldm_mel_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny AudioLDM with the real 64-bin, 160-hop mel front end (for audio→audio variation)."""
    from tests.dummy_audio_components import save_tiny_audioldm_pipeline

    return save_tiny_audioldm_pipeline(tmp_path_factory.mktemp("tiny-audioldm-mel"), real_front_end=True)
