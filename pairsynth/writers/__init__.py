"""Dataset writers. All share one contract (:class:`~pairsynth.writers.base.PairWriter`)."""

from pairsynth.writers.base import NullWriter, PairWriter
from pairsynth.writers.imagefolder import ImageFolderWriter
from pairsynth.writers.manifest import ManifestWriter
from pairsynth.writers.webdataset_shards import WebDatasetWriter

__all__ = ["ImageFolderWriter", "ManifestWriter", "NullWriter", "PairWriter", "WebDatasetWriter"]
