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
is yielded as a :class:`ReadError` naming its path and the reason (written for a person; the
exception's class goes in a field of its own), and reading goes on.

A dataset is data, not a set of instructions: every file it names must resolve inside its folder,
symlinks followed, or it is refused as unreadable (``allow_outside_root`` opts out). Otherwise a
``metadata.jsonl`` naming ``../../home/you/.ssh/id_rsa.png`` would have ``score`` copy that file into a
report meant to be shared.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from pairsynth.errors import DatasetError
from pairsynth.media import modality_of
from pairsynth.read_reasons import decode_failure, error_message, read_failure
from pairsynth.shard_scan import ShardDamage, scan_shard

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


@dataclass(kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class ReadError:
    """An item that could not be read; the rest of the dataset still is.

    Attributes:
        source: the file (or ``SHARD.tar#KEY``, or ``metadata.jsonl:LINE``) at fault.
        reason: what was wrong, for people: ``file not found: gone.png``.
        key: the item's key when it is known.
        error: the exception's class when one caused it (``FileNotFoundError``), for programs.
    """

    source: str
    reason: str
    key: str | None = None
    error: str | None = None


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


def read_pairs(path: str | Path, *, layout: str = "auto", keys: Collection[str] | None = None,
               allow_outside_root: bool = False, folder_captions: bool = False) -> Iterator[Item]:
    """Yield every pair of the dataset at ``path`` (and a :class:`ReadError` for each bad item).

    Args:
        path: the dataset folder, or one WebDataset ``.tar``.
        layout: one of :data:`LAYOUTS`; ``auto`` detects it (see :func:`detect_layout`).
        keys: read only these keys, skipping the decoding of all others (a report's second pass
            fetches just the media it shows).
        allow_outside_root: read files the dataset names outside its folder (``../x.png``, an
            absolute path, a symlink leading out) instead of refusing them as unreadable.
        folder_captions: a media file with no caption beside it, in a class subfolder, is read with
            that folder's name (the first under ``path``) as its caption instead of as unreadable: a
            class-per-folder dataset, as torchvision's ``ImageFolder`` and datasets' ``imagefolder`` read one.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    root = Path(path)
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.exists():
        raise DatasetError(f"dataset path {str(root)!r} does not exist")
    scope = _Scope(root.parent if root.is_file() else root, allow_outside_root)
    wanted = None if keys is None else set(keys)
    readers: dict[str, Callable[[Path, set[str] | None, _Scope], Iterator[Item]]] = {
        "pairsynth": _read_pairsynth, "folder": _read_folder, "webdataset": _read_webdataset,
        "sidecar": partial(_read_sidecar, folder_captions=folder_captions),
    }
    for item in readers[layout](root, wanted, scope):
        if isinstance(item, ReadError):  # each one with --verbose; commands say how many (warn_unreadable)
            logger.debug("unreadable item %s: %s", item.source, item.reason)
        yield item


def warn_unreadable(source: str | Path, errors: Sequence[ReadError], shown: int = 3) -> None:
    """One warning for a dataset's unreadable items: how many, the first ``shown``, not a line each
    (a dataset of thousands without captions would bury the rest of the output)."""
    if not errors:
        return
    first = "; ".join(f"{error.source}: {error.reason}" for error in errors[:shown])
    more = f"; and {len(errors) - shown} more (--verbose lists each)" if len(errors) > shown else ""
    logger.warning("%s: %d unreadable item%s skipped: %s%s", source, len(errors), "s" * (len(errors) != 1), first, more)


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a pairsynth output's ``manifest.jsonl`` (``[]`` for any other dataset)."""
    return list(manifest_rows(path))


def manifest_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """:func:`read_manifest`'s rows one at a time, none kept (memory flat in the size of the run)."""
    manifest = Path(path) / "manifest.jsonl"
    if not manifest.is_file():
        return
    with open(manifest, encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle if line.strip())


def rejection_reasons(path: str | Path) -> tuple[Counter[str], dict[str, str]]:
    """How many of a pairsynth output's candidates were rejected for each reason, and one detail each."""
    counts: Counter[str] = Counter()
    details: dict[str, str] = {}
    for row in manifest_rows(path):
        if not row.get("accepted") and row.get("reason"):
            counts[row["reason"]] += 1
            details.setdefault(row["reason"], str(row.get("detail") or ""))
    return counts, details


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


class _Scope:
    """Where a dataset's files may live: inside its folder, symlinks followed (unless the user opts out)."""

    def __init__(self, root: Path, allow_outside: bool) -> None:
        self.root = root
        self.real_root = root.resolve()
        self.allow_outside = allow_outside

    def name(self, path: Path) -> str:
        """The path as the dataset names it, relative to its folder, for reasons people read."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def refusal(self, path: Path, key: str | None) -> ReadError | None:
        """A :class:`ReadError` when ``path`` leads outside the dataset folder; ``None`` when it may be read."""
        if self.allow_outside:
            return None
        try:
            inside = path.resolve().is_relative_to(self.real_root)
        except (OSError, RuntimeError):  # a symlink loop
            return ReadError(source=str(path), reason=f"symlink loop: {self.name(path)}", key=key, error="RuntimeError")
        if inside:
            return None
        return ReadError(source=str(path),
                         reason=f"outside the dataset folder: {self.name(path)} (pass --allow-outside-root "
                                "to read files a dataset names outside its folder)", key=key)


def _read_pairsynth(root: Path, keys: set[str] | None, scope: _Scope) -> Iterator[Item]:
    """A pairsynth output: its folder datasets when written, else its shards (the same pairs)."""
    names = ("imagefolder", "audiofolder", "tripletfolder")
    folders = [root / name for name in names if (root / name / "metadata.jsonl").is_file()]
    if folders:
        for folder in folders:
            yield from _read_folder(folder, keys, scope)
    elif (root / "shards").is_dir():
        yield from _read_webdataset(root / "shards", keys, scope)


def _read_folder(root: Path, keys: set[str] | None, scope: _Scope) -> Iterator[Item]:
    """Hugging Face folder datasets; metadata files may sit in split subfolders (``train/``)."""
    for metadata in sorted(p for name in METADATA_FILES for p in root.rglob(name)):
        if (refused := scope.refusal(metadata, None)) is not None:
            yield refused
            continue
        for where, row in _metadata_rows(metadata, scope):
            if isinstance(row, ReadError):
                yield row
                continue
            yield from _folder_item(root, metadata.parent, where, row, keys, scope)


def _metadata_rows(metadata: Path, scope: _Scope) -> Iterator[tuple[str, dict[str, Any] | ReadError]]:
    """Each row of a ``metadata.jsonl`` (a bad line is one error) or ``metadata.csv`` (a bad file is)."""
    name = scope.name(metadata)
    try:
        data = metadata.read_bytes()
    except OSError as err:
        yield str(metadata), ReadError(source=str(metadata), reason=read_failure(err, name), key=None,
                                       error=type(err).__name__)
        return
    if metadata.suffix == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        except (UnicodeDecodeError, csv.Error) as err:
            yield str(metadata), ReadError(source=str(metadata), reason=f"unreadable CSV: {name}: {err}", key=None,
                                           error=type(err).__name__)
            return
        for line, row in enumerate(rows, start=2):
            yield f"{metadata}:{line}", row
        return
    for line, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{metadata}:{line}"
        try:
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            row = json.loads(text)
        except UnicodeDecodeError as err:
            yield where, ReadError(source=where, reason=f"{name} line {line} is not UTF-8 text ({err.reason})",
                                   key=None, error=type(err).__name__)
            continue
        except json.JSONDecodeError as err:
            yield where, ReadError(source=where, reason=f"invalid JSON on {name} line {line}: {err}", key=None,
                                   error=type(err).__name__)
            continue
        yield where, row if isinstance(row, dict) else ReadError(source=where,
                                                                 reason=f"{name} line {line} must be a JSON object")


def _folder_item(root: Path, base: Path, where: str, row: dict[str, Any], keys: set[str] | None,
                 scope: _Scope) -> Iterator[Item]:
    # ``file_name``, or ``<column>_file_name`` per medium (a triplet row names an image and a clip)
    name_columns = [c for c in row if c == "file_name" or c.endswith("_file_name")]
    if not name_columns:
        yield ReadError(source=where, reason="no file_name column")
        return
    if bad := next((c for c in name_columns if not isinstance(row[c], str) or not row[c].strip()), None):
        yield ReadError(source=where, reason=f"{bad} must be a file name, got {row[bad]!r}", key=None)
        return
    paths = [base / row[c] for c in name_columns]
    key = str(row.get("key") or _relative_key(root, paths[0]))
    if keys is not None and key not in keys:
        return
    caption = next((row[c] for c in CAPTION_COLUMNS if isinstance(row.get(c), str)), None)
    if caption is None:
        yield ReadError(source=str(paths[0]), reason=f"{scope.name(Path(where.rpartition(':')[0]))} line "
                                                     f"{where.rpartition(':')[2]} has no caption: expected a "
                                                     f"{' or '.join(CAPTION_COLUMNS)} column", key=key)
        return
    extra = {c: v for c, v in row.items() if c not in (*name_columns, "key", *CAPTION_COLUMNS)}
    yield _file_record(paths, key, caption, extra, scope)


def _read_sidecar(root: Path, keys: set[str] | None, scope: _Scope, *, folder_captions: bool = False) -> Iterator[Item]:
    media = sorted(p for p in root.rglob("*") if p.is_file() and _extension(p) in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS)
    for path in media:
        key = _relative_key(root, path)
        if keys is not None and key not in keys:
            continue
        caption_file = path.with_suffix(".txt")
        folder = path.parent.relative_to(root).as_posix()
        if not caption_file.is_file():
            if folder_captions and folder != ".":
                yield _file_record([path], key, folder.split("/")[0].replace("_", " "), {"folder": folder}, scope)
                continue
            yield ReadError(source=str(path), reason=f"no caption file {caption_file.name} beside {scope.name(path)}",
                            key=key)
            continue
        if (refused := scope.refusal(caption_file, key)) is not None:
            yield refused
            continue
        try:
            caption = caption_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = (f"caption file is not UTF-8 text: {scope.name(caption_file)} ({err.reason})"
                      if isinstance(err, UnicodeDecodeError) else read_failure(err, scope.name(caption_file)))
            yield ReadError(source=str(caption_file), reason=reason, key=key, error=type(err).__name__)
            continue
        yield _file_record([path], key, caption, {} if folder == "." else {"folder": folder}, scope)


def _file_record(paths: list[Path], key: str, caption: str, extra: dict[str, Any], scope: _Scope) -> Item:
    if not caption.strip():
        return ReadError(source=str(paths[0]), reason=f"empty caption for {scope.name(paths[0])}", key=key)
    media: dict[str, Any] = {}
    for path in paths:
        name = scope.name(path)
        extension = _extension(path)
        if extension not in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS:
            return ReadError(source=str(path),
                             reason=f"not an image or audio file name: {name} (expected .png, .jpg, .flac, "
                                    ".wav …)", key=key)
        if (refused := scope.refusal(path, key)) is not None:
            return refused
        try:
            data = path.read_bytes()
        except OSError as err:
            return ReadError(source=str(path), reason=read_failure(err, name), key=key, error=type(err).__name__)
        try:
            media.update(decode_media(extension, data))
        except DECODE_ERRORS as err:
            reason = decode_failure(err, extension in IMAGE_EXTENSIONS, name, len(data), data[:8])
            return ReadError(source=str(path), reason=reason, key=key, error=type(err).__name__)
    label = next((str(extra[c]) for c in LABEL_COLUMNS if extra.get(c) not in (None, "")), None)
    return PairRecord(key=key, caption=caption, source=" + ".join(str(p) for p in paths), label=label, meta=extra,
                      **media)


def _read_webdataset(root: Path, keys: set[str] | None, scope: _Scope) -> Iterator[Item]:
    """Shards through ``webdataset`` itself, undecoded, so each bad sample is reported on its own.

    A damaged shard (cut short, or a broken header) loses only itself: its readable samples are
    pairs, and the damage is one unreadable item, named after the sample it falls in.
    """
    import webdataset as wds

    shards = [root] if root.is_file() else sorted(root.rglob("*.tar"))
    for shard in shards:
        if shard is not root and (refused := scope.refusal(shard, None)) is not None:
            yield refused
            continue
        damage = _shard_damage(shard, scope.name(shard))
        failures: list[Exception] = []

        def keep_going(error: Exception) -> bool:  # a corrupt shard ends that shard only
            failures.append(error)
            return True

        dataset = wds.WebDataset([str(shard)], shardshuffle=False, handler=keep_going, empty_check=False)
        for sample in dataset:
            if keys is not None and sample["__key__"] not in keys:
                continue
            item = _webdataset_item(sample, scope.name(shard))
            if damage is not None and damage.key == sample["__key__"]:
                if damage.certain or isinstance(item, ReadError):
                    continue  # the sample the damage falls in: reported once, below
                damage = replace(damage, key=None)  # that sample was whole: only later ones are lost
            yield item
        if damage is not None:  # webdataset's own errors about it say the same, less precisely
            if keys is None or damage.key is None or damage.key in keys:
                source = f"{shard}#{damage.key}" if damage.key else str(shard)
                yield ReadError(source=source, reason=damage.reason, key=damage.key, error=damage.error)
        elif failures:
            error = failures[0]
            yield ReadError(source=str(shard),
                            reason=f"unreadable tar data in {scope.name(shard)}: {error_message(error)}", key=None,
                            error=type(error).__name__)


def _shard_damage(shard: Path, name: str) -> ShardDamage | None:
    try:
        return scan_shard(shard, name)
    except OSError as err:
        return ShardDamage(reason=read_failure(err, name), key=None, certain=True, error=type(err).__name__)


def _webdataset_item(sample: dict[str, Any], shard_name: str) -> Item:
    key, shard = sample["__key__"], sample.get("__url__", "?")
    source = f"{shard}#{key}"
    media = [ext for ext in sample if ext in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS]
    if not media:
        members = ", ".join(sorted(k for k in sample if not k.startswith("__")))
        return ReadError(source=source, reason=f"{key} in {shard_name} has no image or audio member (has {members})",
                         key=key)
    meta: dict[str, Any] = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return ReadError(source=source, reason=f"invalid JSON in {key}.json in {shard_name}: {err}", key=key,
                             error=type(err).__name__)
        meta = meta if isinstance(meta, dict) else {}
    caption = _tar_caption(sample, meta)
    if caption is None:
        return ReadError(source=source,
                         reason=f"{key} in {shard_name} has no caption: expected a .txt member or a text/caption "
                                "field in its .json", key=key)
    if not caption.strip():
        return ReadError(source=source, reason=f"empty caption for {key} in {shard_name}", key=key)
    decoded: dict[str, Any] = {}
    for extension in media:
        try:
            decoded.update(decode_media(extension, sample[extension]))
        except DECODE_ERRORS as err:
            data = sample[extension]
            reason = decode_failure(err, extension in IMAGE_EXTENSIONS, f"{key}.{extension} in {shard_name}",
                                    len(data), data[:8])
            return ReadError(source=f"{source}.{extension}", reason=reason, key=key, error=type(err).__name__)
    label = next((str(meta[c]) for c in LABEL_COLUMNS if meta.get(c) not in (None, "")), None)
    return PairRecord(key=key, caption=caption, source=f"{source}.{'+'.join(media)}", label=label, meta=meta, **decoded)


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
