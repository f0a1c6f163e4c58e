"""Read any pair dataset as one stream of records, whatever its layout.

``pairsynth score`` audits datasets nobody here wrote, and ``pairsynth vary`` starts from them, so the
readers accept the layouts people actually have:

``folder``      a Hugging Face ``imagefolder``/``audiofolder``: media files plus ``metadata.jsonl``
                (or ``metadata.csv``) with ``file_name`` and a ``text`` or ``caption`` column
``webdataset``  ``*.tar`` shards (one file or a folder of them) holding ``<key>.png|jpg|flac|wav …``
                and ``<key>.txt`` (or a caption in ``<key>.json``), read with the ``webdataset`` library
``sidecar``     a plain folder of media files, each with a ``<stem>.txt`` caption beside it
``pairsynth``   a ``pairsynth generate`` output: its ``imagefolder/``/``audiofolder/`` (or ``shards/``)

One unreadable item must not end an audit of a million: a missing, truncated or undecodable item
is yielded as a :class:`ReadError` naming its path and the reason, and reading goes on.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from pairsynth.errors import PairsynthError
from pairsynth.media import modality_of

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"})
AUDIO_EXTENSIONS = frozenset({"flac", "wav", "mp3", "ogg", "opus", "aif", "aiff"})
CAPTION_COLUMNS = ("text", "caption")
LABEL_COLUMNS = ("label", "class", "category")
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
LAYOUTS = ("auto", "pairsynth", "folder", "webdataset", "sidecar")

# What decoders raise on bad bytes: PIL raises OSError (truncated, unidentified), SyntaxError (broken
# PNG chunks) or DecompressionBombError; libsndfile raises a RuntimeError subclass. Anything else is a
# bug and should surface.
DECODE_ERRORS = (OSError, ValueError, RuntimeError, SyntaxError, EOFError, Image.DecompressionBombError)


class DatasetError(PairsynthError):
    """The dataset as a whole cannot be read: the path is missing or holds no known layout."""


@dataclass
class PairRecord:
    """One readable pair.

    Attributes:
        key: unique within the dataset (metadata ``key``, the WebDataset key, or the file's path
            relative to the dataset root without its extension).
        caption: the pair's text.
        source: where the media came from: a file path, or ``SHARD.tar#KEY``.
        image: 8-bit RGB pixels ``(H, W, 3)``, or ``None``. A triplet has an image and a clip.
        audio: float32 samples, ``(samples,)`` mono or ``(channels, samples)``, or ``None``.
        sample_rate: the audio's rate in Hz.
        label: a class label from a ``label``/``class``/``category`` column, when the dataset has one.
        meta: the item's other metadata columns, as read.
    """

    key: str
    caption: str
    source: str
    image: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        """``image``, ``audio``, or ``triplet`` (an image and a clip with one caption)."""
        return modality_of(self.image, self.audio)


@dataclass(frozen=True)
class ReadError:
    """An item that could not be read; the rest of the dataset still is.

    Attributes:
        source: the file (or ``SHARD.tar#KEY``, or ``metadata.jsonl:LINE``) at fault.
        reason: what was wrong, for people.
        key: the item's key when it is known.
    """

    source: str
    reason: str
    key: str | None = None


Item = PairRecord | ReadError


def detect_layout(path: str | Path) -> str:
    """Name the layout of the dataset at ``path``; raise :class:`DatasetError` when there is none."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"dataset path {str(root)!r} does not exist")
    if root.is_file():
        if root.suffix == ".tar":
            return "webdataset"
        raise DatasetError(f"{str(root)!r} is a file but not a .tar shard; give a dataset folder or a WebDataset .tar")
    outputs = ("imagefolder", "audiofolder", "tripletfolder", "shards")
    if (root / "manifest.jsonl").is_file() and any((root / d).is_dir() for d in outputs):
        return "pairsynth"
    if any(next(root.rglob(name), None) for name in METADATA_FILES):
        return "folder"
    if next(root.rglob("*.tar"), None) is not None:
        return "webdataset"
    if any(_extension(p) in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS for p in root.rglob("*") if p.is_file()):
        return "sidecar"
    raise DatasetError(
        f"no pairs found in {str(root)!r}: expected metadata.jsonl (imagefolder/audiofolder), *.tar WebDataset "
        "shards, media files with .txt captions beside them, or a pairsynth output folder"
    )


def read_pairs(path: str | Path, *, layout: str = "auto", keys: Collection[str] | None = None) -> Iterator[Item]:
    """Yield every pair of the dataset at ``path`` (and a :class:`ReadError` for each bad item).

    Args:
        path: the dataset folder, or one WebDataset ``.tar``.
        layout: one of :data:`LAYOUTS`; ``auto`` detects it (see :func:`detect_layout`).
        keys: read only these keys, skipping the decoding of all others (a report's second pass
            fetches just the media it shows).
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    root = Path(path)
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.exists():
        raise DatasetError(f"dataset path {str(root)!r} does not exist")
    wanted = None if keys is None else set(keys)
    readers: dict[str, Callable[[Path, set[str] | None], Iterator[Item]]] = {
        "pairsynth": _read_pairsynth, "folder": _read_folder, "webdataset": _read_webdataset, "sidecar": _read_sidecar,
    }
    for item in readers[layout](root, wanted):
        if isinstance(item, ReadError):
            logger.info("unreadable item %s: %s", item.source, item.reason)
        yield item


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a pairsynth output's ``manifest.jsonl`` (``[]`` for any other dataset)."""
    manifest = Path(path) / "manifest.jsonl"
    if not manifest.is_file():
        return []
    with open(manifest, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def decode_image(data: bytes) -> np.ndarray:
    """8-bit RGB pixels of an encoded image; raises one of :data:`DECODE_ERRORS` on bad bytes."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decode now: a truncated file fails here, not later in the scorer
        return np.asarray(image.convert("RGB"))


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """float32 samples (``(samples,)`` mono, ``(channels, samples)`` otherwise) and the rate in Hz."""
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    waveform = samples[:, 0] if samples.shape[1] == 1 else np.ascontiguousarray(samples.T)
    return waveform, int(rate)


def decode_media(extension: str, data: bytes) -> dict[str, Any]:
    """``{"image": pixels}`` or ``{"audio": waveform, "sample_rate": rate}`` for a media file's bytes."""
    if extension in IMAGE_EXTENSIONS:
        return {"image": decode_image(data)}
    waveform, rate = decode_audio(data)
    if waveform.size == 0:
        raise ValueError("the audio file holds no samples")
    return {"audio": waveform, "sample_rate": rate}


def _read_pairsynth(root: Path, keys: set[str] | None) -> Iterator[Item]:
    """A pairsynth output: its folder datasets when written, else its shards (the same pairs)."""
    names = ("imagefolder", "audiofolder", "tripletfolder")
    folders = [root / name for name in names if (root / name / "metadata.jsonl").is_file()]
    if folders:
        for folder in folders:
            yield from _read_folder(folder, keys)
    elif (root / "shards").is_dir():
        yield from _read_webdataset(root / "shards", keys)


def _read_folder(root: Path, keys: set[str] | None) -> Iterator[Item]:
    """Hugging Face folder datasets; metadata files may sit in split subfolders (``train/``)."""
    for metadata in sorted(p for name in METADATA_FILES for p in root.rglob(name)):
        for where, row in _metadata_rows(metadata):
            if isinstance(row, ReadError):
                yield row
                continue
            yield from _folder_item(root, metadata.parent, where, row, keys)


def _metadata_rows(metadata: Path) -> Iterator[tuple[str, dict[str, Any] | ReadError]]:
    with open(metadata, encoding="utf-8", newline="") as handle:
        if metadata.suffix == ".csv":
            for line, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{metadata}:{line}", row
            return
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{metadata}:{line}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                yield where, ReadError(where, f"invalid JSON: {err}")
                continue
            yield where, row if isinstance(row, dict) else ReadError(where, "a metadata line must be a JSON object")


def _folder_item(root: Path, base: Path, where: str, row: dict[str, Any], keys: set[str] | None) -> Iterator[Item]:
    # ``file_name``, or ``<column>_file_name`` per medium (a triplet row names an image and a clip)
    name_columns = [c for c in row if c == "file_name" or c.endswith("_file_name")]
    if not name_columns:
        yield ReadError(where, "no file_name column")
        return
    paths = [base / str(row[c]) for c in name_columns]
    key = str(row.get("key") or _relative_key(root, paths[0]))
    if keys is not None and key not in keys:
        return
    caption = next((row[c] for c in CAPTION_COLUMNS if isinstance(row.get(c), str)), None)
    if caption is None:
        yield ReadError(str(paths[0]), f"{where} has no caption: expected a {' or '.join(CAPTION_COLUMNS)} column", key)
        return
    extra = {c: v for c, v in row.items() if c not in (*name_columns, "key", *CAPTION_COLUMNS)}
    yield _file_record(paths, key, caption, extra)


def _read_sidecar(root: Path, keys: set[str] | None) -> Iterator[Item]:
    media = sorted(p for p in root.rglob("*") if p.is_file() and _extension(p) in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS)
    for path in media:
        key = _relative_key(root, path)
        if keys is not None and key not in keys:
            continue
        caption_file = path.with_suffix(".txt")
        if not caption_file.is_file():
            yield ReadError(str(path), f"no caption file {caption_file.name} beside it", key)
            continue
        try:
            caption = caption_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            yield ReadError(str(caption_file), f"cannot read the caption: {err}", key)
            continue
        folder = path.parent.relative_to(root).as_posix()
        yield _file_record([path], key, caption, {} if folder == "." else {"folder": folder})


def _file_record(paths: list[Path], key: str, caption: str, extra: dict[str, Any]) -> Item:
    if not caption.strip():
        return ReadError(str(paths[0]), "empty caption", key)
    media: dict[str, Any] = {}
    for path in paths:
        extension = _extension(path)
        if extension not in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS:
            return ReadError(str(path), f"unknown media type .{extension}", key)
        try:
            media.update(decode_media(extension, path.read_bytes()))
        except DECODE_ERRORS as err:
            return ReadError(str(path), _describe(err), key)
    label = next((str(extra[c]) for c in LABEL_COLUMNS if extra.get(c) not in (None, "")), None)
    return PairRecord(key, caption, " + ".join(str(p) for p in paths), label=label, meta=extra, **media)


def _read_webdataset(root: Path, keys: set[str] | None) -> Iterator[Item]:
    """Shards through ``webdataset`` itself, undecoded, so each bad sample is reported on its own."""
    import webdataset as wds

    shards = [root] if root.is_file() else sorted(root.rglob("*.tar"))
    failures: list[Exception] = []

    def keep_going(error: Exception) -> bool:  # a corrupt shard ends that shard only
        failures.append(error)
        return True

    dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False, handler=keep_going, empty_check=False)
    for sample in dataset:
        yield from _failures(failures, shards)
        if keys is not None and sample["__key__"] not in keys:
            continue
        yield _webdataset_item(sample)
    yield from _failures(failures, shards)


def _failures(failures: list[Exception], shards: list[Path]) -> Iterator[ReadError]:
    while failures:
        error = failures.pop(0)
        # webdataset appends the shard's url to the error's args; name that shard when it is there
        shard = next((str(arg) for arg in error.args if str(arg) in map(str, shards)), "a shard")
        yield ReadError(shard, f"unreadable tar data: {_describe(error)}")


def _webdataset_item(sample: dict[str, Any]) -> Item:
    key, shard = sample["__key__"], sample.get("__url__", "?")
    source = f"{shard}#{key}"
    media = [ext for ext in sample if ext in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS]
    if not media:
        members = ", ".join(sorted(k for k in sample if not k.startswith("__")))
        return ReadError(source, f"no image or audio member (has {members})", key)
    meta: dict[str, Any] = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return ReadError(source, f"invalid {key}.json: {err}", key)
        meta = meta if isinstance(meta, dict) else {}
    caption = _tar_caption(sample, meta)
    if caption is None:
        return ReadError(source, "no caption: expected a .txt member or a text/caption field in .json", key)
    if not caption.strip():
        return ReadError(source, "empty caption", key)
    decoded: dict[str, Any] = {}
    for extension in media:
        try:
            decoded.update(decode_media(extension, sample[extension]))
        except DECODE_ERRORS as err:
            return ReadError(f"{source}.{extension}", _describe(err), key)
    label = next((str(meta[c]) for c in LABEL_COLUMNS if meta.get(c) not in (None, "")), None)
    return PairRecord(key, caption, f"{source}.{'+'.join(media)}", label=label, meta=meta, **decoded)


def _tar_caption(sample: dict[str, Any], meta: dict[str, Any]) -> str | None:
    for extension in ("txt", "caption"):
        if extension in sample:
            return sample[extension].decode("utf-8", errors="replace").strip()
    return next((meta[c] for c in CAPTION_COLUMNS if isinstance(meta.get(c), str)), None)


def _relative_key(root: Path, path: Path) -> str:
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return relative.with_suffix("").as_posix()


def _extension(path: Path) -> str:
    return path.suffix.lower().removeprefix(".")


def _describe(error: BaseException) -> str:
    text = str(error.args[0]) if error.args else str(error)
    return f"{type(error).__name__}: {text}"[:300]
