"""Each audio trainer runs a few steps and exports a folder that loads through the public path."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pairsynth.torch_compat import ensure_torchvision_importable  # noqa: E402
from pairsynth.world.sounds import all_captions, render_sample  # noqa: E402
from pairsynth.zoo.registry import WEIGHTS_DIR  # noqa: E402
from pairsynth.zoo.roberta_tokenizer import build_roberta_tokenizer  # noqa: E402
from pairsynth_train.model_card import folder_size_mb  # noqa: E402

ensure_torchvision_importable()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_roberta_tokenizer_has_single_token_words_and_roberta_layout(tmp_path):
    from transformers import RobertaTokenizer

    tokenizer = build_roberta_tokenizer(all_captions(stereo=True), tmp_path)
    assert (tmp_path / "vocab.json").exists() and (tmp_path / "merges.txt").exists()
    reloaded = RobertaTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == len(tokenizer) > 256
    assert (reloaded.bos_token_id, reloaded.pad_token_id, reloaded.eos_token_id) == (0, 1, 2)
    assert reloaded.convert_ids_to_tokens(len(reloaded) - 1) == "<mask>"
    assert reloaded.tokenize("a high beeping tone on the left") == ["a", "Ġhigh", "Ġbeeping", "Ġtone", "Ġon", "Ġthe", "Ġleft"]
    ids = reloaded("an unseen zebra!").input_ids
    assert ids[0] == 0 and ids[-1] == 2 and reloaded.unk_token_id not in ids


def test_roberta_tokenizer_rejects_empty_texts(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        build_roberta_tokenizer([" "], tmp_path)


def test_log_mel_has_audioldm_framing():
    from pairsynth.modalities.audioldm_mel import SILENCE, log_mel

    mel = log_mel(torch.zeros(2, 16_000))
    assert mel.shape == (2, 100, 64) and torch.allclose(mel, torch.full_like(mel, SILENCE))
    with pytest.raises(ValueError, match="batch, samples"):
        log_mel(torch.zeros(16_000))


def test_sound_judges_trainer_exports_loadable_judges(tmp_path):
    from pairsynth_train.judges import JudgeTrainConfig, load_judges, train_judges

    out = tmp_path / "judges-sounds"
    accuracy = train_judges("sounds", out, tmp_path / "work", JudgeTrainConfig.for_world("sounds", steps=2, batch_size=4, eval_count=8))
    assert set(accuracy) == {"kind", "pitch", "all"}
    predictions = load_judges("sounds", out).predict_waveforms([render_sample(1)[0], render_sample(2)[0]])
    assert set(predictions[0]) == {"kind", "pitch"}
    assert (out / "README.md").exists()


def test_clap_trainer_exports_a_clap_model_and_processor(tmp_path):
    from transformers import ClapModel, ClapProcessor

    from pairsynth_train.clap_trainer import ClapTrainConfig, train_toy_sounds_clap
    from pairsynth_train.sound_evaluation import clap_embeddings

    out = tmp_path / "toy-sounds-clap"
    config = ClapTrainConfig.default(steps=2, batch_size=9, warmup=1, eval_count=16, checkpoint_every_s=1e9,
                                     judged_clips=8, eval_generated=8, generator_steps=2, mix=(1 / 3, 1 / 3, 1 / 3))
    quality = train_toy_sounds_clap(out, tmp_path / "work", config)
    assert 0.0 <= quality.retrieval <= 1.0 and quality.count == 16
    assert config.batch_split() == (3, 3, 3)  # clean, through toy-sounds' VAE + vocoder, generated: all three run
    pool = np.load(tmp_path / "work" / "judged-train" / "chunk_0000.npz")
    assert len(pool["judged"]) == 8 and set(pool["judged"]) <= set(all_captions()), "generated clips carry judged captions"
    assert "retrieval of the generating caption" in (out / "README.md").read_text()
    model, processor = ClapModel.from_pretrained(out), ClapProcessor.from_pretrained(out)
    assert len(processor.tokenizer) == model.config.text_config.vocab_size
    assert processor.feature_extractor.truncation == "rand_trunc"
    audio, text = clap_embeddings(model, processor, [render_sample(0)[0]], all_captions()[:2])
    assert audio.shape == (1, 64) and text.shape == (2, 64)
    assert (out / "vocab.json").exists() and (out / "merges.txt").exists() and (out / "README.md").exists()
    assert folder_size_mb(out) <= 8


def test_audioldm_trainer_exports_an_audioldm_folder(tmp_path):
    from diffusers import AudioLDMPipeline, DiffusionPipeline

    from pairsynth_train.vae_trainer import VaeTrainConfig
    from pairsynth_train.audioldm_trainer import T2aTrainConfig, train_toy_sounds
    from pairsynth_train.vocoder_trainer import VocoderTrainConfig

    out = tmp_path / "toy-sounds"
    config = T2aTrainConfig.default(
        steps=2, batch_size=4, warmup=1, pool_clips=8, text_pretrain_steps=2, check_per_caption=1, check_steps=2,
        checkpoint_every_s=1e9,
        vae=VaeTrainConfig.for_world("sounds", steps=2, batch_size=2, eval_count=4, checkpoint_every_s=1e9),
        vocoder=VocoderTrainConfig(steps=2, batch_size=2, eval_clips=4, checkpoint_every_s=1e9),
    )
    check = train_toy_sounds(out, tmp_path / "work", config)
    assert check["samples"] == 8 and check["pipeline"] == "AudioLDMPipeline"
    pipe = AudioLDMPipeline.from_pretrained(out)
    assert len(pipe.tokenizer) == pipe.text_encoder.config.vocab_size
    pipe.set_progress_bar_config(disable=True)
    audio = pipe("a high beeping tone", num_inference_steps=2, audio_length_in_s=1.0,
                 generator=torch.Generator().manual_seed(0)).audios[0]
    assert audio.shape == (16_000,) and np.isfinite(audio).all()
    assert type(DiffusionPipeline.from_pretrained(out)).__name__ == "AudioLDMPipeline"
    assert folder_size_mb(out) <= 14
    assert all(p.suffix != ".bin" for p in out.rglob("*")), "weights must be safetensors"
    assert (tmp_path / "work" / "vae_result.json").exists() and (tmp_path / "work" / "vocoder_result.json").exists()


def test_cli_resumes_the_audio_judges(tmp_path, caplog, monkeypatch):
    from pairsynth_train import data, judges
    from pairsynth_train.__main__ import main

    monkeypatch.setattr(judges, "eval_seeds", lambda count, offset=0: data.eval_seeds(8, offset))  # keep it fast
    args = ["judges-sounds", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"), "--batch-size", "2"]
    main([*args, "--steps", "1"])
    with caplog.at_level("INFO"):
        main([*args, "--steps", "2", "--resume"])
    assert "resuming judges.ckpt from step 1" in caplog.text
    assert (tmp_path / "out" / "model.safetensors").exists()


SHIPPED = {name: WEIGHTS_DIR / name for name in ("toy-sounds", "toy-sounds-clap", "judges-sounds")}


@pytest.mark.skipif(not all((p / "README.md").exists() for p in SHIPPED.values()), reason="audio zoo not trained yet")
def test_shipped_audio_zoo_generates_a_judged_clip():
    from diffusers import AudioLDMPipeline
    from transformers import ClapModel, ClapProcessor

    from pairsynth_train.judges import load_judges

    pipe = AudioLDMPipeline.from_pretrained(SHIPPED["toy-sounds"])
    pipe.set_progress_bar_config(disable=True)
    audio = pipe("a low steady tone", num_inference_steps=10, guidance_scale=2.5, audio_length_in_s=1.0,
                 generator=torch.Generator().manual_seed(0)).audios[0]
    assert audio.shape == (16_000,) and np.abs(audio).max() > 0.01
    assert load_judges("sounds", SHIPPED["judges-sounds"]).predict_waveforms([audio])[0]["pitch"] == "low"
    processor = ClapProcessor.from_pretrained(SHIPPED["toy-sounds-clap"])
    assert len(processor.tokenizer) == ClapModel.from_pretrained(SHIPPED["toy-sounds-clap"]).config.text_config.vocab_size
