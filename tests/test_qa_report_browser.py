"""The QA report on real files nobody here wrote, opened in headless Chromium as a user would open it.

Photos: scikit-image's bundled pictures with captions written here (one re-encoded copy and one photo
that ships twice under two names, as near-duplicates; a blank image; a truncated file). Speech:
words spoken by espeak-ng (plus a silent and a clipped clip). Judges: the tiny random CLIP and CLAP of
``tests/dummy_components`` (nothing downloads), so the numbers are checked against the scorers, not
against what a trained judge would say.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from PIL import Image

from pairsynth.alignment import qa
from pairsynth.run import RunSummary
from pairsynth.run_report import write_run_report
from pairsynth.stages import CaptionState
from pairsynth.score import ScoreSettings, score_dataset
from tests.headless_chromium import HeadlessChromium, find_chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PHOTOS = {  # skimage.data name → caption
    "astronaut": "an astronaut in a white suit in front of an American flag",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a ginger tabby cat looking to the side",
    "cat": "a close-up of a cat's face",  # skimage ships the same photo as chelsea() and cat()
    "rocket": "a rocket on the launch pad at dusk",
    "camera": "a man with a camera on a tripod, black and white",
    "horse": ("the black silhouette of a horse standing on a plain white ground, drawn with clean sharp edges, its head "
              "held high, ears forward, tail hanging down and all four legs clearly visible"),  # too long for some judges
    "hubble_deep_field": "galaxies scattered across deep space",
}
WORDS = {"one": "a voice saying one", "seven": "a voice saying seven", "hello": "someone saying hello",
         "yes": "someone saying yes", "banana": "a voice saying banana"}
PAGE_STATE = """(async () => {
  await loadLazyImages();
  const audios = [...document.querySelectorAll('audio')];
  const deadline = Date.now() + 10000;  // metadata loads asynchronously
  while (audios.some(a => a.readyState < 1 && !a.error) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  return {
    images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, complete: i.complete})),
    audios: audios.map(a => ({src: a.getAttribute('src'), ready: a.readyState, error: a.error && a.error.code, duration: a.duration})),
    histograms: [...document.querySelectorAll('svg[id^="histogram-"]')].map(i => i.id),
    charts: [...document.querySelectorAll('svg.chart')].map(s => ({id: s.id, width: s.getBoundingClientRect().width,
      bars: [...s.querySelectorAll('rect.histogram-bar')].map(b => b.getBBox().height),
      lines: s.querySelectorAll('polyline.sweep-line').length, thresholds: s.querySelectorAll('line.threshold').length})),
    cards: document.querySelectorAll('figure.card').length,
    galleryAudios: document.querySelectorAll('#worst audio, #best audio').length,
  };
})()"""
LOAD_LAZY_IMAGES = """async function loadLazyImages() {
  // Gallery images are loading="lazy": scroll each into view (as a reader would) and wait for it.
  for (const image of document.images) {
    image.scrollIntoView();
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  }
  const deadline = Date.now() + 10000;
  while ([...document.images].some(i => !i.complete) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  window.scrollTo(0, 0);
}
"""
PAGE_STATE = LOAD_LAZY_IMAGES + PAGE_STATE


def apt_install(package: str) -> bool:
    """Install a Debian package when running as root with apt (as CI does); False when that is impossible."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        if subprocess.run(command, env=env, capture_output=True, timeout=900).returncode != 0:
            return False
    return True


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    binary = find_chromium() or (apt_install("chromium") and find_chromium())
    if not binary:
        pytest.skip("no Chromium, and `apt-get install -y chromium` failed (needs root and a package mirror); "
                    "scripts/setup.sh installs it")
    return binary


@pytest.fixture(scope="module")
def browser(chromium_binary, tmp_path_factory):
    with HeadlessChromium(chromium_binary, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    from pairsynth.alignment.clip_scorer import ClipScorer

    return ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}", device="cpu")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    rows = []
    for name, caption in PHOTOS.items():
        pixels = getattr(data, name)()
        pixels = (pixels * 255).astype(np.uint8) if pixels.dtype == bool else pixels
        Image.fromarray(pixels).convert("RGB").save(root / f"{name}.jpg", quality=90)
        rows.append({"file_name": f"{name}.jpg", "text": caption})
    Image.open(root / "astronaut.jpg").resize((400, 400)).save(root / "astronaut-small.jpg", quality=60)
    rows.append({"file_name": "astronaut-small.jpg", "text": "a smiling astronaut"})
    Image.new("RGB", (64, 64), (128, 128, 128)).save(root / "blank.png")
    rows.append({"file_name": "blank.png", "text": "a grey square"})
    (root / "truncated.jpg").write_bytes((root / "coffee.jpg").read_bytes()[:2000])
    rows.append({"file_name": "truncated.jpg", "text": "a photo cut off in transfer"})
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module")
def image_report(photo_folder, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("image-report")
    settings = ScoreSettings(threshold=5.0, duplicate_cosine=0.999, batch_size=4)
    return out, score_dataset(photo_folder, out, settings, scorers={"image": clip})


def open_report(browser, path: Path, screenshot: str) -> dict:
    session = browser.open_page(path.resolve().as_uri())
    state = browser.evaluate(session, PAGE_STATE)
    state["console_errors"] = browser.console_errors(session)
    browser.screenshot(session, ARTIFACTS / screenshot)
    return state


def assert_page_works(state: dict, report_dir: Path) -> None:
    assert state["images"] or state["audios"], "the page shows no media at all"
    assert state["charts"], "the page draws no chart"
    for image in state["images"]:
        assert image["complete"] and image["width"] > 0, f"image {image['src']} did not load"
        assert not Path(image["src"]).is_absolute() and (report_dir / image["src"]).is_file()
    for audio in state["audios"]:
        assert audio["src"] and (report_dir / audio["src"]).is_file(), f"audio source {audio['src']} missing"
        assert audio["error"] is None and audio["ready"] >= 1 and audio["duration"] > 0, f"audio {audio} does not play"
    assert state["console_errors"] == []
    for chart in state["charts"]:  # drawn, with bars or a line of visible size
        assert chart["width"] >= 300 and (chart["lines"] or (chart["bars"] and min(chart["bars"]) > 0)), chart
    assert [c["id"] for c in state["charts"]][-1] == "sweep-chart"


def test_the_image_report_renders_completely_in_chromium(browser, image_report):
    out, outcome = image_report
    state = open_report(browser, out / "index.html", "qa_report_images.png")
    assert_page_works(state, out)
    assert state["histograms"] == ["histogram-clip"]
    assert state["cards"] >= 9  # 9 scored pairs in the worst/best gallery, plus the duplicate groups
    html = (out / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing is fetched


def test_the_image_scores_equal_the_clip_scorer_called_directly(image_report, photo_folder, clip):
    out, _ = image_report
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    scored = [row for row in rows if row["scores"]]
    assert len(rows) == 11 and len(scored) == 10
    pool = qa.distractor_pool([row["caption"] for row in scored], qa.DEFAULT_DISTRACTORS, seed=0)
    for row in scored:
        pixels = np.asarray(Image.open(photo_folder / f"{row['key']}.{'png' if row['key'] == 'blank' else 'jpg'}").convert("RGB"))
        [direct] = clip.score_pairs([pixels], [row["caption"]], qa.distractors_for(row["caption"], pool, qa.DEFAULT_DISTRACTORS))
        reported = row["scores"]["clip"]
        assert reported["cosine"] == pytest.approx(direct.cosine, abs=1e-5)
        assert reported["score"] == pytest.approx(direct.score, abs=1e-3)
        assert (reported["rank"], reported["distractors"], reported["best_distractor"]) == \
            (direct.rank, direct.distractors, direct.best_distractor)
        assert row["passed"] == (reported["score"] >= 5.0 and row["key"] != "blank")


def outcome_rows(outcome) -> list[SimpleNamespace]:
    lines = (outcome.report_dir / "scores.jsonl").read_text().splitlines()
    return [SimpleNamespace(**json.loads(line)) for line in lines]


def test_the_image_summary_flags_duplicates_blank_and_unreadable_items(image_report, clip):
    _, outcome = image_report
    summary = outcome.summary
    assert summary["schema_version"] == 1 and summary["candidates"] == 11
    judge = summary["judges"]["clip"]
    assert judge["model"] == clip.model_id and judge["score_unit"].startswith("CLIPScore") and judge["threshold"] == 5.0
    groups = sorted(sorted(group["keys"]) for group in summary["duplicates"]["groups"])
    assert groups == [["astronaut", "astronaut-small"], ["cat", "chelsea"]]
    assert summary["flags"]["blank_image"] == 1 and summary["reasons"]["blank_image"] == 1
    flagged = {row.key for row in outcome_rows(outcome) if "caption_truncated" in row.flags}
    assert flagged == {"horse"} == {key for key, caption in PHOTOS.items() if clip.is_truncated(caption)}
    [unreadable] = summary["unreadable"]
    assert unreadable["source"].endswith("truncated.jpg")
    assert unreadable["reason"].startswith("damaged or truncated image: truncated.jpg (2000 bytes): image file is truncated")
    assert summary["gate"] == {"fail_under": None, "pass_rate": summary["pass_rate"], "passed": None}


def test_the_same_pairs_as_webdataset_shards_score_the_same(image_report, photo_folder, clip, tmp_path):
    import webdataset as wds

    _, from_folder = image_report
    with wds.TarWriter(str(tmp_path / "shard-00000.tar")) as sink:
        for row in (json.loads(line) for line in (photo_folder / "metadata.jsonl").read_text().splitlines()):
            name = Path(row["file_name"])
            sink.write({"__key__": name.stem, name.suffix[1:]: (photo_folder / name).read_bytes(),
                        "txt": row["text"].encode()})
    outcome = score_dataset(tmp_path / "shard-00000.tar", tmp_path / "report",
                            ScoreSettings(threshold=5.0, duplicate_cosine=0.999), scorers={"image": clip})
    assert outcome.summary["source"]["layout"] == "webdataset"
    ours = {row.key: row for row in outcome_rows(outcome)}
    for row in outcome_rows(from_folder):
        assert ours[row.key].reason == row.reason
        if row.scores:
            assert ours[row.key].scores["clip"]["cosine"] == pytest.approx(row.scores["clip"]["cosine"], abs=1e-5)
            assert ours[row.key].scores["clip"]["rank"] == row.scores["clip"]["rank"]


def test_the_gate_exits_non_zero_when_too_few_pairs_reach_the_threshold(photo_folder, tiny_clip_dir, tmp_path):
    from typer.testing import CliRunner

    from pairsynth.cli import app

    common = ["score", str(photo_folder), "--out", str(tmp_path / "report"), "--clip", f"local-dir:{tiny_clip_dir}",
              "--device", "cpu"]
    # threshold 0: every usable pair passes; 9 of 11 (blank and truncated fail) ≥ 80 %
    passing = CliRunner().invoke(app, [*common, "--threshold", "0", "--fail-under", "0.8"])
    assert passing.exit_code == 0, passing.output
    failing = CliRunner().invoke(app, [*common, "--threshold", "0", "--fail-under", "0.9"])
    assert failing.exit_code == 1 and "gate failed" in failing.output
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["gate"] == {"fail_under": 0.9, "pass_rate": round(9 / 11, 6), "passed": False}
    missing = CliRunner().invoke(app, ["score", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_dataset_with_nothing_readable_is_an_error_after_its_report_is_written(tmp_path):
    from pairsynth.errors import DatasetError

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.png").write_bytes(b"not a png")
    (tmp_path / "data" / "a.txt").write_text("a caption")
    with pytest.raises(DatasetError, match="not one readable pair .1 item, unreadable; the first: not an image file"):
        score_dataset(tmp_path / "data", tmp_path / "report", ScoreSettings(fail_under=0.5))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["gate"]["passed"] is False and summary["judges"] == {}
    assert summary["unreadable"][0]["source"].endswith("a.png")
    assert "Unreadable items" in (tmp_path / "report" / "index.html").read_text()


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng") or (apt_install("espeak-ng") and shutil.which("espeak-ng")) or None


@pytest.fixture(scope="module")
def spoken_words(tmp_path_factory) -> Path:
    binary = espeak_binary()
    if binary is None:
        pytest.skip("no espeak-ng, and `apt-get install -y espeak-ng` failed; scripts/setup.sh installs it")
    root = tmp_path_factory.mktemp("words")
    rows = []
    for word, caption in WORDS.items():
        subprocess.run([binary, "-w", str(root / f"{word}.wav"), word], check=True, capture_output=True)
        rows.append({"file_name": f"{word}.wav", "text": caption})
    rate = 16000
    soundfile.write(root / "silence.wav", np.zeros(rate // 2, np.float32), rate)
    rows.append({"file_name": "silence.wav", "text": "nothing at all"})
    square = np.sign(np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate)).astype(np.float32)
    soundfile.write(root / "square.flac", square, rate)  # full scale throughout: clipped
    rows.append({"file_name": "square.flac", "text": "a harsh buzz"})
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module")
def clap(tiny_clap_dir):
    from pairsynth.alignment.clap_scorer import ClapScorer

    return ClapScorer.from_pretrained(str(tiny_clap_dir), device="cpu")


def test_the_audio_report_plays_every_clip_and_its_scores_equal_the_clap_scorer(browser, spoken_words, clap, tmp_path):
    outcome = score_dataset(spoken_words, tmp_path / "report", ScoreSettings(threshold=1.0, gallery_size=4),
                            scorers={"audio": clap})
    state = open_report(browser, tmp_path / "report" / "index.html", "qa_report_audio.png")
    assert_page_works(state, tmp_path / "report")
    assert state["galleryAudios"] == 7 and state["histograms"] == ["histogram-clap"]  # 4 worst + the 3 others

    summary = outcome.summary
    assert summary["judges"]["clap"]["model"] == clap.model_id and summary["judges"]["clap"]["score_unit"].startswith("CLAPScore")
    assert summary["reasons"]["silent_audio"] == 1 and summary["reasons"]["clipped_audio"] == 1
    rows = outcome_rows(outcome)
    pool = qa.distractor_pool([row.caption for row in rows], qa.DEFAULT_DISTRACTORS, seed=0)
    for row in rows:
        waveform, rate = soundfile.read(spoken_words / Path(row.source).name, dtype="float32")
        [direct] = clap.score_pairs([(waveform, rate)], [row.caption], qa.distractors_for(row.caption, pool, qa.DEFAULT_DISTRACTORS))
        assert row.scores["clap"]["cosine"] == pytest.approx(direct.cosine, abs=1e-5)
        assert row.scores["clap"]["rank"] == direct.rank


def test_the_report_at_the_end_of_a_run_shows_its_accepted_pairs(browser, tmp_path):
    """What ``pairsynth generate`` writes, from a hand-made output folder (no model runs)."""
    folder = tmp_path / "imagefolder"
    folder.mkdir()
    manifest, metadata = [], []
    for index in range(6):
        key, caption = f"{index:04x}beef", ["a red circle on the left", "a blue square on the right"][index % 2]
        accepted = index < 4
        scores = {"clip": {"model": "toy-shapes-clip", "cosine": 0.2 + index / 10, "score": 20.0 + 10 * index,
                           "score_unit": "CLIPScore", "rank": 1, "distractors": 1, "caption_truncated": False}}
        manifest.append({"key": key, "caption": caption, "seed": index, "modality": "image", "model": "toy-shapes",
                         "steps": 20, "scores": scores if index != 5 else {}, "accepted": accepted,
                         "reason": "accepted" if accepted else ("below_threshold" if index == 4 else "blank_image")})
        if accepted:
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), (40 * index, 90, 200)).save(buffer, format="PNG")
            (folder / f"{key}.png").write_bytes(buffer.getvalue())
            metadata.append({"file_name": f"{key}.png", "text": caption, "key": key})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metadata))
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in manifest))
    states = [CaptionState(caption=c, index=i, attempts=3, accepted=2)
              for i, c in enumerate(("a red circle on the left", "a blue square on the right"))]
    run = RunSummary(out_dir=tmp_path, k=2, captions=states, elapsed_s=1.0)

    page = write_run_report(tmp_path, manifest, run, {"clip": 25.0})
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert (summary["accepted"], summary["candidates"]) == (4, 6)
    assert summary["reasons"] == {"accepted": 4, "below_threshold": 1, "blank_image": 1}
    assert summary["generation"] == {"model": ["toy-shapes"], "steps": [20]} and summary["mode"] == "run"
    state = open_report(browser, page, "qa_report_run.png")
    assert_page_works(state, tmp_path / "report")
    assert sum(image["src"].endswith(".png") and "plot" not in image["src"] for image in state["images"]) == 4


