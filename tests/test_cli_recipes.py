"""The CLI's recipe tools: `init` writes starters that run, `plan` shows a run before it, `--set` overrides."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pairsynth.cli import app
from pairsynth.errors import RecipeError
from pairsynth.overrides import apply_overrides
from pairsynth.recipe import load_recipe

runner = CliRunner()


def test_top_level_help_describes_images_audio_triplets_and_both_judges():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("image–caption", "audio–caption", "triplets", "CLIP", "CLAP", "Parquet", "init", "plan"):
        assert word in text, word
    assert "kept only when CLIP agrees." not in text  # the old, image-only summary


@pytest.mark.parametrize("kind", ["image", "audio", "triplet"])
def test_init_writes_a_commented_recipe_that_loads(kind, tmp_path):
    path = tmp_path / f"{kind}.yaml"
    result = runner.invoke(app, ["init", kind, "--out", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.count("#") >= 8  # commented, not a bare dump
    recipe = load_recipe(path)
    assert recipe.modality == kind and len(recipe.caption_list) >= 8
    again = runner.invoke(app, ["init", kind, "--out", str(path)])
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert runner.invoke(app, ["init", kind, "--out", str(path), "--force"]).exit_code == 0


def test_init_names_the_kinds_it_knows(tmp_path):
    result = runner.invoke(app, ["init", "video", "--out", str(tmp_path / "r.yaml")])
    assert result.exit_code == 2
    assert "'video'" in result.output and "image, audio, triplet" in result.output


def test_plan_prints_captions_candidates_models_formats_and_an_estimate(tmp_path):
    path = tmp_path / "recipe.yaml"
    runner.invoke(app, ["init", "image", "--out", str(path)])
    result = runner.invoke(app, ["plan", str(path), "--set", "generator.batch_size=4", "--set", "k=3"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "12 captions × k=3 → 36 pairs wanted" in text
    assert "a red circle on the left" in text and "… and 7 more" in text
    assert "candidates: 36 in the first round, at most 96" in text  # 12 captions × max_attempts 8
    assert "generator (image): toy-shapes" in text and "judge (image): toy-shapes-clip" in text
    assert "formats: webdataset, imagefolder" in text
    assert "calibration: 4 candidates in" in text and "estimate: about" in text
    assert not (tmp_path / "out").exists()  # a plan writes nothing


def test_plan_without_calibration_loads_no_model(tmp_path):
    path = tmp_path / "recipe.yaml"
    runner.invoke(app, ["init", "triplet", "--out", str(path)])
    result = runner.invoke(app, ["plan", str(path), "--no-calibrate", "--set", "generators.audio.model=toy-nothing"])
    assert result.exit_code == 0, result.output  # the model reference is only read, never loaded
    text = " ".join(result.output.split())
    assert "generator (audio): toy-nothing" in text and "judge (audio): toy-sounds-clap" in text
    assert "calibration" not in text


def generate_init_recipe(tmp_path, *overrides: str):
    """``pairsynth init image``'s recipe, generated into ``tmp_path/out`` with ``--set`` each override."""
    path, out = tmp_path / "recipe.yaml", tmp_path / "out"
    runner.invoke(app, ["init", "image", "--out", str(path)])
    result = runner.invoke(app, ["generate", str(path), "--out", str(out),
                                 *(flag for override in overrides for flag in ("--set", override))])
    assert result.exit_code == 0, result.output
    return result, out


def test_generate_runs_an_init_recipe_with_overrides(tmp_path):
    _, out = generate_init_recipe(tmp_path, "k=1", "max_attempts=2", "output.formats=[parquet]", "output.report=false")
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    per_caption = {}
    for row in rows:
        per_caption.setdefault(row["caption"], []).append(row)
    assert len(per_caption) == 12 and all(len(group) <= 2 for group in per_caption.values())
    assert all(sum(r["accepted"] for r in group) <= 1 for group in per_caption.values())
    assert list((out / "parquet").glob("*.parquet")) and not (out / "shards").exists()


def test_a_run_short_everywhere_names_ten_units_and_why_they_were_rejected(tmp_path):
    result, _ = generate_init_recipe(tmp_path, "k=1", "max_attempts=1", "accept.min_clip_score=100", "output.report=false")
    lines = result.output.splitlines()
    assert sum(line.startswith("short: 'a ") for line in lines) == 10  # of 12 captions, each named in quotes
    assert "short: … and 2 more units" in lines
    rejected = [line for line in lines if line.startswith("rejected:")]
    assert len(rejected) == 1 and rejected[0].startswith("rejected: 12 × below_threshold, e.g. CLIPScore "), rejected


@pytest.mark.parametrize("override, message", [
    ("generator.stepz=4", "generator.stepz: unknown key"),
    ("generator.steps=0", "generator.steps: Input should be greater than or equal to 1 (got 0)"),
    ("generator.steps=four", "generator.steps: Input should be a valid integer"),
    ("output.formats=[tarball]", "output.formats[0]: Input should be"),
    ("k.max=2", "--set 'k.max=2': k is 2, not a mapping of keys"),
    ("steps", "--set 'steps': write KEY=VALUE"),
    ("generator.steps=[1", "--set 'generator.steps=[1': the value is not valid YAML"),
])
def test_a_bad_override_fails_in_one_line_naming_it(override, message, tmp_path):
    path = tmp_path / "recipe.yaml"
    runner.invoke(app, ["init", "image", "--out", str(path)])
    result = runner.invoke(app, ["plan", str(path), "--no-calibrate", "--set", override])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text, text
    assert "Traceback" not in result.output


def test_overrides_read_yaml_scalars_and_create_missing_mappings():
    data = {"captions": ["a cat"], "generator": {"steps": 20}}
    result = apply_overrides(data, ["generator.steps=4", "generator.negative_prompt=blurry, dark",
                                    "accept.retrieval.max_rank=2", "accept.min_clip_score=21.5",
                                    "generator.height=null", "seed=0x10"])
    assert result["generator"] == {"steps": 4, "negative_prompt": "blurry, dark", "height": None}
    assert result["accept"] == {"retrieval": {"max_rank": 2}, "min_clip_score": 21.5}
    assert result["seed"] == 16  # YAML 1.1 hex, as the file would read it
    assert data == {"captions": ["a cat"], "generator": {"steps": 20}}  # the input is not changed
    with pytest.raises(RecipeError, match="not a mapping"):
        apply_overrides(data, ["captions.first=x"])
