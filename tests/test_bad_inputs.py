"""Bad inputs, tried as a new user would: one ``error:`` line naming the culprit, the right exit code,
never a traceback, and an ``--out`` a correct run can use afterwards.

Every case runs the real CLI in-process (typer's ``CliRunner``) and fails before any model loads, so
the whole table takes seconds; only the three correct runs at the end load the toy zoo.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import soundfile
import yaml
from typer.testing import CliRunner

from pairsynth.cli import app
from pairsynth.world.shapes import render_sample

GOOD_RECIPE = {"captions": ["a red circle on the left"], "k": 1, "max_attempts": 2,
               "generator": {"model": "toy-shapes", "steps": 2, "batch_size": 2}, "device": "cpu",
               "accept": {"retrieval": None}, "output": {"report": False}}


class Workspace:
    """A folder holding one good image dataset, and helpers that write the bad files a case needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        rows = []
        for seed in range(3):
            image, caption, _ = render_sample(seed)
            image.save(self.data / f"s{seed}.png")
            rows.append({"file_name": f"s{seed}.png", "text": caption})
        self.write("data/metadata.jsonl", "".join(json.dumps(row) + "\n" for row in rows))

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def recipe(self, name: str = "recipe.yaml", **changes) -> Path:
        data = {**GOOD_RECIPE, **changes}
        return self.write(name, yaml.safe_dump({k: v for k, v in data.items() if v is not None}))

    def folder(self, name: str, rows: list[dict], files: dict[str, bytes] | None = None) -> Path:
        for file_name, content in (files or {}).items():
            self.write(f"{name}/{file_name}", content)
        self.write(f"{name}/metadata.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        return self.root / name


@dataclass(frozen=True)
class Bad:
    """One bad input: the command line it makes (given the workspace and the --out), and what it must say."""

    name: str
    argv: Callable[[Workspace, str], list[str]]
    message: str
    exit_code: int = 2
    patch: Callable[[pytest.MonkeyPatch, Workspace], None] | None = None
    extra: list[str] = field(default_factory=list)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    render_sample(5)[0].save(buffer, format="PNG")
    return buffer.getvalue()


def no_permission(monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """The workspace folder refuses writes (as root, chmod would not: the test stands in for the kernel)."""
    import os

    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != workspace.root and access(path, mode, **kw))


def full_disk(monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    monkeypatch.setattr("pairsynth.checks.shutil.disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 4096))


def empty_hub_cache(monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """Offline, with nothing cached: what a new user without a hub sees, whatever this machine has cached."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(workspace.root / "empty-hub-cache"))


def flac_bytes() -> bytes:
    from pairsynth.world.sounds import SAMPLE_RATE, sample_scene, synthesize

    import random

    buffer = io.BytesIO()
    soundfile.write(buffer, synthesize(sample_scene(random.Random(0))), SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def internal_failure(monkeypatch: pytest.MonkeyPatch, workspace: Workspace | None = None) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("cannot reshape tensor of 0 elements")

    monkeypatch.setattr("pairsynth.generate.generate_dataset", broken)


def gen(**changes) -> Callable[[Workspace, str], list[str]]:
    return lambda w, out: ["generate", str(w.recipe(**changes)), "--out", out]


GENERATE = [
    Bad("recipe-not-text", lambda w, out: ["generate", str(w.write("r.yaml", b"\xff\xfe\x00\x01binary")), "--out", out],
        "r.yaml is not UTF-8 text"),
    Bad("recipe-missing", lambda w, out: ["generate", str(w.root / "nope.yaml"), "--out", out], "nope.yaml does not exist"),
    Bad("recipe-is-a-folder", lambda w, out: ["generate", str(w.data), "--out", out], "is a folder; give the path of a recipe"),
    Bad("recipe-bad-yaml", lambda w, out: ["generate", str(w.write("r.yaml", "captions: [a, b\nk: 2\n")), "--out", out],
        "not valid YAML"),
    Bad("recipe-a-list", lambda w, out: ["generate", str(w.write("r.yaml", "- a cat\n- a dog\n")), "--out", out],
        "a recipe is a mapping of keys"),
    Bad("template-empty-field", gen(captions=None, templates=["a {} on the left"], labels=["cat"]), "has a {} field"),
    Bad("template-positional-field", gen(captions=None, templates=["a {0}"], labels=["cat"]), "has a {0} field"),
    Bad("template-unbalanced", gen(captions=None, templates=["a {label"], labels=["cat"]), "expected '}' before end"),
    Bad("template-attribute", gen(captions=None, templates=["a {label.upper}"], labels=["cat"]), "uses {label.upper}"),
    Bad("k-true", gen(k=True), "k: expected a whole number, not true"),
    Bad("k-zero", gen(k=0), "k: Input should be greater than or equal to 1"),
    Bad("unknown-key", gen(kk=3), "kk: unknown key"),
    Bad("guidance-bool", gen(generator={"model": "toy-shapes", "guidance_scale": True}),
        "generator.guidance_scale: expected a number, not true"),
    Bad("unused-judge-unknown", gen(scorer={"clap": "toy-nope"}),
        "scorer.clap: unknown toy model 'toy-nope'; the zoo has: toy-digits, toy-shapes"),
    Bad("judge-of-the-wrong-kind", gen(scorer={"clip": "toy-sounds-clap"}),
        "scorer.clip: 'toy-sounds-clap' is a transformers ClapModel; expected an open_clip model"),
    Bad("audio-recipe-image-model", gen(modality="audio", captions=["a high beeping tone"], generator={"model": "toy-shapes"}),
        "generator.model: 'toy-shapes' is a diffusers StableDiffusionPipeline; it makes images; expected an AudioLDM"),
    Bad("image-recipe-audio-model", gen(generator={"model": "toy-sounds"}), "'toy-sounds' is a diffusers AudioLDMPipeline; it makes audio"),
    Bad("model-folder-not-a-pipeline", lambda w, out: gen(generator={"model": f"local:{w.data}"})(w, out),
        "is not a model folder; expected a text→image diffusers pipeline"),
    Bad("model-folder-missing", gen(generator={"model": "local:/nowhere/sd"}), "model folder '/nowhere/sd'"),
    Bad("model-is-a-file", lambda w, out: gen(generator={"model": str(w.data / "s0.png")})(w, out), "is a file; a model is a folder"),
    Bad("hub-id-offline", gen(generator={"model": "nobody/no-such-model"}), "hub model 'nobody/no-such-model' is not in the local cache",
        patch=empty_hub_cache),
    Bad("clip-weights-offline", gen(scorer={"clip": "ViT-B-32/laion2b_s34b_b79k"}),
        "scorer.clip: 'ViT-B-32/laion2b_s34b_b79k': its weights (laion/CLIP-ViT-B-32-laion2B-s34B-b79K) are not in the "
        "local cache", patch=empty_hub_cache),
    Bad("clip-tag-unknown", gen(scorer={"clip": "ViT-B-32/no_such_tag"}), "open_clip has no pretrained tag 'no_such_tag' for ViT-B-32"),
    Bad("audio-duration-too-short", gen(modality="audio", captions=["a high beeping tone"],
                                        generator={"model": "toy-sounds", "duration_s": 0.01}),
        "generator.duration_s: 0.01 s is shorter than this model's shortest clip"),
    Bad("model-unknown-scheme", gen(generator={"model": "s3://bucket/sd"}), "unknown scheme 's3'"),
    Bad("clip-checkpoint-missing", gen(scorer={"clip": "ViT-B-32", "pretrained": "/nowhere/clip.pt"}),
        "scorer.pretrained: checkpoint '/nowhere/clip.pt' does not exist"),
    Bad("device-unknown", gen(device="quantum"), "device: unknown device 'quantum'"),
    Bad("triplet-prompt-field", gen(modality="triplet", captions=None, generator=None, templates=["a {colour} thing"], slots={"colour": ["red"]},
                                    prompts={"image": "a {shade} thing", "audio": "{caption}"},
                                    generators={"image": {"model": "toy-shapes"}, "audio": {"model": "toy-sounds"}}),
        "prompts.image uses {shade}, but the caption slots are: caption, colour"),
    Bad("captions-file-missing", gen(captions=None, captions_file="gone.txt"), "captions file"),
    Bad("captions-file-binary", lambda w, out: (w.write("c.bin", b"\x00\xff\xfe"),
                                                gen(captions=None, captions_file="c.bin")(w, out))[1],
        "c.bin is not UTF-8 text"),
    Bad("out-is-a-file", lambda w, out: ["generate", str(w.recipe()), "--out", str(w.write("out.txt", "x"))],
        "--out", extra=["is a file; give a folder"]),
    Bad("out-under-a-file", lambda w, out: ["generate", str(w.recipe()), "--out", str(w.write("f.txt", "x") / "out")],
        "cannot be created", extra=["f.txt is a file"]),
    Bad("out-not-writable", gen(), "cannot be written: permission denied", patch=no_permission),
    Bad("out-disk-full", gen(), "is full (0.0 MiB free", patch=full_disk),
    Bad("internal-failure", gen(), "internal error, a bug in pairsynth: RuntimeError: cannot reshape tensor of 0 elements "
        "(re-run with --verbose for the traceback)", exit_code=1, patch=internal_failure),
]


def vary(*flags: str, data: Callable[[Workspace], Path] | None = None) -> Callable[[Workspace, str], list[str]]:
    return lambda w, out: ["vary", str(data(w) if data else w.data), "--out", out, "--device", "cpu", *flags]


VARY = [
    Bad("template-other-field", vary("--caption-template", "{caption}, at {time}"),
        "--caption-template '{caption}, at {time}' uses {time}, but the fields it can use are: {caption}"),
    Bad("template-no-caption", vary("--caption-template", "at night"), "must contain {caption}"),
    Bad("template-empty-field", vary("--caption-template", "{caption} {}"), "has a {} field"),
    Bad("no-denoising-step", vary("--steps", "2", "--strength", "0.3"),
        "steps 2 × strength 0.3 leaves no denoising step; use steps ≥ 4 or strength ≥ 0.5"),
    Bad("per-pair-zero", vary("--per-pair", "0"), "--per-pair: Input should be greater than or equal to 1"),
    Bad("band-reversed", vary("--band", "0.9", "0.1"), "--band LOW HIGH must be two cosines"),
    Bad("strength-above-one", vary("--strength", "1.5"), "--strength: Input should be less than or equal to 1"),
    Bad("model-audio-for-images", vary("--model", "toy-sounds"), "--model: 'toy-sounds' is a diffusers AudioLDMPipeline; it makes audio"),
    Bad("model-not-a-pipeline", vary("--model", "toy-shapes-clip"), "--model: 'toy-shapes-clip' is an open_clip model"),
    Bad("clip-unknown", vary("--clip", "toy-nope"), "--clip: unknown toy model 'toy-nope'"),
    Bad("clap-unknown-unused", vary("--clap", "toy-nope"), "--clap: unknown toy model 'toy-nope'"),
    Bad("dataset-missing", lambda w, out: ["vary", str(w.root / "gone"), "--out", out], "does not exist"),
    Bad("out-inside-dataset", lambda w, out: ["vary", str(w.data), "--out", str(w.data / "var")],
        "is inside the dataset"),
    Bad("out-is-the-dataset", lambda w, out: ["vary", str(w.data), "--out", str(w.data)], "is the dataset itself"),
    Bad("image-model-for-audio", vary("--model", "toy-shapes", data=lambda w: w.folder(
        "sounds", [{"file_name": "a.flac", "text": "a high beeping tone"}], {"a.flac": flac_bytes()})),
        "--model: 'toy-shapes' is a diffusers StableDiffusionPipeline; it makes images; expected an AudioLDMPipeline"),
    Bad("nothing-readable", vary(data=lambda w: w.folder("empty", [{"file_name": "e.png", "text": "x"}], {"e.png": b""})),
        "no readable pairs (1 unreadable; the first: empty or not an image: e.png (0 bytes))"),
    Bad("items-outside-root", vary(data=lambda w: w.folder("out1", [{"file_name": "../data/s0.png", "text": "escaped"}])),
        "the first: outside the dataset folder: ../data/s0.png"),
]


def score(*flags: str, data: Callable[[Workspace], Path] | None = None) -> Callable[[Workspace, str], list[str]]:
    return lambda w, out: ["score", str(data(w) if data else w.data), "--out", out, "--device", "cpu", *flags]


SCORE = [
    Bad("dataset-missing", lambda w, out: ["score", str(w.root / "gone"), "--out", out], "does not exist"),
    Bad("no-pairs-at-all", score(data=lambda w: w.write("notes/readme.md", "hello").parent), "no pairs found in"),
    Bad("no-caption-column", score(data=lambda w: w.folder("nocap", [{"file_name": "a.png"}], {"a.png": png_bytes()})),
        "not one readable pair (1 item, unreadable; the first: metadata.jsonl line 1 has no caption: expected a text or "
        "caption column)"),
    Bad("zero-byte-flac", score(data=lambda w: w.folder("flac", [{"file_name": "empty.flac", "text": "a tone"}],
                                                        {"empty.flac": b""})),
        "the first: empty or not an audio file: empty.flac (0 bytes)"),
    Bad("items-outside-root", score(data=lambda w: w.folder("evil", [{"file_name": "/etc/hostname.png", "text": "x"},
                                                                    {"file_name": "../data/s1.png", "text": "y"}])),
        "the first: outside the dataset folder: /etc/hostname.png"),
    Bad("empty-tar", score(data=lambda w: w.write("shards/a.tar", b"").parent),
        "the first: not a tar archive: a.tar (0 bytes)"),
    Bad("clip-wrong-kind", score("--clip", "toy-shapes"), "--clip: 'toy-shapes' is a diffusers StableDiffusionPipeline"),
    Bad("clap-unknown-unused", score("--clap", "toy-nope"), "--clap: unknown toy model 'toy-nope'"),
    Bad("clip-unknown-arch", score("--clip", "ViT-Q-99"), "'ViT-Q-99' is neither an existing folder nor a hub id"),
    Bad("threshold-out-of-range", score("--threshold", "150"), "threshold = 150.0 is invalid; expected a score in [0, 100]"),
    Bad("fail-under-a-percent", score("--fail-under", "90"), "fail_under = 90.0 is invalid; expected a share in [0, 1]"),
    Bad("layout-unknown", score("--layout", "zip"), "layout = 'zip' is invalid"),
    Bad("precision-unknown", score("--precision", "fastest"), "precision = 'fastest' is invalid; expected one of fp32, bf16, fp16, auto"),
    Bad("layout-finds-nothing", score("--layout", "webdataset"), "no items found (check --layout; auto detects it)"),
    Bad("device-cuda-without-gpu", score("--device", "cuda"), "--device: device 'cuda' asked for, but this torch build sees no CUDA"),
    Bad("out-is-a-file", lambda w, out: ["score", str(w.data), "--out", str(w.data / "s0.png")], "is a file; give a folder"),
    Bad("out-is-the-dataset", lambda w, out: ["score", str(w.data), "--out", str(w.data)], "is the dataset itself"),
]

def classes(w: Workspace) -> Path:
    """Two classes in subfolders, 3 and 2 items; one of the rare class's is no image at all."""
    files = {f"{name}/{i}.png": png_bytes() for name, count in (("a", 3), ("b", 1)) for i in range(count)}
    return w.folder("classes", [{"file_name": name, "text": "x"} for name in [*files, "b/broken.png"]],
                    {**files, "b/broken.png": b"\x89PNG\r\n\x1a\n not an image"})


def balance(*flags: str) -> Callable[[Workspace, str], list[str]]:
    return lambda w, out: ["balance", str(classes(w)), "--out", out, "--target-per-class", "3", "--device", "cpu", *flags]


BALANCE = [
    Bad("strength-zero", balance("--method", "vary", "--strength", "0"), "--strength: Input should be greater than 0"),
    Bad("no-denoising-step", balance("--method", "both", "--steps", "2", "--strength", "0.3"),
        "steps 2 × strength 0.3 leaves no denoising step; use steps ≥ 4 or strength ≥ 0.5"),
    Bad("method-unknown", balance("--method", "remix"), "--method: Input should be 'text', 'vary' or 'both'"),
    Bad("unreadable-item-to-vary", balance("--method", "vary"),
        "--method vary varies each class's own items, and ", extra=["broken.png cannot be read"]),
    Bad("class-unknown", balance("--class", "giraffe"), "--class 'giraffe': no such class in the dataset; classes: a, b"),
]

def learn(*flags: str) -> Callable[[Workspace, str], list[str]]:
    return lambda w, out: ["learn-concept", str(w.data), "--token", "<zz>", "--init", "red", "--out", out, *flags]


LEARN = [
    Bad("method-unknown", learn("--method", "dreambooth"), "--method 'dreambooth': use textual-inversion or lora"),
    Bad("prior-items-negative", learn("--prior-items", "-1"), "--prior-items -1: must be 0 (off) or more"),
    Bad("lora-rank-zero", learn("--method", "lora", "--lora-rank", "0"), "--lora-rank 0: must be above 0"),
    Bad("lora-layers-unknown", learn("--method", "lora", "--lora-layers", "convs"), "--lora-layers 'convs': use one of attention, all, no-attention"),
    Bad("keep-layers-not-trained", learn("--method", "lora", "--keep-layers", "all"),
        "--keep-layers 'all': keeps only trained layers; with --lora-layers attention use one of attention"),
    Bad("lora-settings-without-lora", learn("--lora-rank", "8", "--lora-layers", "all"),
        "--lora-rank, --lora-layers: LoRA settings; add --method lora or leave them out"),
    Bad("caption-without-token", learn("--method", "lora"), "does not contain the token '<zz>'"),
    Bad("token-lr-negative", learn("--token-lr", "-0.1"), "--token-lr -0.1: must be above 0"),
    Bad("empty-prompt-prob-one", learn("--empty-prompt-prob", "1"), "--empty-prompt-prob 1.0: must be in [0, 1)"),
    Bad("ema-one", learn("--ema", "1"), "--ema 1.0: a decay in [0, 1) (0: off)"),
    Bad("select-unknown", learn("--select", "judges"), "--select 'judges': use loss or samples"),
    Bad("judge-without-samples", learn("--judge", "toy-shapes-clip"),
        "--judge 'toy-shapes-clip': only --select samples judges validation samples; add it or leave --judge out"),
    Bad("validation-samples-zero", learn("--select", "samples", "--validation-samples", "0"),
        "--validation-samples 0: must be 1 or more"),
    Bad("token-with-a-space", learn("--token", "<my cat>"), "--token '<my cat>': a token is one word without spaces",
        patch=lambda mp, w: mp.setattr("pairsynth.concepts.training.load_backbone",  # said before any model loads
                                       lambda *a, **k: pytest.fail("a model loaded"))),
]

TABLE = ([pytest.param(bad, id=f"generate-{bad.name}") for bad in GENERATE]
         + [pytest.param(bad, id=f"learn-concept-{bad.name}") for bad in LEARN]
         + [pytest.param(bad, id=f"vary-{bad.name}") for bad in VARY]
         + [pytest.param(bad, id=f"balance-{bad.name}") for bad in BALANCE]
         + [pytest.param(bad, id=f"score-{bad.name}") for bad in SCORE])


@pytest.fixture()
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def run_cli(argv: list[str]):
    return CliRunner().invoke(app, argv, catch_exceptions=False)


def check_one_clear_line(result, bad: Bad) -> str:
    assert result.exit_code == bad.exit_code, result.output
    assert "Traceback" not in result.output and "│" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in (bad.message, *bad.extra):
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("bad", TABLE)
def test_a_bad_input_is_one_clear_line_and_leaves_no_half_written_output(bad, workspace, monkeypatch):
    if bad.patch:
        bad.patch(monkeypatch, workspace)
    out = workspace.root / "out"
    check_one_clear_line(run_cli(bad.argv(workspace, str(out))), bad)
    # checks run before any work: nothing was committed to --out (its folder is not even created)
    assert not (out / "progress.json").exists() and not (out / "manifest.jsonl").exists()


def test_learn_concept_checks_its_items_before_drawing_the_progress_bar(workspace, monkeypatch):
    """On a terminal, a bad item is the error line alone: no bar frame ("learning 0/400") before it."""
    from rich.console import Console

    terminal = io.StringIO()
    monkeypatch.setattr("pairsynth.cli.console", Console(file=terminal, force_terminal=True, width=120))
    result = run_cli(learn()(workspace, str(workspace.root / "out")))
    assert result.exit_code == 2
    assert "does not contain the token '<zz>'" in terminal.getvalue()
    assert "learning" not in terminal.getvalue(), terminal.getvalue()


def test_verbose_prints_the_traceback_of_an_internal_failure(workspace, monkeypatch):
    internal_failure(monkeypatch)
    result = run_cli(["generate", str(workspace.recipe()), "--out", str(workspace.root / "out"), "--verbose"])
    assert result.exit_code == 1 and "Traceback" in result.output and "RuntimeError" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: internal error, a bug in pairsynth")


@pytest.mark.parametrize(("command", "cases", "good"), [
    ("generate", GENERATE, lambda w, out: ["generate", str(w.recipe()), "--out", out]),
    ("vary", VARY, lambda w, out: ["vary", str(w.data), "--out", out, "--per-pair", "1", "--steps", "2",
                                   "--strength", "0.5", "--band", "-1", "1", "--device", "cpu"]),
    ("score", SCORE, lambda w, out: ["score", str(w.data), "--out", out, "--device", "cpu"]),
])
def test_after_every_bad_input_a_correct_run_on_the_same_out_succeeds(command, cases, good, workspace, monkeypatch):
    out = str(workspace.root / f"{command}-out")
    for bad in cases:
        with monkeypatch.context() as patched:
            if bad.patch:
                bad.patch(patched, workspace)
            argv = bad.argv(workspace, out)
            if "--out" in argv and argv[argv.index("--out") + 1] == out:  # the cases that name their own --out differ
                check_one_clear_line(run_cli(argv), bad)
    result = run_cli(good(workspace, out))
    assert result.exit_code == 0, result.output
    assert "error:" not in result.output


def test_score_exits_2_after_writing_the_report_when_nothing_is_readable(workspace):
    data = workspace.folder("nocap", [{"file_name": "a.png"}, {"file_name": "b.png"}], {"a.png": png_bytes(), "b.png": png_bytes()})
    result = run_cli(["score", str(data), "--out", str(workspace.root / "report"), "--device", "cpu"])
    assert result.exit_code == 2
    summary = json.loads((workspace.root / "report" / "summary.json").read_text())
    assert [row["reason"] for row in summary["unreadable"]] == [
        "metadata.jsonl line 1 has no caption: expected a text or caption column",
        "metadata.jsonl line 2 has no caption: expected a text or caption column"]


def test_a_damaged_shard_counts_its_samples_once_in_the_gate(workspace):
    import tarfile

    import webdataset as wds

    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as sink:
        for seed in range(4):
            image, caption, _ = render_sample(seed)
            encoded = io.BytesIO()
            image.save(encoded, format="PNG")
            sink.write({"__key__": f"k{seed}", "png": encoded.getvalue(), "txt": caption.encode()})
    whole = buffer.getvalue()
    third = tarfile.open(fileobj=io.BytesIO(whole)).getmembers()[4]  # k2.png
    workspace.write("shards/cut.tar", whole[:third.offset_data + 30])
    report = workspace.root / "report"
    result = run_cli(["score", str(workspace.root / "shards"), "--out", str(report), "--threshold", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "summary.json").read_text())
    assert summary["candidates"] == 3 and summary["accepted"] == 2  # k0, k1 read; k2 is one unreadable item
    assert [row["reason"] for row in summary["unreadable"]] == [
        f"damaged shard cut.tar: cut short inside k2.png (30 of {third.size} bytes)"]


def test_text_from_data_is_printed_escaped_and_never_as_markup(workspace):
    import logging

    from pairsynth.cli import _escape_control_characters

    evil = workspace.root / "evil"
    evil.mkdir()
    (evil / "ok.png").write_bytes(png_bytes())
    (evil / "ok.txt").write_text("a red circle on the left")
    result = run_cli(["score", str(evil), "--out", str(workspace.root / "[red]report"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "[red]report/index.html" in result.output.replace("\n", "")  # shown as written, not taken for a colour
    missing = run_cli(["score", str(workspace.root / "gone\x1b[2J[bold]"), "--out", str(workspace.root / "r")])
    assert "\x1b" not in missing.output and "gone\\x1b[2J[bold]' does not exist" in missing.output
    # log lines (pytest holds the root logger here, so the CLI's handler is checked on its own)
    record = logging.LogRecord("pairsynth.readers", logging.INFO, __file__, 1, "unreadable item %s: %s",
                               ("a\x1b[2Jb.png", "no caption\u202e"), None)
    assert _escape_control_characters(record) and record.getMessage() == "unreadable item a\\x1b[2Jb.png: no caption\\u202e"


def test_allow_outside_root_reads_what_the_dataset_names_outside_its_folder(workspace):
    data = workspace.folder("linked", [{"file_name": "../data/s0.png", "text": "a red circle on the left"}])
    refused = run_cli(["score", str(data), "--out", str(workspace.root / "r1"), "--device", "cpu"])
    assert refused.exit_code == 2 and "outside the dataset folder: ../data/s0.png" in refused.output
    allowed = run_cli(["score", str(data), "--out", str(workspace.root / "r2"), "--device", "cpu", "--allow-outside-root"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads((workspace.root / "r2" / "summary.json").read_text())["candidates"] == 1