# --- Long captions and large datasets: the page stays short and quick -------------------------------

LONG_CAPTION = " ".join(f"word{index % 97}" for index in range(400))[:2000]  # 2,000 characters
PAGE_GEOMETRY = LOAD_LAZY_IMAGES + """(async () => {
  await loadLazyImages();
  const cards = [...document.querySelectorAll('figure.card')];
  const tallest = Math.max(...cards.map(c => c.getBoundingClientRect().height));
  const height = document.documentElement.scrollHeight;
  const details = document.querySelector('details.full-caption');
  const before = details ? details.getBoundingClientRect().height : 0;
  if (details) details.open = true;
  const opened = details ? details.querySelector('div') : null;
  const result = {height, cards: cards.length, tallest, loaded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
                  titles: [...document.querySelectorAll('q.clamp')].map(q => q.title.length),
                  details: document.querySelectorAll('details.full-caption').length,
                  openedText: opened ? opened.textContent.length : 0, openedScrolls: opened ? opened.scrollHeight > opened.clientHeight : false,
                  closedHeight: before,
                  lazy: [...document.images].filter(i => i.loading === 'lazy').length, images: document.images.length};
  if (details) details.open = false;
  return result;
})()"""


def synthetic_report(count: int, captions: dict[int, str] | None = None):
    """A QaReport of ``count`` image pairs with made-up scores, and a loader that draws the few it shows."""
    from pairsynth.alignment.qa_report import JudgeSetup, QaReport, QaRow

    rows = []
    for index in range(count):
        caption = (captions or {}).get(index, f"a shape number {index % 500} on the {'left' if index % 2 else 'right'}")
        score = 10.0 + (index * 37 % 1000) / 40
        scores = {"clip": {"model": "toy", "cosine": score / 100, "score": score, "score_unit": "CLIPScore",
                           "rank": 1 + index % 3, "distractors": 7, "best_distractor": "a shape on the left",
                           "best_distractor_cosine": 0.3, "caption_truncated": False}}
        rows.append(QaRow(key=f"{index:08x}", caption=caption, source=f"img/{index}.png", modality="image",
                          group=caption, scores=scores, passed=score >= 25,
                          reason="accepted" if score >= 25 else "below_threshold"))
    report = QaReport(title="synthetic", source={"path": "synthetic", "layout": "imagefolder"}, rows=rows,
                      judges={"clip": JudgeSetup(kind="clip", model="toy", threshold=25.0, distractors=7)})
    by_key = {row.key: row for row in rows}

    def load_media(keys):
        for key in sorted(keys):
            pixels = np.full((32, 32, 3), 60 + int(key, 16) * 7 % 190, np.uint8)
            yield SimpleNamespace(key=key, caption=by_key[key].caption, image=pixels, audio=None, sample_rate=None)

    return report, load_media


