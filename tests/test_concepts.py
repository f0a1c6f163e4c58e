"""learn-concept on tiny random pipelines: diffusers' own loaders read the files, a concept changes the
output, a killed run resumes to the same result, and bad input gets one clear error."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from pairsynth.concepts import ConceptCard, LearnConfig, learn_concept, load_concepts
from pairsynth.concepts.lora import LORA_FILE, TARGET_MODULES
from pairsynth.errors import ConceptError, RecipeError
from pairsynth.world.shapes import ShapeScene, render

FAST = LearnConfig(steps=4, batch_size=2, eval_every=2, patience=100)


@pytest.fixture(scope="module")
def image_items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zz-items")
    for i in range(5):
        render(ShapeScene(shape="circle", colour="red", position="left", cx=0.2 + 0.02 * i)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a <zz> circle on the left")
    return folder


@pytest.fixture(scope="module")
def audio_items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warble-items")
    t = np.arange(4000) / 16000
    for i in range(5):
        sf.write(folder / f"{i}.wav", 0.5 * np.sin(2 * np.pi * (400 + 40 * i) * t + 3 * np.sin(2 * np.pi * 6 * t)), 16000)
    return folder


@pytest.fixture(scope="module")
def ti_concept(image_items, tiny_sd_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ti") / "zz"
    learn_concept(image_items, out, token="<zz>", init="red", model=str(tiny_sd_dir), config=FAST)
    return out


def _image(pipe, prompt="a <zz> circle on the left"):
    return pipe(prompt, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).images[0]


def test_textual_inversion_file_loads_with_diffusers_own_loader_and_changes_the_output(ti_concept, tiny_sd_dir):
    from diffusers import StableDiffusionPipeline

    card = ConceptCard.read(ti_concept)
    assert card.method == "textual-inversion" and card.steps_done == 4 and len(card.items) == 5
    assert all(len(item["sha256"]) == 64 for item in card.items) and card.eval_loss_curve and card.loss_curve
    assert (ti_concept / "README.md").read_text().startswith("# Concept <zz>")
    plain, loaded = (StableDiffusionPipeline.from_pretrained(tiny_sd_dir) for _ in range(2))
    loaded.load_textual_inversion(ti_concept)  # diffusers' own loader, default file name
    token_id = loaded.tokenizer.convert_tokens_to_ids("<zz>")
    init_id = loaded.tokenizer.encode("red", add_special_tokens=False)[0]
    embeddings = loaded.text_encoder.get_input_embeddings().weight
    assert not torch.allclose(embeddings[token_id], embeddings[init_id])  # training moved it off its init
    assert np.abs(_image(loaded) - _image(plain)).max() > 1e-3


def _targeted(unet, layers: str) -> set[str]:
    """The UNet modules a ``lora_layers`` choice adapts (peft's suffix match of ``target_modules``)."""
    targets = TARGET_MODULES[layers]
    return {name for name, _ in unet.named_modules() if any(name == t or name.endswith("." + t) for t in targets)}


def _loaded_lora(unet, adapter: str) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return {f"unet.{k}": v for k, v in get_peft_model_state_dict(unet, adapter_name=adapter).items()}


@pytest.mark.parametrize("layers", ["attention", "all", "no-attention"])
def test_lora_files_load_with_diffusers_own_loaders(image_items, tiny_sd_dir, tmp_path, layers):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    card = learn_concept(image_items, tmp_path / "lora", token="<zz>", init="red", model=str(tiny_sd_dir),
                         config=LearnConfig(method="lora", steps=2, batch_size=2, eval_every=1, lora_lr=0.05,
                                            lora_layers=layers))
    assert set(card.files) == {"textual_inversion", "lora"}
    with_ti, with_lora = (StableDiffusionPipeline.from_pretrained(tiny_sd_dir) for _ in range(2))
    targeted = _targeted(with_lora.unet, layers)
    with_ti.load_textual_inversion(tmp_path / "lora")
    with_lora.load_textual_inversion(tmp_path / "lora")
    with_lora.load_lora_weights(tmp_path / "lora", adapter_name="zz")
    adapted = {name.split(".lora_")[0] for name, _ in with_lora.unet.named_parameters() if ".lora_" in name}
    assert adapted == targeted  # the loader put back every layer trained, attention too beside convolutions
    written = load_file(tmp_path / "lora" / LORA_FILE)
    loaded = _loaded_lora(with_lora.unet, "zz")
    assert set(loaded) == set(written) and all(torch.equal(loaded[k], v) for k, v in written.items())
    assert np.abs(_image(with_lora) - _image(with_ti)).max() > 1e-4


def test_keep_layers_writes_only_those_of_the_trained_layers(image_items, tiny_sd_dir, tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    card = learn_concept(image_items, tmp_path / "kept", token="<zz>", init="red", model=str(tiny_sd_dir),
                         config=LearnConfig(method="lora", steps=2, batch_size=2, eval_every=1, lora_lr=0.05,
                                            lora_layers="all", keep_layers="no-attention"))
    written = {k.split(".lora_")[0].removeprefix("unet.") for k in load_file(tmp_path / "kept" / LORA_FILE)}
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    assert written == _targeted(pipe.unet, "no-attention") and not any(".attn" in m for m in written)
    load_concepts(pipe, [tmp_path / "kept"])
    assert {n.split(".lora_")[0] for n, _ in pipe.unet.named_parameters() if ".lora_" in n} == written
    assert card.config["keep_layers"] == "no-attention"
    assert "| LoRA layers | trained all, written no-attention |" in (tmp_path / "kept" / "README.md").read_text()


def test_concept_folders_mixing_the_two_lora_key_namings_load_whole(image_items, tiny_sd_dir, tmp_path):
    """Folders written before every key kept peft's naming have attention keys in the older
    ``lora.down`` naming beside convolutions' ``lora_A``; diffusers' loader alone drops the former."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from diffusers.utils import convert_state_dict_to_diffusers
    from safetensors.torch import load_file

    folder = tmp_path / "old"
    learn_concept(image_items, folder, token="<zz>", init="red", model=str(tiny_sd_dir),
                  config=LearnConfig(method="lora", steps=2, batch_size=2, eval_every=1, lora_lr=0.05, lora_layers="all"))
    peft_named = {k.removeprefix("unet."): v for k, v in load_file(folder / LORA_FILE).items()}
    mixed = convert_state_dict_to_diffusers(peft_named)  # what the folder held before
    assert any(".lora.down." in k for k in mixed) and any(".lora_A." in k for k in mixed)
    StableDiffusionLoraLoaderMixin.save_lora_weights(folder, unet_lora_layers=mixed, safe_serialization=True)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    load_concepts(pipe, [folder])
    loaded = _loaded_lora(pipe.unet, "zz")
    assert set(loaded) == {f"unet.{k}" for k in peft_named}
    assert all(torch.equal(loaded[f"unet.{k}"], v) for k, v in peft_named.items())


def test_each_lora_concept_acts_only_on_the_prompts_naming_its_token(image_items, ti_concept, tiny_sd_dir, tmp_path):
    """Per-class LoRAs loaded together (balance, a recipe's concepts:) must not sum: a batch mixing
    both tokens and neither draws each sample as its own concept alone, or the base model, would."""
    import shutil

    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

    yy_items = tmp_path / "yy-items"
    shutil.copytree(image_items, yy_items)
    for caption in yy_items.glob("*.txt"):
        caption.write_text("a <yy> circle on the left")
    config = LearnConfig(method="lora", steps=2, batch_size=2, eval_every=1, lora_lr=0.05, lora_layers="all")
    learn_concept(image_items, tmp_path / "zz", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
    learn_concept(yy_items, tmp_path / "yy", token="<yy>", init="blue", model=str(tiny_sd_dir),
                  config=dataclasses.replace(config, seed=1))
    sampling = ImageSampling(steps=2)

    def adapter(*concepts):
        return TextToImage.from_pretrained(str(tiny_sd_dir), sampling=sampling, device="cpu",
                                           concepts=[tmp_path / c for c in concepts])

    prompts, seeds = ["a <zz> circle", "a red circle", "a <yy> circle", "a <zz> and a <yy>"], [1, 2, 3, 4]
    both = adapter("zz", "yy")
    mixed = [g.pixels for g in both.generate(prompts, seeds)]
    zz_alone, yy_alone = (adapter(c).generate([p], [s])[0].pixels for c, p, s in (("zz", prompts[0], 1),
                                                                                   ("yy", prompts[2], 3)))
    plain = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=sampling, device="cpu").generate([prompts[1]], [2])
    np.testing.assert_allclose(mixed[0], zz_alone, atol=1e-5)
    np.testing.assert_allclose(mixed[2], yy_alone, atol=1e-5)
    np.testing.assert_allclose(mixed[1], plain[0].pixels, atol=1e-5)  # no token: the LoRAs stand aside
    assert np.abs(mixed[0] - adapter().generate([prompts[0]], [1])[0].pixels).max() > 1e-4  # and do act
    from pairsynth.concepts.loading import activate_loras

    activate_loras(both.pipeline, ["zz", "yy"])  # diffusers' own rule: every loaded LoRA on every prompt
    summed = both.pipeline(prompts[0], num_inference_steps=2, output_type="np",
                           generator=torch.Generator().manual_seed(1)).images[0]
    assert np.abs(summed - mixed[0]).max() > 1e-4  # the per-token split is what made the difference
    assert both.provenance["concept_loras"] == "by-token"
    tokens_only = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=sampling, device="cpu", concepts=[ti_concept])
    assert "concept_loras" not in tokens_only.provenance  # textual inversion alone: keys as before


def test_audio_concepts_load_into_audioldm_through_the_lower_level_calls(audio_items, tiny_audioldm_mel_dir, tmp_path):
    from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio

    learn_concept(audio_items, tmp_path / "warble", token="<warble>", init="tone", model=str(tiny_audioldm_mel_dir),
                  config=LearnConfig(method="lora", steps=2, batch_size=2, eval_every=1, lora_lr=0.05, lora_layers="all"))
    sampling = AudioSampling(steps=2)
    plain = TextToAudio.from_pretrained(str(tiny_audioldm_mel_dir), sampling=sampling, device="cpu")
    adapted = TextToAudio.from_pretrained(str(tiny_audioldm_mel_dir), sampling=sampling, device="cpu",
                                          concepts=[tmp_path / "warble"])
    assert adapted.provenance["concepts"][0]["token"] == "<warble>" and "concepts" not in plain.provenance
    a, b = (g.generate(["a <warble>"], [3])[0].waveform for g in (plain, adapted))
    assert np.abs(a - b).max() > 1e-5
    adapted_layers = {n.split(".lora_")[0] for n, _ in adapted.pipeline.unet.named_parameters() if ".lora_" in n}
    assert adapted_layers == _targeted(plain.pipeline.unet, "all")


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["last-weights", "moving-average"])
def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(image_items, tiny_sd_dir, tmp_path, ema):
    from safetensors.torch import load_file

    config = LearnConfig(steps=4, batch_size=2, eval_every=2, patience=100, ema=ema)
    learn_concept(image_items, tmp_path / "whole", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)

    def die(progress):
        if progress.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn_concept(image_items, tmp_path / "killed", token="<zz>", init="red", model=str(tiny_sd_dir),
                      config=config, on_progress=die)
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    card = learn_concept(image_items, tmp_path / "killed", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
    assert card.steps_done == 4 and not (tmp_path / "killed" / "checkpoint.pt").exists()
    whole, resumed = (load_file(tmp_path / name / "learned_embeds.safetensors")["<zz>"] for name in ("whole", "killed"))
    torch.testing.assert_close(whole, resumed)


def test_ema_writes_the_moving_average_of_the_steps_not_the_last_one(image_items, tiny_sd_dir, tmp_path):
    from safetensors.torch import load_file

    def learned(name, **settings):
        config = LearnConfig(batch_size=2, patience=100, **settings)
        learn_concept(image_items, tmp_path / name, token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
        return load_file(tmp_path / name / "learned_embeds.safetensors")["<zz>"].flatten()

    first, second = learned("one", steps=1, eval_every=1), learned("two", steps=2, eval_every=2)
    averaged = learned("ema", steps=2, eval_every=2, ema=0.5)
    assert "moving average of the steps, decay 0.5" in (tmp_path / "ema" / "README.md").read_text()
    # the written vector is a blend a·step 1 + (1 - a)·step 2, strictly between the two
    direction = first - second
    a = float((averaged - second) @ direction / (direction @ direction))
    assert 0.05 < a < 0.95
    torch.testing.assert_close(averaged, a * first + (1 - a) * second, atol=1e-5, rtol=1e-4)


def test_bad_items_get_one_clear_error(tmp_path, image_items, audio_items, tiny_sd_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConceptError, match="no images .* or clips"):
        learn_concept(tmp_path / "empty", tmp_path / "out", token="<zz>", init="red", model=str(tiny_sd_dir))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes((image_items / "0.png").read_bytes())
    (mixed / "b.wav").write_bytes((audio_items / "0.wav").read_bytes())
    with pytest.raises(ConceptError, match="mixes 1 images .* with 1 clips"):
        learn_concept(mixed, tmp_path / "out", token="<zz>", init="red", model=str(tiny_sd_dir))
    with pytest.raises(ConceptError, match="'circle' is already in the tokenizer's vocabulary"):
        learn_concept(image_items, tmp_path / "out", token="circle", init="red", model=str(tiny_sd_dir), config=FAST)
    with pytest.raises(ConceptError, match="does not contain the token '<other>'"):
        learn_concept(image_items, tmp_path / "out", token="<other>", init="red", model=str(tiny_sd_dir))
    with pytest.raises(ConceptError, match="holds audio items, but .* is a text→image model"):
        learn_concept(audio_items, tmp_path / "out", token="<w>", init="red", model=str(tiny_sd_dir), config=FAST)
    with pytest.raises(ConceptError, match="lora_layers 'convs': use one of attention, all, no-attention"):
        learn_concept(image_items, tmp_path / "out", token="<zz>", init="red", model="no-such-model",
                      config=LearnConfig(method="lora", lora_layers="convs"))  # type: ignore[arg-type]


def test_few_items_or_several_class_folders_are_warned_about_once(tmp_path, image_items, tiny_sd_dir, caplog):
    from typer.testing import CliRunner

    from pairsynth.cli import app
    from pairsynth.concepts.items import read_concept_items

    dataset = tmp_path / "dataset"
    for folder, count in (("cats", 2), ("dogs", 1)):
        (dataset / folder).mkdir(parents=True)
        for i in range(count):
            (dataset / folder / f"{i}.png").write_bytes((image_items / "0.png").read_bytes())
    caveats = read_concept_items(dataset, "<zz>").caveats()
    assert caveats == [f"{dataset}: 3 items; concepts are meant to be learned from 5–50",
                       f"{dataset}: items in 2 subfolders (cats, dogs) are learned as one concept; for one class, "
                       "give its folder"]
    assert read_concept_items(image_items, "<zz>").caveats() == []
    # the CLI checks its inputs, then learns (which checks them again): each caveat reaches the user once
    result = CliRunner().invoke(app, ["learn-concept", str(dataset), "--token", "<zz>", "--init", "red", "--out",
                                      str(tmp_path / "out"), "--model", str(tiny_sd_dir), "--steps", "2"])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [said.count(caveat) for caveat in caveats] == [1, 1], said


def test_a_recipe_loads_its_concepts_and_the_manifest_records_them(ti_concept, tiny_sd_dir, tiny_clip_dir, tmp_path):
    from pairsynth.generate import generate_dataset
    from tests.helpers import tiny_recipe

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, captions=["a <zz> circle on the left", "a red square on the left"],
                         k=1, max_attempts=1, concepts=[str(ti_concept)], output={"report": False})
    generate_dataset(recipe, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert all(row["concepts"][0]["token"] == "<zz>" and len(row["concepts"][0]["sha256"]["textual_inversion"]) == 64
               for row in rows)
    with pytest.raises(RecipeError, match=r"concepts\[0\]: .* is not a concept folder"):
        tiny_recipe(tiny_sd_dir, tiny_clip_dir, concepts=[str(tmp_path)])


def test_concept_tokens_reach_the_judges_as_plain_words():
    from pairsynth.concepts.judging import concept_judges

    class Scorer:
        kind = "clip"

        def score_pairs(self, samples, captions, distractors=()):
            return [captions, list(distractors)]

    class Generator:
        concepts = [{"token": "<zz>", "words": "purple"}]

    judge = concept_judges({"image": Scorer()}, {"image": Generator()})["image"]
    assert judge.kind == "clip"
    assert judge.score_pairs([None], ["a <zz> circle"], ["a <zz> square"]) == [["a purple circle"], ["a purple square"]]


def test_auto_latents_take_the_posterior_mode_only_where_its_noise_swamps_the_items():
    from pairsynth.concepts.training import training_latents

    mean = torch.randn(10, 4, 8, 8)
    sharp, noisy = torch.full_like(mean, 0.01), torch.full_like(mean, 1.0)  # SD-like VAE; toy-shapes' (std 1.05×)
    (kept_mean, kept_std), choice = training_latents((mean, sharp), "auto")
    assert choice == "sample" and torch.equal(kept_std, sharp) and torch.equal(kept_mean, mean)
    (_, kept_std), choice = training_latents((mean, noisy), "auto")
    assert choice == "mode" and not kept_std.any()
    assert training_latents((mean, noisy), "sample")[1] == "sample"


@pytest.mark.parametrize("family", ["image", "audio"])
def test_prior_preservation_trains_on_the_base_models_own_samples_of_the_init_words(
        family, image_items, audio_items, tiny_sd_dir, tiny_audioldm_mel_dir, tmp_path, monkeypatch):
    from pairsynth.concepts.backbones import Backbone

    items, model, token, init = ((image_items, tiny_sd_dir, "<zz>", "red") if family == "image"
                                 else (audio_items, tiny_audioldm_mel_dir, "<warble>", "tone"))
    made = []
    original = Backbone.prior_latents

    def spy(self, prompts, **kwargs):
        latents = original(self, prompts, **kwargs)
        made.append((prompts, latents, self.text_encoder.get_input_embeddings().weight.shape[0]))
        return latents

    monkeypatch.setattr(Backbone, "prior_latents", spy)
    config = LearnConfig(steps=2, batch_size=2, eval_every=1, patience=100, prior_items=3)
    card = learn_concept(items, tmp_path / "c", token=token, init=init, model=str(model), config=config)
    [(prompts, latents, vocabulary)] = made
    plain = learn_concept(items, tmp_path / "plain", token=token, init=init, model=str(model),
                          config=LearnConfig(steps=2, batch_size=2, eval_every=1, patience=100))
    assert len(prompts) == 3 and all(token not in p for p in prompts)  # the init word stands in for the token
    assert latents.shape[0] == 3 and torch.isfinite(latents).all() and latents.std() > 0
    assert card.config["prior_items"] == 3 and card.loss_curve != plain.loss_curve  # the prior term is in the loss
    from pairsynth.concepts.backbones import load_backbone

    assert vocabulary == len(load_backbone(str(model)).tokenizer)  # made before the token was added


def test_empty_prompt_dropout_trains_the_unconditional_prediction_at_its_share(image_items, tiny_sd_dir, tmp_path,
                                                                             monkeypatch):
    from pairsynth.concepts.backbones import Backbone

    seen: list[str] = []
    original = Backbone.tokenize
    monkeypatch.setattr(Backbone, "tokenize", lambda self, prompts: seen.extend(prompts) or original(self, prompts))
    config = LearnConfig(steps=40, batch_size=8, eval_every=40, patience=100, empty_prompt_prob=0.25)
    learn_concept(image_items, tmp_path / "c", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
    trained = seen[:40 * 8]  # the training batches come first; the evaluation batch follows
    assert set(trained) == {"", "a <zz> circle on the left"}
    assert 0.15 < trained.count("") / len(trained) < 0.35


def test_mirror_trains_each_image_and_its_mirror_under_the_swapped_caption(image_items, tiny_sd_dir, tmp_path,
                                                                         monkeypatch):
    from pairsynth.concepts.backbones import Backbone, load_backbone
    from pairsynth.concepts.items import read_concept_items

    backbone = load_backbone(str(tiny_sd_dir))
    items = read_concept_items(image_items, "<zz>")
    mean, _ = backbone.item_latents(items)
    both, _ = backbone.item_latents(items, mirror=True)
    pixels = backbone.family.vae_input(backbone, items)
    flipped = backbone.pipeline.vae.encode(pixels.flip(-1)).latent_dist.mean
    assert torch.allclose(both[:5], mean) and torch.allclose(both[5:], flipped, atol=1e-6)
    assert not torch.allclose(both[5:], mean, atol=1e-3)

    seen: list[str] = []
    original = Backbone.tokenize
    monkeypatch.setattr(Backbone, "tokenize", lambda self, prompts: seen.extend(prompts) or original(self, prompts))
    config = LearnConfig(steps=20, batch_size=8, eval_every=20, patience=100, mirror=True)
    learn_concept(image_items, tmp_path / "c", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
    trained = seen[:20 * 8]
    assert set(trained) == {"a <zz> circle on the left", "a <zz> circle on the right"}
    assert 0.3 < trained.count("a <zz> circle on the right") / len(trained) < 0.7


def test_mirror_is_refused_for_clips_before_any_model_loads(audio_items, tmp_path):
    with pytest.raises(ConceptError, match="mirror applies to images only"):
        learn_concept(audio_items, tmp_path / "out", token="<w>", init="tone", model="/no/such/model",
                      config=LearnConfig(mirror=True))


def test_validation_scores_likeness_to_the_own_captions_items_and_which_group_is_nearest():
    """Stub judge and sampler with known embeddings: the score is exactly fidelity + following."""
    from types import SimpleNamespace

    from pairsynth.concepts.validation import SampleValidation

    left, right = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    drawn = {"a <zz> on the left": np.array([0.6, 0.8]), "a <zz> on the right": np.array([0.6, 0.8])}

    def judge_samples(prompts, seeds, *, steps, guidance):
        assert steps == 3 and guidance == 2.0 and len(seeds) == len(prompts)
        assert not parts.text_encoder.training and not parts.unet.training  # no dropout while sampling
        return [drawn[p] for p in prompts]

    parts = SimpleNamespace(text_encoder=torch.nn.Linear(1, 1).eval(), unet=torch.nn.Linear(1, 1).train())
    backbone = SimpleNamespace(**vars(parts), judge_samples=judge_samples)
    judge = SimpleNamespace(embed_samples=lambda samples: np.stack(samples))
    prompts = [["a <zz> on the left"], ["a <zz> on the left"], ["a <zz> on the right"]]
    validation = SampleValidation(backbone, judge, [left, left, right], prompts, samples=4, steps=3, guidance=2.0, seed=0)
    score = validation()
    # every sample looks like (0.6, 0.8): nearer the right-hand items, so only the "right" half follows
    assert validation.captions == ["a <zz> on the left", "a <zz> on the right"] * 2
    assert score.following == 0.5 and score.fidelity == pytest.approx((0.6 + 0.8) / 2)
    assert score.score == pytest.approx(1.2)
    assert parts.unet.training and not parts.text_encoder.training  # sampling left the training modes as they were

    one = SampleValidation(backbone, judge, [left, left], prompts[:2], samples=2, steps=3, guidance=2.0, seed=0)()
    assert one.following is None and one.score == pytest.approx(0.6)  # one caption: likeness alone


def test_samples_select_judges_each_checkpoint_and_writes_the_best(image_items, tiny_sd_dir, tiny_clip_dir, tmp_path):
    config = LearnConfig(steps=6, batch_size=2, eval_every=2, patience=100, mirror=True, select="samples",
                         validation_samples=4, judge=f"local-dir:{tiny_clip_dir}")
    card = learn_concept(image_items, tmp_path / "c", token="<zz>", init="red", model=str(tiny_sd_dir), config=config)
    steps = [step for step, _, _ in card.validation_curve]
    assert steps == [2, 4, 6]
    assert all(following in (0.0, 0.25, 0.5, 0.75, 1.0) for _, _, following in card.validation_curve)
    scores = [fidelity + following for _, fidelity, following in card.validation_curve]
    assert card.best_step == steps[int(np.argmax(scores))]
    assert "best validation score" in (tmp_path / "c" / "README.md").read_text()

    stopping = LearnConfig(steps=20, batch_size=2, eval_every=2, patience=1, min_delta=10.0, select="samples",
                           validation_samples=2, judge=f"local-dir:{tiny_clip_dir}")
    stopped = learn_concept(image_items, tmp_path / "s", token="<zz>", init="red", model=str(tiny_sd_dir),
                            config=stopping)
    assert stopped.stopped_early and stopped.steps_done == 4  # no score 10 higher: stale after the second evaluation
    assert stopped.validation_curve[0][2] is None  # the items share one caption: nothing to follow


def test_samples_select_judges_audioldm_clips_with_clap(audio_items, tiny_audioldm_mel_dir, tiny_clap_dir, tmp_path):
    config = LearnConfig(steps=2, batch_size=2, eval_every=2, patience=100, select="samples", validation_samples=2,
                         judge=f"local:{tiny_clap_dir}")
    card = learn_concept(audio_items, tmp_path / "w", token="<warble>", init="tone", model=str(tiny_audioldm_mel_dir),
                         config=config)
    [(step, fidelity, following)] = card.validation_curve
    assert step == 2 and -1.0 <= fidelity <= 1.0 and following is None  # template prompts: one group


def test_samples_select_is_checked_before_any_model_loads(image_items, tmp_path):
    with pytest.raises(ConceptError, match="judge 'toy-shapes-clip': only select samples judges"):
        learn_concept(image_items, tmp_path / "o", token="<zz>", init="red", model="/no/such/model",
                      config=LearnConfig(judge="toy-shapes-clip"))
    with pytest.raises(Exception, match="judge: unknown toy model 'toy-nope'"):
        learn_concept(image_items, tmp_path / "o", token="<zz>", init="red", model="/no/such/model",
                      config=LearnConfig(select="samples", judge="toy-nope"))


def test_the_cli_passes_ema_sample_selection_and_kept_layers_to_the_learning_run(image_items, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import pairsynth.concepts
    from pairsynth.cli import app

    seen = {}

    def fake(items, out, *, config, **kwargs):
        seen["config"] = config
        return SimpleNamespace(token="<zz>", steps_done=4, stopped_early=False, seconds=1.0)

    monkeypatch.setattr(pairsynth.concepts, "learn_concept", fake)
    result = CliRunner().invoke(app, ["learn-concept", str(image_items), "--token", "<zz>", "--init", "red",
                                      "--out", str(tmp_path / "c"), "--ema", "0.99", "--select", "samples",
                                      "--validation-samples", "8", "--judge", "toy-shapes-clip", "--method", "lora",
                                      "--lora-layers", "all", "--keep-layers", "no-attention"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.ema, config.select, config.validation_samples, config.judge) == (0.99, "samples", 8, "toy-shapes-clip")
    assert (config.lora_layers, config.keep_layers) == ("all", "no-attention")


@pytest.mark.parametrize(("settings", "message"), [
    ({"steps": 0}, "steps 0: must be above 0"),
    ({"lora_rank": 0}, "lora_rank 0: must be above 0"),
    ({"prior_items": -1}, "prior_items -1: must be 0 (off) or more"),
    ({"empty_prompt_prob": 1.0}, "empty_prompt_prob 1.0: must be in [0, 1)"),
    ({"ema": 1.5}, "ema 1.5: a decay in [0, 1) (0: off)"),
    ({"select": "samples", "validation_samples": 0}, "validation_samples 0: must be 1 or more"),
    ({"method": "lora", "keep_layers": "all"},
     "keep_layers 'all': keeps only trained layers; with lora_layers attention use one of attention"),
    ({"keep_layers": "no-attention"},
     "keep_layers 'no-attention': a LoRA setting; method textual-inversion trains no layers, so leave it out or use lora"),
])
def test_the_api_names_the_config_field_the_cli_names_the_flag(settings, message):
    from pairsynth.concepts import check_learn_config

    with pytest.raises(ConceptError) as api:
        check_learn_config(LearnConfig(**settings))
    assert str(api.value) == message
    with pytest.raises(ConceptError) as cli:
        check_learn_config(LearnConfig(**settings), name=lambda field: "--" + field.replace("_", "-"))
    assert str(cli.value).startswith("--" + message.split(" ")[0].replace("_", "-") + " ")
