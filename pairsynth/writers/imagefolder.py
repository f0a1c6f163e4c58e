"""A Hugging Face ``imagefolder`` dataset: image files plus ``metadata.jsonl``.

Loads with ``datasets.load_dataset("imagefolder", data_dir=OUT/imagefolder)``; the caption is the
``text`` column, and the scores and seed come along as columns too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairsynth.writers.base import JsonlAppender, WriterState, atomic_write_bytes, encode_image

METADATA = "metadata.jsonl"


class ImageFolderWriter:
    """Writes accepted pairs as ``<key>.<ext>`` files with one metadata line each."""

    name = "imagefolder"

    def __init__(self, root: Path, *, image_format: str = "png") -> None:
        self.dir = Path(root) / "imagefolder"
        self.image_format = image_format
        self._metadata = JsonlAppender(self.dir / METADATA)

    def write(self, candidate: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        file_name = f"{candidate.key}.{self.image_format}"
        atomic_write_bytes(self.dir / file_name, encode_image(candidate.image_uint8(), self.image_format))
        self._metadata.append({"file_name": file_name, **pair_metadata(candidate)})

    def commit(self, part: int) -> WriterState:
        return {"metadata_bytes": self._metadata.commit()}

    def rollback(self, state: WriterState | None) -> None:
        """Cut ``metadata.jsonl`` back and delete image files it no longer lists."""
        self._metadata.truncate(state["metadata_bytes"] if state else 0)
        if not self.dir.exists():
            return
        listed = {row["file_name"] for row in self._metadata.rows()}
        for path in self.dir.iterdir():
            if path.name != METADATA and path.name not in listed:
                path.unlink()

    def close(self) -> None:
        pass


def pair_metadata(candidate: Any) -> dict[str, Any]:
    """The flat per-pair columns both dataset formats carry (the manifest has the full record)."""
    scores = candidate.scores
    return {
        "text": candidate.caption,
        "key": candidate.key,
        "seed": candidate.condition.seed,
        "model": candidate.provenance.get("model"),
        "clip_score": round(scores.clip_score, 4) if scores else None,
        "clip_cosine": round(scores.cosine, 6) if scores else None,
    }
