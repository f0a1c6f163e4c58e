"""WebDataset tar shards: ``<key>.png|jpg`` and/or ``<key>.flac`` + ``<key>.txt`` + ``<key>.json``.

The layout open_clip's, img2dataset's and LAION-CLAP's training readers expect. Each committed part becomes one
shard, written under ``*.tar.tmp`` and renamed when complete, so every ``*.tar`` on disk is whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import webdataset as wds

from pairsynth.writers.base import WriterState, encode_media, pair_metadata, publish_shard, remove_unlisted

SHARD_MTIME = 946_684_800
"""Every tar member's modification time (2000-01-01): the time of writing would make re-runs differ, and as
a float it costs each member an extra 1 KiB PAX header."""


class WebDatasetWriter:
    """Writes accepted pairs into ``shards/shard-NNNNN.tar``, one shard per committed part."""

    name = "webdataset"

    def __init__(self, root: Path, *, image_format: str = "png", audio_format: str = "flac") -> None:
        self.dir = Path(root) / "shards"
        self.formats = {"image_format": image_format, "audio_format": audio_format}
        self._shards: list[str] = []
        self._stream: BinaryIO | None = None
        self._tar: wds.TarWriter | None = None
        self._tmp: Path | None = None

    def write(self, candidate: Any) -> None:
        if self._tar is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._tmp = self.dir / "open-shard.tar.tmp"
            self._stream = open(self._tmp, "wb")
            # Bytes in, bytes stored (no re-encoding); a fixed mtime makes a re-run's shards byte-identical.
            self._tar = wds.TarWriter(self._stream, encoder=False, mtime=SHARD_MTIME)
        meta = {**pair_metadata(candidate), "provenance": candidate.provenance}
        self._tar.write({
            "__key__": candidate.key,
            **encode_media(candidate, **self.formats),
            "txt": candidate.caption.encode("utf-8"),
            "json": json.dumps(meta, ensure_ascii=False).encode("utf-8"),
        })

    def commit(self, part: int) -> WriterState:
        """Finish the open shard (if this part accepted anything) and give it its final name."""
        if self._tar is not None:
            assert self._stream is not None and self._tmp is not None
            self._tar.close()  # writes the end-of-archive blocks and closes the stream
            name = f"shard-{part:05d}.tar"
            publish_shard(self._tmp, self.dir / name)
            self._shards.append(name)
            self._tar = self._stream = self._tmp = None
        return {"shards": list(self._shards)}

    def rollback(self, state: WriterState | None) -> None:
        """Delete temporary shards and any shard the last commit did not record."""
        self.close()
        self._shards = list(state["shards"]) if state else []
        remove_unlisted(self.dir, self._shards)

    def close(self) -> None:
        """Close an unfinished shard (its ``.tmp`` file is left for the next rollback to delete)."""
        if self._tar is not None:
            try:  # closing the tar first, so it never flushes into a closed file when collected
                self._tar.close()
            except (OSError, ValueError):
                pass
        if self._stream is not None:
            self._stream.close()
        self._tar = self._stream = None

    @property
    def shard_paths(self) -> list[Path]:
        return [self.dir / name for name in self._shards]