def test_a_2000_character_caption_does_not_make_the_page_tall(browser, tmp_path):
    from pairsynth.alignment.qa_report import write_qa_report

    heights = {}
    for name, captions in (("short", None), ("long", {0: LONG_CAPTION})):  # pair 0 scores lowest: the gallery shows it
        report, load_media = synthetic_report(22, captions)
        write_qa_report(tmp_path / name, report, load_media)
        session = browser.open_page((tmp_path / name / "index.html").resolve().as_uri())
        heights[name] = browser.evaluate(session, PAGE_GEOMETRY)
        assert browser.console_errors(session) == []
        if name == "long":
            browser.screenshot(session, ARTIFACTS / "qa_report_long_caption.png")
    short, long = heights["short"], heights["long"]
    print(f"page height: short captions {short['height']} px, one 2,000-character caption {long['height']} px; "
          f"tallest card {short['tallest']:.0f} vs {long['tallest']:.0f} px")
    assert long["height"] - short["height"] < 120, heights  # was ~10,000 px taller before clamping
    assert long["tallest"] < 420
    assert max(long["titles"]) == len(LONG_CAPTION)  # the whole caption on hover
    assert long["details"] == 1 and short["details"] == 0
    assert long["openedText"] == len(LONG_CAPTION) and long["openedScrolls"]  # and in a scroll box when opened
    assert long["images"] == long["lazy"] == long["loaded"] > 0  # lazy, and each loads once scrolled to


