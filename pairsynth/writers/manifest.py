"""The manifest: one JSON line per candidate, accepted or not, and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pairsynth.writers.base import JsonlAppender, WriterState


class ManifestWriter:
    """Records every candidate (not only accepted pairs) in ``manifest.jsonl``."""

    name = "manifest"

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "manifest.jsonl"
        self._file = JsonlAppender(self.path)

    def write(self, candidate: Any) -> None:
        self._file.append(candidate.manifest_row())

    def write_row(self, row: dict[str, Any]) -> None:
        """Record something that never became a candidate (an unreadable input) with its reason."""
        self._file.append(row)

    def commit(self, part: int) -> WriterState:
        return {"bytes": self._file.commit()}

    def rollback(self, state: WriterState | None) -> None:
        self._file.truncate(state["bytes"] if state else 0)

    def close(self) -> None:
        pass

    def rows(self) -> list[dict[str, Any]]:
        """The committed rows, in the order they were written, all in memory (prefer :meth:`iter_rows`)."""
        return self._file.rows()

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """The committed rows, in the order they were written, read one at a time."""
        return self._file.iter_rows()
