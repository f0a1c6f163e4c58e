"""The output directory's lock and its commit point, ``progress.json``.

``progress.json`` is replaced atomically after every part, so it always describes a consistent state:
how many parts are committed and, per writer, what rolling back to that point needs. Anything on disk
beyond it is the unfinished part of a killed run, removed by the writers' ``rollback`` at resume.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collections.abc import Sequence

from filelock import FileLock, Timeout

from pairsynth.errors import OutputDirError
from pairsynth.writers.base import PairWriter, atomic_write_bytes, fsync_dir

PROGRESS = "progress.json"
LOCK = ".pairsynth.lock"
FORMAT_VERSION = 1


@dataclass(kw_only=True)
class Progress:
    """What has been committed to an output directory."""

    fingerprint: str
    parts: int = 0
    writers: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    format_version: int = FORMAT_VERSION


class OutputDir:
    """An output directory that one run at a time may write to."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @contextmanager
    def locked(self) -> Iterator[OutputDir]:
        """Hold the directory's lock; a second run on it is refused at once.

        The lock is an ``flock`` on ``.pairsynth.lock``: the kernel releases it when the process dies,
        so a ``kill -9`` never leaves a stale lock behind.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise OutputDirError(
                f"another pairsynth run is writing to {self.root} (its lock {self.root / LOCK} is held); "
                "wait for it to finish or choose another --out"
            ) from None
        try:
            yield self
        finally:
            lock.release()

    def load_progress(self, fingerprint: str, *, overwrite: bool = False) -> Progress:
        """The committed progress, or a fresh one; refuses a directory written by another recipe."""
        path = self.root / PROGRESS
        if not path.exists() or overwrite:
            return Progress(fingerprint=fingerprint)
        try:
            data = json.loads(path.read_text())
            progress = Progress(**data)
        except (ValueError, TypeError) as err:
            raise OutputDirError(f"{path} is unreadable ({err}); remove it or use --overwrite") from None
        if progress.fingerprint != fingerprint:
            raise OutputDirError(
                f"{self.root} holds the output of a different recipe (fingerprint {progress.fingerprint}, "
                f"this recipe {fingerprint}); use another --out, or --overwrite to start it afresh"
            )
        return progress

    def restore(self, progress: Progress, writers: Sequence[PairWriter]) -> None:
        """Return every writer to the last commit: drop what a killed run left unfinished."""
        with disk_errors(self.root):
            remove_stale_temporaries(self.root)
            for writer in writers:
                writer.rollback(progress.writers.get(writer.name))

    def commit(self, progress: Progress, writers: Sequence[PairWriter]) -> None:
        """Make the writers' current part durable, then record it in ``progress.json``."""
        with disk_errors(self.root):
            progress.writers = {writer.name: writer.commit(progress.parts) for writer in writers}
            progress.parts += 1
            self.save_progress(progress)

    def finish(self, progress: Progress, writers: Sequence[PairWriter]) -> None:
        """Mark the run complete (a later run with the same recipe has nothing to do) and close up."""
        progress.complete = True
        self.save_progress(progress)
        for writer in writers:
            writer.close()

    def save_progress(self, progress: Progress) -> None:
        """Atomically record a commit: the single point at which a part becomes part of the output."""
        with disk_errors(self.root):
            atomic_write_bytes(self.root / PROGRESS, json.dumps(asdict(progress), indent=1).encode())
            fsync_dir(self.root)


@contextmanager
def disk_errors(root: Path) -> Iterator[None]:
    """Turn a full disk into a clear error that says the output is still valid and resumable."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputDirError(
                f"no space left while writing to {root} ({err.filename or 'a file'}); the output stays "
                "valid at its last commit: free some space and run the same command to resume"
            ) from err
        raise


def remove_stale_temporaries(root: Path) -> None:
    """Delete ``*.tmp`` files a killed run left beside the committed ones."""
    for path in root.rglob("*.tmp"):
        path.unlink()
