"""Every layout reads to the same records; bad items come back as errors naming the file, never a crash."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
import soundfile
import webdataset as wds
from PIL import Image

from pairsynth.readers import DatasetError, PairRecord, ReadError, detect_layout, read_pairs, warn_unreadable

RATE = 8000


def png(colour, size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[..., :] = colour
    pixels[0, 0] = 255 - np.asarray(colour)  # not constant
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def flac(frequency, channels=1) -> bytes:
    t = np.arange(RATE // 4) / RATE
    tone = 0.3 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([tone] * channels, axis=1), RATE, format="FLAC")
    return buffer.getvalue()


def split(items):
    return ([i for i in items if isinstance(i, PairRecord)], [i for i in items if isinstance(i, ReadError)])


def test_an_imagefolder_with_bad_rows_yields_the_good_pairs_and_names_each_bad_one(tmp_path):
    (tmp_path / "red.png").write_bytes(png((200, 0, 0)))
    (tmp_path / "blue.png").write_bytes(png((0, 0, 200), size=(7, 9)))
    (tmp_path / "broken.png").write_bytes(png((0, 200, 0))[:40])  # truncated
    (tmp_path / "nocaption.png").write_bytes(png((9, 9, 9)))
    lines = [
        {"file_name": "red.png", "text": "a red square", "label": "red"},
        {"file_name": "blue.png", "caption": "a blue square", "seed": 3},
        {"file_name": "broken.png", "text": "a broken file"},
        {"file_name": "missing.png", "text": "a file that is not there"},
        {"file_name": "nocaption.png"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n{not json\n"
    (tmp_path / "metadata.jsonl").write_text(text)

    assert detect_layout(tmp_path) == "folder"
    records, errors = split(list(read_pairs(tmp_path)))
    assert [(r.key, r.caption, r.label) for r in records] == [("red", "a red square", "red"), ("blue", "a blue square", None)]
    assert records[0].image.shape == (10, 12, 3) and records[0].image.dtype == np.uint8
    assert records[1].image.shape == (9, 7, 3) and records[1].meta == {"seed": 3} and records[1].modality == "image"
    reasons = {error.source.split("/")[-1]: error.reason for error in errors}
    assert set(reasons) == {"broken.png", "missing.png", "nocaption.png", "metadata.jsonl:6"}
    assert reasons["missing.png"] == "file not found: missing.png"
    assert reasons["nocaption.png"] == "metadata.jsonl line 5 has no caption: expected a text or caption column"
    assert reasons["broken.png"].startswith("damaged or truncated image: broken.png (40 bytes)")
    assert reasons["metadata.jsonl:6"].startswith("invalid JSON on metadata.jsonl line 6")
    classes = {error.source.split("/")[-1]: error.error for error in errors}
    assert classes["missing.png"] == "FileNotFoundError" and classes["metadata.jsonl:6"] == "JSONDecodeError"
    assert classes["nocaption.png"] is None  # not an exception: nothing to name


def test_hugging_face_reads_the_folder_as_we_do(tmp_path):
    from datasets import load_dataset

    for name, colour in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        (tmp_path / f"{name}.png").write_bytes(png(colour))
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "red"}\n{"file_name": "b.png", "text": "green"}\n')
    ours = {r.caption: r.image for r in read_pairs(tmp_path)}
    theirs = load_dataset("imagefolder", data_dir=str(tmp_path), split="train", cache_dir=str(tmp_path / ".hf"))
    for row in theirs:
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), ours[row["text"]])


def test_an_audiofolder_reads_mono_and_channel_first_stereo(tmp_path):
    (tmp_path / "low.flac").write_bytes(flac(220))
    (tmp_path / "high.flac").write_bytes(flac(880, channels=2))
    (tmp_path / "noise.flac").write_bytes(b"not audio at all")
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"file_name": "low.flac", "text": "a low tone"}, {"file_name": "high.flac", "text": "a high tone"},
        {"file_name": "noise.flac", "text": "junk"}]))
    records, errors = split(list(read_pairs(tmp_path)))
    low, high = records
    assert low.modality == "audio" and low.sample_rate == RATE and low.audio.shape == (RATE // 4,)
    assert high.audio.shape == (2, RATE // 4) and low.audio.dtype == np.float32
    assert len(errors) == 1 and errors[0].source.endswith("noise.flac") and errors[0].key == "noise"
    assert errors[0].reason.startswith("not a readable audio file: noise.flac (16 bytes)")
    assert errors[0].error == "LibsndfileError"


def test_an_empty_file_is_described_for_a_person(tmp_path):
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "empty.flac", "text": "a"}\n{"file_name": "empty.png", "text": "b"}\n')
    reasons = [error.reason for error in read_pairs(tmp_path)]
    assert reasons == ["empty or not an audio file: empty.flac (0 bytes)", "empty or not an image: empty.png (0 bytes)"]


def write_shard(path, samples):
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


def test_webdataset_shards_read_through_webdataset_and_a_corrupt_shard_only_loses_itself(tmp_path):
    write_shard(tmp_path / "shard-00000.tar", [
        {"__key__": "k0", "png": png((200, 0, 0)), "txt": b"a red square"},
        {"__key__": "k1", "flac": flac(440), "json": json.dumps({"caption": "a tone", "class": "tone"}).encode()},
        {"__key__": "k2", "png": b"\x89PNG broken", "txt": b"broken"},
        {"__key__": "k3", "png": png((0, 0, 200))},
    ])
    write_shard(tmp_path / "shard-00001.tar", [{"__key__": f"c{i}", "png": png((i, i, 90)), "txt": b"x"} for i in range(20)])
    whole = (tmp_path / "shard-00001.tar").read_bytes()
    (tmp_path / "shard-00001.tar").write_bytes(whole[: len(whole) // 2])  # cut mid-archive
    write_shard(tmp_path / "shard-00002.tar", [{"__key__": "z", "png": png((1, 2, 3)), "txt": b"after the bad shard"}])

    assert detect_layout(tmp_path) == "webdataset"
    records, errors = split(list(read_pairs(tmp_path)))
    by_key = {r.key: r for r in records}
    assert by_key["k0"].caption == "a red square" and by_key["k0"].source.endswith("shard-00000.tar#k0.png")
    assert by_key["k1"].caption == "a tone" and by_key["k1"].label == "tone" and by_key["k1"].sample_rate == RATE
    assert by_key["z"].caption == "after the bad shard"
    assert 0 < sum(key.startswith("c") for key in by_key) < 20  # the readable part of the cut shard
    failed = {e.key: e for e in errors}
    assert "k2" in failed and failed["k2"].source.endswith("#k2.png")
    assert "no caption" in failed["k3"].reason
    damaged = [e for e in errors if "shard-00001.tar" in e.source]
    # each sample once: the readable ones as pairs, the damage as one unreadable item (the cut falls
    # in c11's headers, so c0…c10 read and c11 on are lost)
    assert len(damaged) == 1 and damaged[0].reason.startswith("damaged shard shard-00001.tar: cut short after c10.txt")
    assert sorted(key for key in by_key if key.startswith("c")) == sorted(f"c{i}" for i in range(11))
    assert [r.key for r in read_pairs(tmp_path / "shard-00000.tar")] == ["k0", "k1", "k2", "k3"]


def test_class_subfolders_without_captions_are_read_with_folder_captions(tmp_path):
    for name in ("cats/tom", "cats/kit", "sea_lions/sam", "rex"):
        (tmp_path / f"{name}.png").parent.mkdir(exist_ok=True)
        (tmp_path / f"{name}.png").write_bytes(png((90, 90, 90)))
    (tmp_path / "cats" / "kit.txt").write_text("a small cat\n")
    records, errors = split(list(read_pairs(tmp_path, folder_captions=True)))
    assert [(r.key, r.caption, r.meta) for r in records] == [
        ("cats/kit", "a small cat", {"folder": "cats"}), ("cats/tom", "cats", {"folder": "cats"}),
        ("sea_lions/sam", "sea lions", {"folder": "sea_lions"})]
    assert [e.key for e in errors] == ["rex"] and "no caption file rex.txt" in errors[0].reason  # no folder: no class
    assert len(split(list(read_pairs(tmp_path)))[1]) == 3  # off by default: a pair needs its caption


def test_unreadable_items_are_one_warning_with_the_first_three(tmp_path, caplog):
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(png((90, 90, 90)))
    with caplog.at_level(logging.DEBUG, logger="pairsynth"):
        errors = split(list(read_pairs(tmp_path)))[1]
        caplog.clear()
        warn_unreadable(tmp_path, errors)
    assert len(caplog.records) == 1 and caplog.records[0].levelname == "WARNING"
    message = caplog.records[0].getMessage()
    assert message.startswith(f"{tmp_path}: 5 unreadable items skipped: {tmp_path / '0.png'}: no caption file 0.txt")
    assert message.count("no caption file") == 3 and message.endswith("; and 2 more (--verbose lists each)")


def test_a_plain_folder_with_sidecar_captions(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "tom.png").write_bytes(png((90, 90, 90)))
    (tmp_path / "cats" / "tom.txt").write_text("a grey cat\n")
    (tmp_path / "rex.png").write_bytes(png((90, 60, 30)))
    assert detect_layout(tmp_path) == "sidecar"
    records, errors = split(list(read_pairs(tmp_path)))
    assert [(r.key, r.caption, r.meta) for r in records] == [("cats/tom", "a grey cat", {"folder": "cats"})]
    assert errors[0].source.endswith("rex.png") and "no caption file rex.txt" in errors[0].reason


def test_a_pairsynth_output_reads_its_folder_dataset_and_only_the_keys_asked_for(tmp_path):
    folder = tmp_path / "imagefolder"
    folder.mkdir()
    rows = []
    for index, key in enumerate(["aa11", "bb22", "cc33"]):
        (folder / f"{key}.png").write_bytes(png((index * 80, 0, 0)))
        rows.append({"file_name": f"{key}.png", "text": f"caption {index}", "key": key, "seed": index})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "manifest.jsonl").write_text("")
    assert detect_layout(tmp_path) == "pairsynth"
    assert [r.key for r in read_pairs(tmp_path)] == ["aa11", "bb22", "cc33"]
    assert [r.key for r in read_pairs(tmp_path, keys={"cc33"})] == ["cc33"]


def test_a_path_with_no_dataset_fails_with_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list(read_pairs(tmp_path / "nowhere"))
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DatasetError, match="no pairs found in .*metadata.jsonl"):
        list(read_pairs(tmp_path))
    with pytest.raises(DatasetError, match="unknown dataset layout 'zip'"):
        list(read_pairs(tmp_path, layout="zip"))


def shard_bytes(count: int) -> bytes:
    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as sink:
        for i in range(count):
            sink.write({"__key__": f"k{i}", "png": png((i * 40, 9, 9)) + bytes(2000), "txt": f"caption {i}".encode()})
    return buffer.getvalue()


@pytest.mark.parametrize("cut", ["inside_data", "inside_header", "between_members_of_a_sample", "between_samples"])
def test_a_cut_shard_counts_each_sample_once(tmp_path, cut):
    import tarfile

    whole = shard_bytes(4)
    members = tarfile.open(fileobj=io.BytesIO(whole)).getmembers()  # k0.png k0.txt k1.png k1.txt …
    png2, txt2 = members[4], members[5]
    at = {"inside_data": png2.offset_data + 100, "inside_header": png2.offset + 200,
          "between_members_of_a_sample": txt2.offset, "between_samples": members[6].offset}[cut]
    (tmp_path / "cut.tar").write_bytes(whole[:at])
    records, errors = split(list(read_pairs(tmp_path / "cut.tar")))
    assert len(errors) == 1 and errors[0].reason.startswith("damaged shard cut.tar: cut short")
    if cut == "between_samples":  # k2 is whole; the end marker is missing, so later samples may be lost
        assert [r.key for r in records] == ["k0", "k1", "k2"] and errors[0].key is None
    elif cut == "inside_header":  # the cut header is k2.png's: k1 is whole
        assert [r.key for r in records] == ["k0", "k1"] and errors[0].key is None
    else:
        assert [r.key for r in records] == ["k0", "k1"] and errors[0].key == "k2"


def test_a_broken_header_mid_shard_is_damage_not_the_end(tmp_path):
    import tarfile

    data = bytearray(shard_bytes(3))
    header = tarfile.open(fileobj=io.BytesIO(bytes(data))).getmembers()[2].offset  # k1.png's header
    data[header + 148:header + 156] = b"garbage!"  # its checksum field
    (tmp_path / "bad.tar").write_bytes(bytes(data))
    records, errors = split(list(read_pairs(tmp_path / "bad.tar")))
    assert [r.key for r in records] == ["k0"]
    assert len(errors) == 1 and "a broken tar header after k0.txt" in errors[0].reason


def test_files_outside_the_dataset_folder_are_refused_unless_allowed(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.png").write_bytes(png((1, 2, 3)))
    (secret / "notes.txt").write_text("private")
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.png").write_bytes(png((9, 9, 9)))
    (data / "link.png").symlink_to(secret / "key.png")
    rows = [{"file_name": "ok.png", "text": "fine"}, {"file_name": "../secret/key.png", "text": "up"},
            {"file_name": str(secret / "key.png"), "text": "absolute"}, {"file_name": "link.png", "text": "symlink"}]
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, errors = split(list(read_pairs(data)))
    assert [r.caption for r in records] == ["fine"]
    assert [e.reason.split(" (pass")[0] for e in errors] == [
        "outside the dataset folder: ../secret/key.png", f"outside the dataset folder: {secret / 'key.png'}",
        "outside the dataset folder: link.png"]
    assert len([r for r in read_pairs(data, allow_outside_root=True) if isinstance(r, PairRecord)]) == 4

    sidecar = tmp_path / "sidecar"
    sidecar.mkdir()
    (sidecar / "a.png").symlink_to(secret / "key.png")
    (sidecar / "a.txt").write_text("a caption")
    (sidecar / "b.png").write_bytes(png((5, 5, 5)))
    (sidecar / "b.txt").symlink_to(secret / "notes.txt")
    assert [e.reason.split(" (pass")[0] for e in read_pairs(sidecar)] == [
        "outside the dataset folder: a.png", "outside the dataset folder: b.txt"]

    shards = tmp_path / "shards"
    shards.mkdir()
    (secret / "x.tar").write_bytes(shard_bytes(1))
    (shards / "x.tar").symlink_to(secret / "x.tar")
    assert [e.reason.split(" (pass")[0] for e in read_pairs(shards)] == ["outside the dataset folder: x.tar"]


def test_a_metadata_file_that_is_not_text_is_one_error_per_bad_line(tmp_path):
    (tmp_path / "a.png").write_bytes(png((1, 1, 1)))
    (tmp_path / "metadata.jsonl").write_bytes(b'{"file_name": "a.png", "text": "fine"}\n\xff\xfe\n[1, 2]\n'
                                              b'{"file_name": null, "text": "x"}\n')
    records, errors = split(list(read_pairs(tmp_path)))
    assert [r.caption for r in records] == ["fine"]
    assert [e.reason for e in errors] == ["metadata.jsonl line 2 is not UTF-8 text (invalid start byte)",
                                          "metadata.jsonl line 3 must be a JSON object",
                                          "file_name must be a file name, got None"]
