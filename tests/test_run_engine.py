"""The shape of the package: one run engine, media as a registry, one import root, a lazy public API."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import pairsynth
from pairsynth.errors import PairsynthError
from pairsynth.generate import generate_dataset
from pairsynth.media import MEDIA, medium
from pairsynth.recipe import recipe_from_dict

REPO = Path(__file__).resolve().parents[1]

# Keys are hashes of caption, provenance and seed. These are the first candidates of the recipe below,
# as the code before the run-engine redesign wrote them: the redesign must not change a key.
PINNED_RECIPE = {"captions": ["a red circle on the left", "a blue square on the right"], "k": 2, "seed": 7,
                 "generator": {"model": "toy-shapes", "steps": 4, "batch_size": 4}, "output": {"report": False}}
PINNED_KEYS = ["2602cad5d7e2252dc55f", "6bf98e66037aafe02a1f", "c19e5965dec9c1960e6e", "7eda7995ad87eb944c0f"]


def test_import_pairsynth_loads_no_torch():
    code = "import sys, pairsynth; print(json.dumps(['torch' in sys.modules, pairsynth.__version__]))"
    result = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    torch_loaded, version = json.loads(result.stdout)
    assert not torch_loaded and version == pairsynth.__version__


def test_every_public_name_resolves():
    for name in pairsynth.__all__:
        assert getattr(pairsynth, name) is not None, name
    assert set(pairsynth.__all__) <= set(dir(pairsynth))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pairsynth.nope  # noqa: B018


def test_an_unknown_medium_names_the_known_ones():
    with pytest.raises(PairsynthError, match="unknown medium 'video'; known media: image, audio"):
        medium("video")
    assert {spec.judge for spec in MEDIA.values()} == {"clip", "clap"}


def test_keys_are_those_the_code_wrote_before_the_redesign(tmp_path):
    generate_dataset(recipe_from_dict(PINNED_RECIPE), tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [row["key"] for row in rows[: len(PINNED_KEYS)]] == PINNED_KEYS


def test_a_triplet_run_resumes_after_every_batch_size_changed(tmp_path):
    """The fingerprint leaves out batch sizes, per-medium ones included: speed, not outputs."""
    data = {"modality": "triplet", "templates": ["a {colour} circle on the left, with a {pitch} beeping tone"],
            "slots": {"colour": ["red", "blue"], "pitch": ["low", "high"]},
            "prompts": {"image": "a {colour} circle on the left", "audio": "a {pitch} beeping tone"},
            "k": 1, "max_attempts": 2, "accept": {"retrieval": None},
            "generators": {"image": {"model": "toy-shapes", "steps": 3, "batch_size": 2},
                           "audio": {"model": "toy-sounds", "steps": 3, "duration_s": 0.5, "batch_size": 2}},
            "scorer": {"batch_size": 8}, "output": {"commit_every": 2, "report": False}}
    reference = generate_dataset(recipe_from_dict(data), tmp_path / "reference")

    class Killed(Exception):
        pass

    def kill(update):
        raise Killed

    with pytest.raises(Killed):
        generate_dataset(recipe_from_dict(data), tmp_path / "out", on_progress=kill)
    changed = {**data, "generators": {"image": {**data["generators"]["image"], "batch_size": 3},
                                      "audio": {**data["generators"]["audio"], "batch_size": 1}},
               "scorer": {"batch_size": 3}, "output": {"commit_every": 3, "report": False}}
    resumed = generate_dataset(recipe_from_dict(changed), tmp_path / "out")
    assert resumed.resumed_parts == 1
    keys = lambda out: sorted(json.loads(line)["key"] for line in (out / "manifest.jsonl").read_text().splitlines()
                              if json.loads(line)["accepted"])
    assert keys(tmp_path / "out") == keys(tmp_path / "reference") and reference.accepted == resumed.accepted


def test_installs_beside_packages_that_own_top_level_alignment_and_modalities(tmp_path):
    """``alignment`` and ``modalities`` are other projects' names on PyPI: installing pairsynth must not
    overwrite them, and both must stay importable beside ``pairsynth.alignment``."""
    other = tmp_path / "other"
    for name in ("alignment", "modalities"):
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"OWNER = 'someone else: {name}'\n")
    (other / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "someone-elses-modules"
        version = "1.0"
        [tool.setuptools]
        packages = ["alignment", "modalities"]
    """))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The new venv borrows this one's dependencies (numpy …) through a path entry placed after its own.
    Path(site, "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for package in (other, REPO):
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--disable-pip-version-check", "--target", site, str(package)],
                       check=True, capture_output=True)
    check = ("import alignment, modalities, pairsynth.alignment.qa, pairsynth.modalities.schedulers as s;"
             "print(alignment.OWNER, modalities.OWNER, pairsynth.alignment.qa.__file__, s.__file__, sep='|')")
    owners = subprocess.run([python, "-c", check], capture_output=True, text=True, check=True, cwd=tmp_path)
    first, second, qa_file, schedulers_file = owners.stdout.strip().split("|")
    assert first == "someone else: alignment" and second == "someone else: modalities"
    assert qa_file.startswith(site) and schedulers_file.startswith(site)
