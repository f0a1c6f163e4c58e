"""Hugging Face folder datasets: media files plus ``metadata.jsonl``.

``imagefolder/`` loads with ``datasets.load_dataset("imagefolder", data_dir=OUT/imagefolder)`` and
``audiofolder/`` with ``load_dataset("audiofolder", data_dir=OUT/audiofolder)``; the caption is the
``text`` column, and key, seed, model and scores come along as columns. ``tripletfolder/`` names both
files (``image_file_name``, ``audio_file_name``); datasets' imagefolder loader reads it, and the audio
column needs ``.cast_column("audio", datasets.Audio())``, since a folder loader types every file
column as its own kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairsynth.writers.base import JsonlAppender, WriterState, encode_media, pair_metadata, sync_files, write_bytes

METADATA = "metadata.jsonl"
LAYOUTS = {"imagefolder": ("image",), "audiofolder": ("audio",), "tripletfolder": ("image", "audio")}


class FolderWriter:
    """Writes accepted pairs as ``<key>.<ext>`` files with one metadata line each."""

    def __init__(self, root: Path, *, layout: str = "imagefolder", image_format: str = "png",
                 audio_format: str = "flac") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown folder layout {layout!r}; use {' or '.join(LAYOUTS)}")
        self.name = layout
        self.media = LAYOUTS[layout]
        self.dir = Path(root) / layout
        self.formats = {"image": image_format, "audio": audio_format}
        self._metadata = JsonlAppender(self.dir / METADATA)
        self._unsynced: list[Path] = []

    def write(self, candidate: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        encoded = encode_media(candidate, **{f"{m}_format": f for m, f in self.formats.items()})
        names = {}
        for medium in self.media:
            extension = self.formats[medium]
            names[medium] = f"{candidate.key}.{extension}"
            write_bytes(self.dir / names[medium], encoded[extension])
            self._unsynced.append(self.dir / names[medium])
        columns = {"file_name": names[self.media[0]]} if len(self.media) == 1 else \
            {f"{medium}_file_name": name for medium, name in names.items()}
        self._metadata.append({**columns, **pair_metadata(candidate)})

    def commit(self, part: int) -> WriterState:
        """Make the part's media files durable in one sync, then append their metadata lines.

        The metadata lines (and the commit after them) name only files already synced, so a crash
        never leaves a listed file that is not on disk.
        """
        sync_files(self._unsynced, self.dir)
        self._unsynced.clear()
        return {"metadata_bytes": self._metadata.commit()}

    def rollback(self, state: WriterState | None) -> None:
        """Cut ``metadata.jsonl`` back and delete media files it no longer lists."""
        self._metadata.truncate(state["metadata_bytes"] if state else 0)
        self._unsynced.clear()
        if not self.dir.exists():
            return
        listed = {name for row in self._metadata.iter_rows() for column, name in row.items() if column.endswith("file_name")}
        for path in self.dir.iterdir():
            if path.name != METADATA and path.name not in listed:
                path.unlink()

    def close(self) -> None:
        pass
