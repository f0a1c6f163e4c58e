"""Dataset writers. All share one contract (:class:`~pairsynth.writers.base.PairWriter`).

:data:`FORMATS` names every output format a recipe may list; :func:`dataset_writers` builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pairsynth.writers.base import NullWriter, PairWriter
from pairsynth.writers.class_folder import class_folder
from pairsynth.writers.folder import FolderWriter
from pairsynth.writers.manifest import ManifestWriter
from pairsynth.writers.webdataset_shards import WebDatasetWriter

WriterFactory = Callable[..., PairWriter]
"""``factory(root, *, image_format, audio_format) -> PairWriter``."""

FORMATS: dict[str, WriterFactory] = {
    "webdataset": WebDatasetWriter,
    "imagefolder": lambda root, **media: FolderWriter(root, layout="imagefolder", **media),
    "audiofolder": lambda root, **media: FolderWriter(root, layout="audiofolder", **media),
    "tripletfolder": lambda root, **media: FolderWriter(root, layout="tripletfolder", **media),
    "parquet": lambda root, **media: _parquet_writer(root, **media),
    # pairsynth balance: laid out like the dataset it fills (class subfolders or a label column)
    "balanced-imagefolder": lambda root, **media: class_folder(root, medium="image", **media),
    "balanced-audiofolder": lambda root, **media: class_folder(root, medium="audio", **media),
}


def _parquet_writer(root: Path, **media: str) -> PairWriter:
    """Imported on use: pyarrow costs every run that writes no Parquet most of a second to import."""
    from pairsynth.writers.parquet import ParquetWriter

    return ParquetWriter(root, **media)


def __getattr__(name: str):
    if name == "ParquetWriter":
        from pairsynth.writers.parquet import ParquetWriter

        return ParquetWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset_writers(root: Path, formats: Sequence[str], *, image_format: str = "png",
                    audio_format: str = "flac") -> list[PairWriter]:
    """The writers for the named output formats (``webdataset``, ``imagefolder`` …)."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output format {unknown[0]!r}; known: {', '.join(FORMATS)}")
    return [FORMATS[name](root, image_format=image_format, audio_format=audio_format) for name in formats]


__all__ = ["FORMATS", "FolderWriter", "ManifestWriter", "NullWriter", "PairWriter", "ParquetWriter", "WebDatasetWriter",
           "dataset_writers"]
