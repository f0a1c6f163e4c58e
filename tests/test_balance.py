"""pairsynth balance on tiny random models: only the rare classes are filled, the output is laid out like
the source, a stopped run resumes without losing or duplicating items, and bad input gets one clear error."""

from __future__ import annotations

import json

import pytest

from pydantic import ValidationError

from pairsynth.balance import BalanceConfig, BalanceError, balance_dataset, read_census
from pairsynth.world.shapes import ShapeScene, render

CLASSES = {"red circle": 4, "blue square": 4, "green triangle": 1}


def _write_dataset(root, layout, classes=CLASSES):
    root.mkdir()
    rows = []
    for name, count in classes.items():
        colour, shape = name.split()
        for i in range(count):
            file_name = f"{name.replace(' ', '_')}/{i}.png" if layout == "folder" else f"{name.replace(' ', '_')}_{i}.png"
            (root / file_name).parent.mkdir(exist_ok=True)
            render(ShapeScene(shape=shape, colour=colour, position="left", cx=0.2 + 0.01 * i)).save(root / file_name)
            rows.append({"file_name": file_name, "text": f"a {name} on the left",
                         **({"label": name} if layout == "label" else {})})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _config(tiny_sd_dir, tiny_clip_dir, **values):
    return BalanceConfig(generator={"model": f"local:{tiny_sd_dir}", "steps": 2, "guidance_scale": 3.0, "batch_size": 8},
                         judges={"clip": f"local-dir:{tiny_clip_dir}"}, max_attempts=2, device="cpu",
                         report=False, commit_every=2, **values)


def test_class_subfolders_without_captions_or_metadata_are_counted_by_folder(tmp_path):
    # the layout torchvision's ImageFolder and datasets' imagefolder read: data/<class>/<item>.png
    source = _write_dataset(tmp_path / "data", "folder")
    (source / "metadata.jsonl").unlink()
    census = read_census(source, "auto")
    assert census.source == "folder" and census.counts == {"red_circle": 4, "blue_square": 4, "green_triangle": 1}
    assert not census.unreadable


def test_only_the_rare_class_is_filled_laid_out_in_its_subfolder(tmp_path):
    # the toy zoo, not random models: a random judge may never rank the rare class first, and this
    # test needs new items to look at
    source = _write_dataset(tmp_path / "data", "folder")
    config = BalanceConfig(generator={"model": "toy-shapes", "steps": 8, "guidance_scale": 4.0, "batch_size": 8},
                           judges={"clip": "toy-shapes-clip"}, max_attempts=2, device="cpu", report=True,
                           commit_every=2, target_per_class=4, templates=["a photo of a {label} on the left"])
    summary = balance_dataset(source, tmp_path / "out", config)
    assert summary.before == {"red_circle": 4, "blue_square": 4, "green_triangle": 1}
    assert [row[:2] for row in summary.table()] == [("red_circle", 4), ("blue_square", 4), ("green_triangle", 1)]
    rows = [json.loads(line) for line in (tmp_path / "out" / "imagefolder" / "metadata.jsonl").read_text().splitlines()]
    assert rows and all(row["file_name"].startswith("green_triangle/") and row["synthetic"] for row in rows)
    assert all((tmp_path / "out" / "imagefolder" / row["file_name"]).is_file() for row in rows)
    assert all(row["source"]["class"] == "green_triangle" and row["text"] == "a photo of a green triangle on the left"
               for row in rows)
    assert summary.after["green_triangle"] == 1 + len(rows) <= 4
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) <= 3 * 2 and {row["source"]["class"] for row in manifest} == {"green_triangle"}
    report = json.loads((tmp_path / "out" / "balance.json").read_text())
    assert report["classes"][2] == {"class": "green_triangle", "before": 1, "added": len(rows), "after": 1 + len(rows)}
    # the QA report shows the same class counts, before and after
    assert json.loads((tmp_path / "out" / "report" / "summary.json").read_text())["run"]["classes"] == report["classes"]
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "<h2>Per class</h2>" in page  # its pass rates grouped by class, not by prompt
    assert "candidates accepted, k = 1 per missing item." in page
    table = page.split('<table id="classes">', 1)[1].split("</table>", 1)[0]
    assert (f'<td>green_triangle</td><td class="num">1</td><td class="num">{len(rows)}</td>'
            f'<td class="num">{1 + len(rows)}</td>') in table and table.count("<tr>") == 4


