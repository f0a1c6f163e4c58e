"""A folder dataset laid out like the one ``pairsynth balance`` filled: merge it by copying it over.

Each pair goes where the source's pairs of its class are: ``<class>/<key>.<ext>`` when the source
kept classes in subfolders, else ``<key>.<ext>``; its ``metadata.jsonl`` row carries the class in
the source's label column (when it had one), the caption, ``synthetic: true`` and the pair's lineage
(which class it fills, the prompt, the concept used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairsynth.writers.base import encode_media, pair_metadata, write_bytes
from pairsynth.writers.folder import METADATA, FolderWriter


class ClassFolderWriter(FolderWriter):
    """Writes accepted pairs into class subfolders (or flat), with ``label``/``synthetic``/``source`` columns.

    What a candidate's class and the source layout are comes from ``candidate.lineage["balance"]``:
    ``{"class", "subfolder", "label_column"}``.
    """

    def write(self, candidate: Any) -> None:
        layout = candidate.lineage["balance"]
        extension = self.formats[self.media[0]]
        name = f"{candidate.key}.{extension}"
        if layout["subfolder"]:
            name = f"{layout['subfolder']}/{name}"
        (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(self.dir / name, encode_media(candidate, **{f"{m}_format": f for m, f in self.formats.items()})[extension])
        self._unsynced.append(self.dir / name)  # made durable, all at once, by the commit
        label = {layout["label_column"]: layout["class"]} if layout["label_column"] else {}
        lineage = {k: v for k, v in candidate.lineage.items() if k != "balance"}
        self._metadata.append({"file_name": name, **label, **pair_metadata(candidate), "synthetic": True,
                               "source": {"class": layout["class"], **lineage}})

    def rollback(self, state: dict[str, Any] | None) -> None:
        """Cut ``metadata.jsonl`` back and delete media files (in any subfolder) it no longer lists."""
        self._metadata.truncate(state["metadata_bytes"] if state else 0)
        self._unsynced.clear()
        if not self.dir.exists():
            return
        listed = {row["file_name"] for row in self._metadata.iter_rows()}
        for path in sorted(self.dir.rglob("*"), reverse=True):
            relative = path.relative_to(self.dir).as_posix()
            if path.is_file() and relative != METADATA and relative not in listed:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def class_folder(root: Path, *, medium: str, **media: Any) -> ClassFolderWriter:
    return ClassFolderWriter(root, layout=f"{medium}folder", **media)