def test_a_10000_pair_report_stays_small_and_opens(browser, tmp_path):
    import time

    from pairsynth.alignment.qa_report import write_qa_report

    report, load_media = synthetic_report(10_000)
    started = time.perf_counter()
    write_qa_report(tmp_path, report, load_media)
    written = time.perf_counter() - started
    page = tmp_path / "index.html"
    started = time.perf_counter()
    session = browser.open_page(page.resolve().as_uri())
    geometry = browser.evaluate(session, PAGE_GEOMETRY)
    opened = time.perf_counter() - started
    browser.screenshot(session, ARTIFACTS / "qa_report_10000.png")
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    print(f"10,000 pairs: report written in {written:.2f} s; index.html {page.stat().st_size / 1024:.0f} KiB, "
          f"{len(list((tmp_path / 'media').iterdir()))} media files; opened and laid out in {opened:.2f} s; "
          f"page {geometry['height']} px tall (load: {os.getloadavg()[0]:.1f})")
    assert len(lines) == 10_000 and json.loads(lines[-1])["key"] == f"{9999:08x}"
    assert geometry["cards"] == 24 and geometry["images"] == geometry["lazy"] == geometry["loaded"] == 24
    assert page.stat().st_size < 400_000  # bounded by the shown pairs and tables, not by the dataset
    assert browser.console_errors(session) == []