def test_a_stopped_run_resumes_without_losing_or_duplicating_items(tiny_sd_dir, tiny_clip_dir, tmp_path):
    source = _write_dataset(tmp_path / "data", "label")
    config = _config(tiny_sd_dir, tiny_clip_dir, target_ratio=1.0, templates=["a {label} on the left"])

    def stop(update):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        balance_dataset(source, tmp_path / "out", config, on_progress=stop)
    balance_dataset(source, tmp_path / "out", config)
    fresh = balance_dataset(source, tmp_path / "fresh", config)
    rows = [json.loads(line) for line in (tmp_path / "out" / "imagefolder" / "metadata.jsonl").read_text().splitlines()]
    fresh_rows = [json.loads(line) for line in (tmp_path / "fresh" / "imagefolder" / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(r["key"] for r in fresh_rows)  # none lost, none duplicated
    assert all(row["label"] == "green triangle" and "/" not in row["file_name"] for row in rows)
    assert fresh.after["green triangle"] == 1 + len(fresh_rows)


def test_bad_input_gets_one_clear_error(tiny_sd_dir, tiny_clip_dir, tmp_path):
    source = _write_dataset(tmp_path / "data", "label")
    with pytest.raises(BalanceError, match="'purple circle': no such class in the dataset; classes: red circle"):
        balance_dataset(source, tmp_path / "out", _config(tiny_sd_dir, tiny_clip_dir, target_per_class=4,
                                                          classes=["purple circle"]))
    with pytest.raises(BalanceError, match="give one of --target-per-class N or --target-ratio R"):
        balance_dataset(source, tmp_path / "out", _config(tiny_sd_dir, tiny_clip_dir))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _unit_index(row):
    return int(row["source"]["unit"].rsplit("\x1f", 1)[1])


def test_vary_makes_each_missing_item_a_variation_of_the_class_own_items_round_robin(tiny_sd_dir, tiny_clip_dir,
                                                                                      tmp_path):
    source = _write_dataset(tmp_path / "data", "folder", {"red circle": 5, "green triangle": 2})
    config = _config(tiny_sd_dir, tiny_clip_dir, target_ratio=1.0, method="vary", strength=0.5,
                     templates=["a {label} on the left"])
    summary = balance_dataset(source, tmp_path / "out", config)
    manifest = _rows(tmp_path / "out" / "manifest.jsonl")
    assert {_unit_index(row) for row in manifest} == {0, 1, 2}  # the 3 missing items, accepted or not
    for row in manifest:  # unit n varies item n mod 2, prompted with the class's prompt
        assert row["source"]["method"] == "vary" and row["source"]["strength"] == 0.5 and row["strength"] == 0.5
        assert row["source"]["item"] == {"key": f"green_triangle/{_unit_index(row) % 2}",
                                         "file": f"green_triangle/{_unit_index(row) % 2}.png"}
        assert row["caption"] == "a green triangle on the left"
    rows = _rows(tmp_path / "out" / "imagefolder" / "metadata.jsonl")
    assert all(row["synthetic"] and row["source"]["method"] == "vary" and row["source"]["item"]["key"]
               and row["file_name"].startswith("green_triangle/") for row in rows)
    assert summary.after["green_triangle"] == 2 + len(rows)


def test_both_alternates_text_and_variations_and_resumes_without_losing_or_duplicating(tiny_sd_dir, tiny_clip_dir,
                                                                                        tmp_path):
    source = _write_dataset(tmp_path / "data", "label", {"red circle": 5, "green triangle": 1})
    config = _config(tiny_sd_dir, tiny_clip_dir, target_ratio=1.0, method="both", strength=0.5,
                     templates=["a {label} on the left"])

    def stop(update):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        balance_dataset(source, tmp_path / "out", config, on_progress=stop)
    balance_dataset(source, tmp_path / "out", config)
    balance_dataset(source, tmp_path / "fresh", config)
    manifest, fresh = _rows(tmp_path / "out" / "manifest.jsonl"), _rows(tmp_path / "fresh" / "manifest.jsonl")
    assert sorted(r["key"] for r in manifest) == sorted(r["key"] for r in fresh)  # none lost, none duplicated
    assert {_unit_index(row) for row in manifest} == {0, 1, 2, 3}
    for row in manifest:  # even units text→X, odd ones variations of the class's only item
        if _unit_index(row) % 2:
            assert row["source"]["method"] == "vary" and row["strength"] == 0.5
            assert row["source"]["item"] == {"key": "green_triangle_0", "file": "green_triangle_0.png"}
        else:
            assert row["source"]["method"] == "text" and "item" not in row["source"] and "strength" not in row
    # the method and strength are part of the run: another one does not resume this output
    with pytest.raises(Exception, match="different"):
        balance_dataset(source, tmp_path / "out", config.model_copy(update={"strength": 0.6}))


def test_bad_variation_settings_and_an_unreadable_item_to_vary_get_one_clear_error(tiny_sd_dir, tiny_clip_dir,
                                                                                    tmp_path):
    with pytest.raises(ValidationError, match="greater than 0"):
        _config(tiny_sd_dir, tiny_clip_dir, target_per_class=4, method="vary", strength=0.0)
    with pytest.raises(ValidationError, match="steps 2 × strength 0.3 leaves no denoising step"):
        _config(tiny_sd_dir, tiny_clip_dir, target_per_class=4, method="both", strength=0.3)
    _config(tiny_sd_dir, tiny_clip_dir, target_per_class=4, strength=0.3)  # text→X only: the strength is unused
    source = _write_dataset(tmp_path / "data", "folder")
    (source / "green_triangle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    rows = (source / "metadata.jsonl").read_text()
    (source / "metadata.jsonl").write_text(rows + json.dumps({"file_name": "green_triangle/broken.png", "text": "x"}) + "\n")
    with pytest.raises(BalanceError, match=r"--method vary varies each class's own items, and \S+broken.png cannot be read"):
        balance_dataset(source, tmp_path / "out", _config(tiny_sd_dir, tiny_clip_dir, target_per_class=4,
                                                          method="vary", strength=0.5))
    assert not (tmp_path / "out").exists()


def test_vary_fills_an_audio_class_with_variations_of_its_own_clips(tiny_audioldm_mel_dir, tiny_clap_dir, tmp_path):
    import numpy as np
    import soundfile as sf

    source = tmp_path / "sounds"
    source.mkdir()
    for name, hz in (("low_0", 300), ("low_1", 320), ("high_0", 900)):
        sf.write(source / f"{name}.flac", np.sin(2 * np.pi * hz * np.arange(16000) / 16000) * 0.3, 16000)
        (source / f"{name}.txt").write_text("a low steady tone" if name.startswith("low") else "a high steady tone")
    config = BalanceConfig(generator={"model": f"local:{tiny_audioldm_mel_dir}", "steps": 2, "batch_size": 4},
                           judges={"clap": str(tiny_clap_dir)}, max_attempts=1, device="cpu", report=False,
                           target_per_class=2, method="vary", strength=0.5)
    balance_dataset(source, tmp_path / "out", config)
    [row] = _rows(tmp_path / "out" / "manifest.jsonl")
    assert row["modality"] == "audio" and row["caption"] == "a high steady tone" and row["strength"] == 0.5
    assert row["source"]["item"] == {"key": "high_0", "file": "high_0.flac"} and row["source"]["method"] == "vary"
