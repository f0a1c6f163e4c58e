"""Recipes: every mistake gets one clear line naming the field (and the line of a captions file)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pairsynth.errors import RecipeError
from pairsynth.recipe import load_recipe, recipe_from_dict


def error_of(data, **kwargs) -> str:
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data, source="r.yaml", **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"captions": ["a cat"], "kk": 3}, "r.yaml: kk: unknown key"),
        ({"captions": ["a cat"], "generator": {"stepz": 3}}, "r.yaml: generator.stepz: unknown key"),
        ({"captions": ["a cat"], "k": "many"}, "r.yaml: k: Input should be a valid integer"),
        ({"captions": ["a cat"], "k": 0}, "r.yaml: k: Input should be greater than or equal to 1"),
        ({"captions": ["a cat"], "k": True}, "r.yaml: k: expected a whole number, not true"),
        ({"captions": ["a cat"], "generator": {"guidance_scale": False}}, "generator.guidance_scale: expected a number, not false"),
        ({"templates": ["a {} thing"], "labels": ["cat"]}, "templates[0] 'a {} thing' has a {} field"),
        ({"templates": ["a {label"], "labels": ["cat"]}, "templates[0] 'a {label': expected '}' before end of string"),
        ({"captions": []}, "r.yaml: captions: the list is empty"),
        ({"captions": ["a cat", "   "]}, "r.yaml: captions[1]: empty caption"),
        ({"captions": ["x" * 2001]}, "captions[0]: caption is 2001 characters long; the limit is 2000"),
        ({}, "give exactly one caption source"),
        ({"captions": ["a"], "templates": ["b"]}, "(got captions, templates)"),
        ({"templates": ["a photo of a {label}"]}, "uses {label} but the slots defined are: none"),
        ({"templates": ["a {x}"], "slots": {"x": []}}, "slots.x: the list of values is empty"),
        ({"captions": ["a"], "generator": {"scheduler": "warp"}}, "generator.scheduler: Input should be"),
        ({"captions": ["a"], "output": {"formats": ["zip"]}}, "output.formats[0]: Input should be"),
    ],
)
def test_bad_recipe_gets_one_line_naming_the_field(data, expected):
    message = error_of(data)
    assert expected in message
    assert "\n" not in message


def test_captions_file_errors_name_the_line(tmp_path):
    (tmp_path / "captions.txt").write_text("a red circle\n# a comment\n\na blue square\n")
    message = error_of({"captions_file": "captions.txt"}, base_dir=tmp_path)
    assert message == f"r.yaml: {tmp_path / 'captions.txt'}:3: empty caption"


def test_captions_file_is_read_relative_to_the_recipe(tmp_path):
    (tmp_path / "captions.txt").write_text("a red circle\n# comment\na blue square\na red circle\n")
    (tmp_path / "r.yaml").write_text("captions_file: captions.txt\nk: 2\n")
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.caption_list == ["a red circle", "a blue square"]  # repeats dropped


def test_labels_times_templates_and_slots_expand():
    recipe = recipe_from_dict({"labels": ["cat", "dog"], "templates": ["a photo of a {label}", "a {label}"]})
    assert recipe.caption_list == ["a photo of a cat", "a photo of a dog", "a cat", "a dog"]
    recipe = recipe_from_dict({"templates": ["a {c} {s}"], "slots": {"c": ["red", "blue"], "s": ["circle"]}})
    assert recipe.caption_list == ["a red circle", "a blue circle"]


def test_fingerprint_ignores_speed_settings_only():
    base = {"captions": ["a cat"], "generator": {"batch_size": 2}}
    same = {"captions": ["a cat"], "generator": {"batch_size": 16}, "device": "cpu"}
    other = {"captions": ["a cat"], "generator": {"steps": 3}}
    assert recipe_from_dict(base).fingerprint() == recipe_from_dict(same).fingerprint()
    assert recipe_from_dict(base).fingerprint() != recipe_from_dict(other).fingerprint()


def test_cli_prints_the_error_without_a_traceback(tmp_path):
    (tmp_path / "r.yaml").write_text("captions: [a cat]\nk: lots\n")
    result = subprocess.run([sys.executable, "-m", "pairsynth", "generate", str(tmp_path / "r.yaml"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "k: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


TRIPLET = {
    "modality": "triplet",
    "templates": ["a {colour} {shape} with a {pitch} tone"],
    "slots": {"colour": ["red", "blue"], "shape": ["circle"], "pitch": ["low", "high"]},
    "prompts": {"image": "a {colour} {shape}", "audio": "a {pitch} tone"},
    "generators": {"image": {"model": "toy-shapes"}, "audio": {"model": "toy-sounds", "duration_s": 1.0}},
}


def test_triplet_prompts_are_filled_from_the_captions_slots():
    recipe = recipe_from_dict(TRIPLET)
    assert recipe.media == ["image", "audio"]
    assert recipe.prompts_for("a blue circle with a high tone") == {"image": "a blue circle", "audio": "a high tone"}
    assert recipe.output_formats == ["webdataset", "tripletfolder"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"generators": {"image": {}}}, "a triplet recipe needs generators: {image: {...}, audio: {...}}"),
        ({"prompts": {"image": "a {size} shape"}}, "prompts.image uses {size}, but the caption slots are: caption, colour"),
        ({"generators": {"image": {"duration_s": 2.0}, "audio": {}}}, "generators.image.duration_s does not apply to image"),
        ({"modality": "image", "generator": {}}, "generators and prompts are for triplet recipes"),
        ({"output": {"formats": ["imagefolder"]}}, "output.formats: imagefolder holds images, but the modality is 'triplet'"),
    ],
)
def test_triplet_recipe_mistakes(change, expected):
    assert expected in error_of({**TRIPLET, **change})


def test_audio_recipes_reject_image_settings():
    assert "generator.height does not apply to audio" in error_of(
        {"modality": "audio", "captions": ["a high beeping tone"], "generator": {"height": 64}})


def test_generator_dtype_is_checked_hashed_only_when_set_and_reaches_the_pipeline(tiny_sd_dir, tiny_clip_dir, tmp_path):
    import json as _json

    from pairsynth.generate import generate_dataset
    from tests.helpers import tiny_recipe, tiny_recipe_dict

    plain = tiny_recipe(tiny_sd_dir, tiny_clip_dir)
    assert plain.fingerprint() == tiny_recipe(tiny_sd_dir, tiny_clip_dir, generator={"dtype": None}).fingerprint()
    bf16 = tiny_recipe(tiny_sd_dir, tiny_clip_dir, captions=["a red circle"], k=1, max_attempts=1,
                       generator={"dtype": "bf16"}, device="cpu", output={"report": False})
    assert bf16.fingerprint() != plain.fingerprint()
    generate_dataset(bf16, tmp_path / "out")
    row = _json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0])
    assert row["dtype"] == "bfloat16"
    with pytest.raises(RecipeError, match="fp16 has no fast CPU kernels"):
        recipe_from_dict(tiny_recipe_dict(tiny_sd_dir, tiny_clip_dir, generator={"dtype": "fp16"}, device="cpu"))
