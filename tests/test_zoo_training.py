"""Each toy-zoo trainer runs a few steps and exports a folder that loads through the public path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pairsynth.torch_compat import ensure_torchvision_importable  # noqa: E402
from pairsynth.world.shapes import all_captions, render_sample, world_words  # noqa: E402
from pairsynth.zoo.tokenizer import build_clip_tokenizer  # noqa: E402
from pairsynth_train.components import architecture, make_vae  # noqa: E402
from pairsynth_train.model_card import folder_size_mb  # noqa: E402

ensure_torchvision_importable()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_clip_tokenizer_has_single_token_words_and_clip_layout(tmp_path):
    from transformers import CLIPTokenizer

    tokenizer = build_clip_tokenizer(world_words(), tmp_path)
    assert (tmp_path / "vocab.json").exists() and (tmp_path / "merges.txt").exists()
    reloaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == len(tokenizer)
    assert reloaded.model_max_length == 77
    assert reloaded.eos_token_id == len(reloaded) - 1, "EOS must be the highest id for argmax pooling"
    for word in world_words():
        assert len(reloaded.tokenize(word)) == 1, word
    ids = reloaded("an unseen zebra!").input_ids
    assert ids[0] == reloaded.bos_token_id and ids[-1] == reloaded.eos_token_id
    assert reloaded.unk_token_id not in ids[1:-1], "byte-level alphabet: unknown words still tokenize"


def test_clip_tokenizer_rejects_empty_words(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        build_clip_tokenizer([], tmp_path)


def test_toy_clip_trainer_exports_an_open_clip_local_dir(tmp_path):
    import open_clip

    from pairsynth_train.clip_trainer import ClipTrainConfig, train_toy_shapes_clip

    out = tmp_path / "toy-shapes-clip"
    config = ClipTrainConfig.default(steps=2, batch_size=8, warmup=1, eval_count=24, checkpoint_every_s=1e9)
    quality = train_toy_shapes_clip(out, tmp_path / "work", config)
    assert 0.0 <= quality.retrieval <= 1.0 and quality.count == 24
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    assert isinstance(tokenizer, open_clip.tokenizer.HFTokenizer)
    assert len(tokenizer.tokenizer) == model.token_embedding.num_embeddings
    with torch.no_grad():
        image = model.encode_image(preprocess(render_sample(0)[0]).unsqueeze(0))
        text = model.encode_text(tokenizer(all_captions()[:2]))
    assert image.shape == (1, 128) and text.shape == (2, 128)
    assert (out / "README.md").exists() and folder_size_mb(out) <= 12


def test_judges_trainer_exports_loadable_judges(tmp_path):
    from pairsynth_train.data import render_batch
    from pairsynth_train.judges import JudgeTrainConfig, load_judges, train_judges

    out = tmp_path / "judges-shapes"
    config = JudgeTrainConfig.for_world("shapes", steps=2, batch_size=8, eval_count=16)
    accuracy = train_judges("shapes", out, tmp_path / "work", config)
    assert set(accuracy) == {"shape", "colour", "position", "all"}
    predictions = load_judges("shapes", out).predict(render_batch([1, 2]).inputs)
    assert set(predictions[0]) == {"shape", "colour", "position"}


def test_toy_t2i_trainer_exports_a_stable_diffusion_folder(tmp_path):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    from pairsynth_train.t2i_trainer import T2iTrainConfig, train_toy_shapes
    from pairsynth_train.vae_trainer import VaeTrainConfig

    out = tmp_path / "toy-shapes"
    vae = VaeTrainConfig.for_world("shapes", steps=2, decoder_steps=2, batch_size=4, eval_count=16, checkpoint_every_s=1e9)
    config = T2iTrainConfig.default(steps=2, batch_size=4, warmup=1, check_per_caption=0, checkpoint_every_s=1e9, vae=vae)
    train_toy_shapes(out, tmp_path / "work", config)
    pipe = StableDiffusionPipeline.from_pretrained(out)
    assert pipe.safety_checker is None and len(pipe.tokenizer) == pipe.text_encoder.config.vocab_size
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on the left", num_inference_steps=2, guidance_scale=3.0,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)
    assert type(DiffusionPipeline.from_pretrained(out)).__name__ == "StableDiffusionPipeline"
    assert folder_size_mb(out) <= 14
    assert all(p.suffix != ".bin" for p in out.rglob("*")), "weights must be safetensors"


def test_cli_resumes_from_the_last_checkpoint(tmp_path, caplog):
    from pairsynth_train.__main__ import main

    args = ["judges-shapes", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"), "--batch-size", "4"]
    main([*args, "--steps", "2"])
    assert (tmp_path / "work" / "judges.ckpt").exists()
    with caplog.at_level("INFO"):
        main([*args, "--steps", "3", "--resume"])
    assert "resuming judges.ckpt from step 2" in caplog.text
    assert (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("world", ["shapes", "sounds"])
def test_vae_widening_trains_on_wide_items_and_saves_a_loadable_vae(tmp_path, world):
    from diffusers import AutoencoderKL

    from pairsynth_train.vae_trainer import VAE_WORLDS
    from pairsynth_train.vae_widen import WIDE_INPUTS, WidenConfig, widen

    config = WidenConfig(steps=2, batch_size=4, eval_count=4, warmup=1, checkpoint_every_s=1e9)
    own, wide = VAE_WORLDS[world].inputs([1, 2]), WIDE_INPUTS[world]([1, 2], config)
    assert wide.shape == own.shape and not torch.equal(wide, own)  # the VAE's input layout, other content
    make_vae(world).save_pretrained(tmp_path / "vae")
    result = widen(world, tmp_path / "vae", tmp_path / "work", config)
    widened = AutoencoderKL.from_pretrained(tmp_path / "work" / "vae-wide")
    assert widened.config.latent_channels == architecture(world).vae["latent_channels"]
    assert result["shipped_latent_drift"] == 0.0 and result["latent_drift"] > 0.0  # it trained, from the shipped VAE


def test_decoder_only_widening_keeps_every_latent_and_changes_the_decoder(tmp_path):
    from diffusers import AutoencoderKL

    from pairsynth_train.vae_widen import WidenConfig, widen

    make_vae("sounds").save_pretrained(tmp_path / "vae")
    config = WidenConfig(steps=2, batch_size=4, eval_count=4, warmup=1, checkpoint_every_s=1e9, decoder_only=True)
    result = widen("sounds", tmp_path / "vae", tmp_path / "work", config)
    shipped, widened = (AutoencoderKL.from_pretrained(p) for p in (tmp_path / "vae", tmp_path / "work" / "vae-wide"))
    assert result["latent_drift"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(shipped.encoder.parameters(), widened.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(shipped.decoder.parameters(), widened.decoder.parameters()))


def test_a_generated_anchor_measures_how_far_generated_decodes_move(tmp_path):
    import shutil

    from pairsynth_train.vae_widen import WidenConfig, widen

    pipeline = tmp_path / "toy-sounds"
    shutil.copytree(Path(__file__).resolve().parents[1] / "pairsynth/zoo/weights/toy-sounds", pipeline)
    config = WidenConfig(steps=2, batch_size=4, eval_count=4, warmup=1, checkpoint_every_s=1e9, decoder_only=True,
                         generated_anchor=4, generated_eval=2)
    result = widen("sounds", pipeline / "vae", tmp_path / "work", config)
    assert result["shipped_generated_decode_l1"] == 0.0 and result["generated_decode_l1"] > 0.0
    assert result["latent_drift"] == 0.0


def test_vae_widening_refuses_a_folder_without_a_vae_before_loading_anything(tmp_path, capsys):
    from pairsynth_train.vae_widen import main

    with pytest.raises(SystemExit) as stop:
        main(["--world", "sounds", "--vae", str(tmp_path), "--work", str(tmp_path / "work")])
    assert stop.value.code == 2
    assert f"--vae {tmp_path}: not a diffusers VAE folder (no config.json)" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("flag, value", [("--steps", "-5"), ("--batch-size", "1")])
def test_vae_widening_refuses_no_steps_or_a_one_item_batch_before_loading_anything(tmp_path, capsys, flag, value):
    from pairsynth_train.vae_widen import main

    make_vae("sounds").save_pretrained(tmp_path / "vae")
    with pytest.raises(SystemExit) as stop:
        main(["--world", "sounds", "--vae", str(tmp_path / "vae"), "--work", str(tmp_path / "work"), flag, value])
    assert stop.value.code == 2
    assert "give at least 1 step and a batch of 2" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_a_generated_anchor_without_decoder_only_is_refused_before_loading_anything(tmp_path, capsys):
    from pairsynth_train.vae_widen import main

    make_vae("sounds").save_pretrained(tmp_path / "vae")
    with pytest.raises(SystemExit) as stop:
        main(["--world", "sounds", "--vae", str(tmp_path / "vae"), "--work", str(tmp_path / "work"),
              "--generated-anchor", "8"])
    assert stop.value.code == 2
    assert "--generated-anchor holds a sounds decoder; give it with --world sounds --decoder-only" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
