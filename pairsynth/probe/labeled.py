"""Read a labeled dataset — real or synthetic — as one list of examples with a class each.

The probe trains classifiers, so every example needs a label. Where labels come from, first match wins:

1. a ``label`` / ``class`` / ``category`` column (``metadata.jsonl``/``.csv``, or a WebDataset ``.json``);
2. a caption → label map the user gives (``--labels map.json``: ``{"a photo of a cat": "cat"}``, or
   a two-column CSV ``caption,label``);
3. a class subfolder (``data/cat/001.png``: label ``cat``; ``train/``/``test/`` split folders are skipped);
4. synthetic data only: the label of the real example a variation was made from (``pairsynth vary``
   records its source key in the manifest), the label real examples with the same caption have, or
   the one class name the caption mentions as a whole word (``"a photo of a cat"``: ``cat``).

An example with no label from any of these is an :class:`~pairsynth.probe.errors.UnlabeledDatasetError`
naming the item: guessing would silently train on the wrong class.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pairsynth.media import MEDIA, media_held
from pairsynth.probe.errors import MixedMediaError, UnlabeledDatasetError
from pairsynth.readers import (AUDIO_EXTENSIONS, CAPTION_COLUMNS, DECODE_ERRORS, IMAGE_EXTENSIONS, LABEL_COLUMNS,
                               METADATA_FILES, DatasetError, PairRecord, ReadError, decode_media, detect_layout,
                               read_manifest, read_pairs, warn_unreadable)


SPLIT_FOLDERS = frozenset({"train", "test", "validation", "valid", "val", "dev"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS


@dataclass(kw_only=True)
class LabeledExample:
    """One image or clip with its class.

    Attributes:
        key: unique within its dataset (metadata ``key``, or the file's path without extension).
        label: the class name.
        source: the file (or ``SHARD.tar#KEY``) it was read from.
        image: 8-bit RGB pixels ``(H, W, 3)``, or ``None``.
        audio: float32 mono or ``(channels, samples)`` samples, or ``None``.
        sample_rate: the audio's rate in Hz.
        caption: the pair's caption, when the dataset has one.
    """

    key: str
    label: str
    source: str
    image: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    caption: str | None = None

    @property
    def modality(self) -> str:
        """``image`` or ``audio``."""
        return media_held(self)[0]


@dataclass(kw_only=True)
class LabeledSet:
    """A dataset read for the probe: its examples, their medium, and what could not be read."""

    path: str
    examples: list[LabeledExample]
    modality: str
    unreadable: list[ReadError] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        """The class names, sorted."""
        return sorted({example.label for example in self.examples})

    @property
    def labels(self) -> list[str]:
        return [example.label for example in self.examples]

    def class_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for example in self.examples:
            counts[example.label] = counts.get(example.label, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(kw_only=True)
class _Item:
    """An example before its label is settled."""

    key: str
    source: str
    media: dict[str, Any]
    caption: str | None
    label: str | None
    folder_label: str | None = None


def read_label_map(path: str | Path) -> dict[str, str]:
    """A caption → label map from a JSON object or a two-column CSV (``caption,label``, header optional)."""
    file = Path(path)
    if not file.is_file():
        raise UnlabeledDatasetError(f"label map {str(file)!r} does not exist; give a JSON object or a caption,label CSV")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise UnlabeledDatasetError(f"label map {file}: invalid JSON ({err})") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, (str, int)) for v in mapping.values()):
            raise UnlabeledDatasetError(f"label map {file}: expected a JSON object of caption → label strings")
        return {str(k).strip(): str(v) for k, v in mapping.items()}
    rows = [row for row in csv.reader(text.splitlines()) if row]
    if rows and [c.strip().lower() for c in rows[0]] == ["caption", "label"]:
        rows = rows[1:]
    bad = next((number for number, row in enumerate(rows, start=1) if len(row) != 2), None)
    if bad is not None or not rows:
        raise UnlabeledDatasetError(f"label map {file}: expected two columns caption,label on every line (line {bad})")
    return {caption.strip(): label.strip() for caption, label in rows}


def read_labeled(path: str | Path, *, label_map: Mapping[str, str] | None = None) -> LabeledSet:
    """Read a real labeled dataset: an imagefolder/audiofolder, class subfolders, shards or a pairsynth output.

    Args:
        path: the dataset folder (or one WebDataset ``.tar``).
        label_map: caption → label, for datasets labeled through their captions.

    Raises:
        UnlabeledDatasetError: an example has no label (the message names it and the accepted sources).
        MixedMediaError: the folder holds both images and audio.
    """
    items, unreadable = _read_items(Path(path))
    examples = [_settle(item, path, label_map, fallbacks=()) for item in items]
    return _labeled_set(path, examples, unreadable)


def read_synthetic(path: str | Path, real: LabeledSet, *, label_map: Mapping[str, str] | None = None) -> LabeledSet:
    """Read a synthetic dataset (a pairsynth output, or any layout :func:`read_labeled` takes).

    Besides a label column or the map, a synthetic example may inherit its label from the real example
    it varies (the manifest's ``source.key``), from real examples with the same caption, or from the one
    class name its caption mentions.

    Args:
        path: the synthetic dataset.
        real: the real set, whose keys, captions and class names resolve labels.
        label_map: caption → label.
    """
    root = Path(path)
    items, unreadable = _read_items(root)
    by_key = {example.key: example.label for example in real.examples}
    lineage = {row["key"]: by_key.get(str(row["source"].get("key"))) for row in read_manifest(root)
               if isinstance(row.get("source"), dict) and row.get("key")}
    caption_labels: dict[str, set[str]] = {}
    for example in real.examples:
        if example.caption:
            caption_labels.setdefault(example.caption, set()).add(example.label)
    by_caption = {caption: next(iter(labels)) for caption, labels in caption_labels.items() if len(labels) == 1}
    patterns = {label: re.compile(rf"(?<!\w){re.escape(label)}(?!\w)", re.IGNORECASE) for label in real.classes}

    def from_lineage(item: _Item) -> str | None:
        return lineage.get(item.key)

    def from_caption(item: _Item) -> str | None:
        if not item.caption:
            return None
        if item.caption in by_caption:
            return by_caption[item.caption]
        named = [label for label, pattern in patterns.items() if pattern.search(item.caption)]
        return named[0] if len(named) == 1 else None

    examples = [_settle(item, path, label_map, fallbacks=(from_lineage, from_caption)) for item in items]
    return _labeled_set(path, examples, unreadable)


def check_same_medium(real: LabeledSet, others: Iterable[LabeledSet]) -> None:
    """Raise :class:`MixedMediaError` unless every dataset holds the real set's medium."""
    for other in others:
        if other.modality != real.modality:
            raise MixedMediaError(f"{other.path} holds {other.modality} but the real data {real.path} holds "
                                  f"{real.modality}; a probe trains on one medium")


def synthetic_name(path: Path, taken: Mapping[str, Any]) -> str:
    """A short name for a synthetic dataset in condition names: its folder (``out/var`` → ``var``), unique."""
    base = path.name or "synthetic"
    if base in ("imagefolder", "audiofolder", "shards") and path.parent.name:
        base = path.parent.name
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _labeled_set(path: str | Path, examples: list[LabeledExample], unreadable: list[ReadError]) -> LabeledSet:
    if not examples:
        raise DatasetError(f"{path}: no readable examples ({len(unreadable)} unreadable)")
    media = {example.modality for example in examples}
    if len(media) > 1:
        first: dict[str, LabeledExample] = {}
        for example in examples:
            first.setdefault(example.modality, example)
        mixed = " and ".join(f"{MEDIA[name].plural} ({first[name].source})" for name in MEDIA if name in first)
        raise MixedMediaError(f"{path} mixes {mixed}; give one medium per dataset")
    warn_unreadable(path, unreadable)
    return LabeledSet(path=str(path), examples=examples, modality=media.pop(), unreadable=unreadable)


def _settle(item: _Item, path: str | Path, label_map: Mapping[str, str] | None, fallbacks) -> LabeledExample:
    label = item.label
    if label is None and label_map and item.caption is not None:
        label = label_map.get(item.caption.strip())
    label = label if label is not None else item.folder_label
    for fallback in fallbacks:
        if label is not None:
            break
        label = fallback(item)
    if label is None:
        raise UnlabeledDatasetError(
            f"{item.source}: no class label (caption {item.caption!r}); give a label column in metadata.jsonl, "
            "class subfolders, or a caption → label map with --labels")
    if len(MEDIA.keys() & item.media.keys()) > 1:
        raise MixedMediaError(f"{item.source} is an image + audio triplet; probe one medium at a time")
    return LabeledExample(key=item.key, label=str(label), source=item.source, caption=item.caption, **item.media)


def _read_items(root: Path) -> tuple[list[_Item], list[ReadError]]:
    layout = detect_layout(root)
    items: list[_Item] = []
    unreadable: list[ReadError] = []
    reader = _read_pair_records(root) if layout in ("pairsynth", "webdataset") else _read_files(root, layout)
    for item in reader:
        (unreadable if isinstance(item, ReadError) else items).append(item)
    return items, unreadable


def _read_pair_records(root: Path) -> Iterator[_Item | ReadError]:
    for record in read_pairs(root):
        if isinstance(record, ReadError):
            yield record
            continue
        yield _Item(key=record.key, source=record.source, media=_record_media(record), caption=record.caption,
                    label=record.label)


def _record_media(record: PairRecord) -> dict[str, Any]:
    media: dict[str, Any] = {}
    if record.image is not None:
        media["image"] = record.image
    if record.audio is not None:
        media.update(audio=record.audio, sample_rate=record.sample_rate)
    return media


def _read_files(root: Path, layout: str) -> Iterator[_Item | ReadError]:
    """Folder datasets, with or without metadata; captions and labels optional per row."""
    if layout == "folder":
        for metadata in sorted(p for name in METADATA_FILES for p in root.rglob(name)):
            for where, row in _rows(metadata):
                yield from _metadata_item(root, metadata.parent, where, row)
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _extension(p) in MEDIA_EXTENSIONS):
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else None
        yield _file_item(root, path, _key(root, path), caption, None)


def _rows(metadata: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(metadata, encoding="utf-8", newline="") as handle:
        if metadata.suffix == ".csv":
            for line, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{metadata}:{line}", row
            return
        for line, text in enumerate(handle, start=1):
            if text.strip():
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{metadata}:{line}: invalid JSON ({err})") from None
                yield f"{metadata}:{line}", row


def _metadata_item(root: Path, base: Path, where: str, row: dict[str, Any]) -> Iterator[_Item | ReadError]:
    if "file_name" not in row:
        yield ReadError(source=where, reason="no file_name column")
        return
    path = base / str(row["file_name"])
    caption = next((row[c] for c in CAPTION_COLUMNS if isinstance(row.get(c), str)), None)
    label = next((str(row[c]) for c in LABEL_COLUMNS if row.get(c) not in (None, "")), None)
    yield _file_item(root, path, str(row.get("key") or _key(root, path)), caption, label)


def _file_item(root: Path, path: Path, key: str, caption: str | None, label: str | None) -> _Item | ReadError:
    try:
        media = decode_media(_extension(path), path.read_bytes())
    except (*DECODE_ERRORS, FileNotFoundError) as err:
        return ReadError(source=str(path), reason=f"{type(err).__name__}: {err}"[:300], key=key)
    folders = [part for part in path.relative_to(root).parts[:-1] if part.lower() not in SPLIT_FOLDERS] \
        if path.is_relative_to(root) else []
    return _Item(key=key, source=str(path), media=media, caption=caption, label=label,
                 folder_label=folders[-1] if folders else None)


def _key(root: Path, path: Path) -> str:
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return relative.with_suffix("").as_posix()


def _extension(path: Path) -> str:
    return path.suffix.lower().removeprefix(".")
