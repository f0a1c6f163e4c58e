"""``pairsynth score DATASET --reference REAL``: the fidelity/diversity section, end to end and in Chromium.

Real data: crops of scikit-image's photos, one class per photo. The "generated" set takes other crops
of two photos and, for the third, one crop repeated with a little noise (a collapsed class). The judge
is the tiny random CLIP of ``tests/dummy_components``, so the numbers are checked against
:mod:`pairsynth.alignment.fidelity` on the same embeddings, not against what a trained judge says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pairsynth.alignment import fidelity
from pairsynth.score import ScoreSettings, score_dataset
from tests.test_qa_report_browser import ARTIFACTS, browser, chromium_binary, clip  # noqa: F401  (fixtures)

PHOTOS = {"astronaut": "an astronaut", "coffee": "a cup of coffee", "rocket": "a rocket on the launch pad"}
CROPS = 12


def _crops(name: str, offset: int, count: int) -> list[np.ndarray]:
    from skimage import data

    pixels = getattr(data, name)()
    rng = np.random.default_rng(offset)
    size = 64
    return [pixels[y:y + size, x:x + size] for y, x in zip(rng.integers(0, pixels.shape[0] - size, count),
                                                            rng.integers(0, pixels.shape[1] - size, count))]


def _folder(root: Path, images: dict[str, list[np.ndarray]]) -> Path:
    root.mkdir(parents=True)
    rows = []
    for label, crops in images.items():
        for i, crop in enumerate(crops):
            name = f"{label}-{i:02d}.png"
            Image.fromarray(crop).convert("RGB").save(root / name)
            rows.append({"file_name": name, "text": PHOTOS[label], "label": label})
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fidelity")
    real = _folder(root / "real", {name: _crops(name, 0, CROPS) for name in PHOTOS})
    one = _crops("rocket", 2, 1)[0].astype(np.int16)
    noise = np.random.default_rng(3)
    collapsed = [np.clip(one + noise.integers(-2, 3, one.shape), 0, 255).astype(np.uint8) for _ in range(CROPS)]
    generated = _folder(root / "generated", {"astronaut": _crops("astronaut", 1, CROPS), "coffee": _crops("coffee", 1, CROPS),
                                             "rocket": collapsed})
    return real, generated


@pytest.fixture(scope="module")
def report(folders, clip, tmp_path_factory):  # noqa: F811
    real, generated = folders
    out = tmp_path_factory.mktemp("fidelity-report")
    settings = ScoreSettings(threshold=5.0, batch_size=16, reference=str(real))
    return out, score_dataset(generated, out, settings, scorers={"image": clip})


def test_the_summary_holds_fidelity_and_flags_the_collapsed_class(report, folders, clip):  # noqa: F811
    out, outcome = report
    [section] = outcome.summary["fidelity"]
    assert section["medium"] == "image" and section["judge"] == clip.model_id
    assert sorted(section["per_group"]) == sorted(PHOTOS)
    assert section["mode_collapse"] == ["rocket"]
    vendi = {d["group"]: d["vendi"] for d in section["diversity"]}
    assert vendi["rocket"] < 1.01 < vendi["astronaut"]
    # the same numbers as the module gives on the judge's own embeddings of both folders
    real, generated = folders
    embed = {}
    for name, folder in (("real", real), ("generated", generated)):
        files = sorted(folder.glob("*.png"))
        embed[name] = (clip.embed_samples([np.asarray(Image.open(f).convert("RGB")) for f in files]),
                       [f.name.split("-")[0] for f in files])
    direct = fidelity.compare_with_reference(*embed["generated"], *embed["real"])
    assert section["overall"]["coverage"] == pytest.approx(direct.overall.coverage, abs=1e-4)
    assert section["per_group"]["rocket"]["recall"] == pytest.approx(direct.per_group["rocket"].recall, abs=1e-4)
    assert section["per_group"]["rocket"]["recall"] < section["per_group"]["coffee"]["recall"]
    assert json.loads((out / "summary.json").read_text())["fidelity"] == outcome.summary["fidelity"]


def test_a_missing_reference_fails_before_scoring(folders, tmp_path):
    from pairsynth.errors import PairsynthError

    with pytest.raises(PairsynthError, match="reference"):
        score_dataset(folders[1], tmp_path, ScoreSettings(reference=str(tmp_path / "nowhere")))


def test_the_fidelity_section_renders_in_chromium(report, browser):  # noqa: F811
    out, _ = report
    session = browser.open_page((out / "index.html").resolve().as_uri())
    state = browser.evaluate(session, """(() => {
      const section = document.getElementById('fidelity');
      return {present: !!section, height: section ? section.getBoundingClientRect().height : 0,
              rows: section ? section.querySelectorAll('table.fidelity-groups tr').length : 0,
              collapsed: [...document.querySelectorAll('#fidelity tr.short td:first-child')].map(td => td.textContent),
              tiles: section ? section.querySelectorAll('.tile').length : 0,
              link: !!document.querySelector('nav a[href="#fidelity"]')};
    })()""")
    assert browser.console_errors(session) == []
    browser.evaluate(session, "document.getElementById('fidelity').scrollIntoView()")
    browser.screenshot(session, ARTIFACTS / "qa_report_fidelity.png")
    assert state["present"] and state["height"] > 200 and state["link"]
    assert state["rows"] == 1 + len(PHOTOS) and state["tiles"] == 6
    assert state["collapsed"] == ["rocket"]
