"""Dataset writers. All share one contract (:class:`~pairsynth.writers.base.PairWriter`)."""

from pairsynth.writers.base import NullWriter, PairWriter
from pairsynth.writers.folder import FolderWriter
from pairsynth.writers.manifest import ManifestWriter
from pairsynth.writers.webdataset_shards import WebDatasetWriter

__all__ = ["FolderWriter", "ManifestWriter", "NullWriter", "PairWriter", "WebDatasetWriter"]
