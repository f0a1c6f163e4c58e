"""The writer contract, and the durable file operations every writer is built from.

A run commits in parts. Between commits a writer may hold anything in temporary files; ``commit``
makes the part durable and returns a small state, which the run records in ``progress.json`` (the
single commit point). After a crash, ``rollback`` with the last recorded state deletes whatever was
written after it. That is how a killed run resumes without losing or duplicating a pair.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import json
import logging
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from PIL import Image

WriterState = dict[str, Any]
logger = logging.getLogger(__name__)


class PairWriter(Protocol):
    """What the run needs of a writer."""

    name: str

    def write(self, candidate: Any) -> None:
        """Add one accepted pair to the current, uncommitted part."""

    def commit(self, part: int) -> WriterState:
        """Make the current part durable; return what :meth:`rollback` needs to return to here."""

    def rollback(self, state: WriterState | None) -> None:
        """Delete everything written after the commit that returned ``state`` (``None``: all)."""

    def close(self) -> None:
        """Release files; uncommitted work is left for the next rollback to remove."""


class NullWriter:
    """Writes nothing; for dry runs and benchmarks that measure generation alone."""

    name = "null"

    def write(self, candidate: Any) -> None:
        pass

    def commit(self, part: int) -> WriterState:
        return {}

    def rollback(self, state: WriterState | None) -> None:
        pass

    def close(self) -> None:
        pass


def fsync_dir(path: Path) -> None:
    """Persist a rename: on POSIX, the directory entry is durable only once its directory is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    """``json.dump(value, indent=2)`` to ``path`` through a temporary name, streamed in chunks.

    Sized iterables that are not lists (such as the report's per-group rows) are written item by
    item, so a summary with a row per caption never exists as one list or one string in memory.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, default=_streamed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for chunk in encoder.iterencode(value):  # the pure-Python encoder: it iterates lists lazily
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


Row = TypeVar("Row")
Row_co = TypeVar("Row_co", covariant=True)


class SizedRows(Protocol[Row_co]):
    """What :class:`MappedRows` reads: anything with a length that can be iterated more than once."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Row_co]: ...


class MappedRows(Generic[Row]):
    """A sized view that turns each of ``items`` into its summary dict only when read.

    ``items`` must be sized and iterable more than once. A run's summary holds these instead of
    lists of dicts (a row per caption is ~1 KB as a dict; a million captions would be a GB), and
    :func:`write_json` streams them into the file one row at a time. ``list()`` one to keep its rows.
    """

    def __init__(self, items: SizedRows[Row], convert: Callable[[Row], dict[str, Any]]) -> None:
        self.items, self.convert = items, convert

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self.convert, self.items)

    def head(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` rows (what a page's table shows)."""
        return list(itertools.islice(self, count))


class _StreamedList(list):
    """Seen by the encoder as a list; its items come from the wrapped iterable as they are written."""

    def __init__(self, items: Any) -> None:
        super().__init__()
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _streamed(value: Any) -> Any:
    if isinstance(value, Iterable) and isinstance(value, Sized) and not isinstance(value, (str, bytes, dict)):
        return _StreamedList(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def publish_shard(tmp: Path, final: Path) -> None:
    """Give a finished shard its final name durably: its bytes synced, then the rename and its folder."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def remove_unlisted(folder: Path, listed: Collection[str]) -> None:
    """Delete every file in ``folder`` whose name a commit did not record (unfinished and rolled-back shards)."""
    if not folder.exists():
        return
    for path in folder.iterdir():
        if path.name not in listed:
            path.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` in place without syncing it; :func:`sync_files` makes a part's files durable at once."""
    with open(path, "wb") as handle:
        handle.write(data)


def _syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(fd)``: one call makes every file of a filesystem durable; ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_SYNCFS = _syncfs()


def sync_files(paths: Sequence[Path], directory: Path) -> None:
    """Make ``paths`` (written by :func:`write_bytes`, all in ``directory``) and their names durable.

    On Linux one ``syncfs`` of the directory's filesystem does it (one call per commit, however many
    files: 16,000 per-file fsyncs cost 7 s of a 33 s run). Elsewhere each file is fsynced, then the
    directory once.
    """
    if not paths:
        return
    if _SYNCFS is not None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
            logger.debug("syncfs failed (errno %d); syncing files one by one", ctypes.get_errno())
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for folder in sorted({Path(path).parent for path in paths} | {Path(directory)}):  # class subfolders too
        fsync_dir(folder)


def encode_image(pixels: np.ndarray, image_format: str) -> bytes:
    """PNG (lossless) or JPEG (quality 95) bytes of an 8-bit RGB image."""
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG")
    elif image_format == "jpg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    else:
        raise ValueError(f"unknown image format {image_format!r}; use png or jpg")
    return buffer.getvalue()


def encode_media(candidate: Any, *, image_format: str = "png", audio_format: str = "flac") -> dict[str, bytes]:
    """The candidate's media as file bytes, keyed by file extension (``png``, ``flac`` …).

    Encoded once per candidate and kept on it: every dataset writer stores the same bytes.
    """
    cache = getattr(candidate, "encoded", None)
    if cache is not None and cache.get("formats") == (image_format, audio_format):
        return cache["media"]
    media = {}
    if candidate.image is not None:
        media[image_format] = encode_image(candidate.image_uint8(), image_format)
    if candidate.audio is not None:
        if audio_format != "flac":
            raise ValueError(f"unknown audio format {audio_format!r}; use flac")
        from pairsynth.audio_io import encode_flac

        media["flac"] = encode_flac(candidate.audio, candidate.sample_rate)
    if cache is not None:
        cache.update(formats=(image_format, audio_format), media=media)
    return media


def pair_metadata(candidate: Any) -> dict[str, Any]:
    """The flat per-pair columns both dataset formats carry (the manifest has the full record)."""
    row: dict[str, Any] = {
        "text": candidate.caption,
        "key": candidate.key,
        "seed": candidate.condition.seed,
        "model": candidate.provenance.get("model"),
    }
    for judge, scores in candidate.scores.items():
        row[f"{judge}_score"] = round(scores.score, 4)
        row[f"{judge}_cosine"] = round(scores.cosine, 6)
    return row


class JsonlAppender:
    """An append-only JSON Lines file whose committed length is its resume state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []

    def append(self, row: dict[str, Any]) -> None:
        self._pending.append(json.dumps(row, ensure_ascii=False, allow_nan=False))

    def commit(self) -> int:
        """Append the pending rows durably; return the file's committed length in bytes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            if self._pending:
                handle.write("\n".join(self._pending) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        self._pending.clear()
        return size

    def truncate(self, size: int) -> None:
        """Cut the file back to a committed length, dropping rows written after that commit."""
        self._pending.clear()
        if self.path.exists():
            with open(self.path, "r+b") as handle:
                handle.truncate(size)

    def rows(self) -> list[dict[str, Any]]:
        """The committed rows, all in memory (small files; see :meth:`iter_rows`)."""
        return list(self.iter_rows())

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """The committed rows one at a time: memory stays flat however long the file."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
