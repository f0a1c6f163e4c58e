"""Parquet shards in the Hugging Face Hub's native layout: media as embedded bytes, typed by ``datasets``.

``parquet/train-NNNNN.parquet`` holds one row per accepted pair: an ``image`` and/or ``audio`` column
(``struct<bytes: binary, path: string>``, the storage of ``datasets.Image()`` / ``datasets.Audio()``),
the caption as ``text``, and key, seed, model and scores. The schema's ``huggingface`` metadata names
those features, so ``datasets.load_dataset("parquet", data_dir=OUT/parquet)`` decodes the media
without a ``cast_column``, ``push_to_hub`` uploads the files as they are, and the Hub's viewer shows
them. pyarrow writes the files; ``datasets`` is not needed to write them.

Each committed part becomes one shard, written as ``open-shard.parquet.tmp`` in row groups of
:data:`ROW_GROUP_ROWS` pairs (the Hub's choice for media datasets, so a reader fetches a few pairs at
a time) and renamed when complete: every ``*.parquet`` on disk is whole, and a resume deletes any
shard the last commit did not record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pairsynth.media import MEDIA
from pairsynth.writers.base import WriterState, encode_media, pair_metadata, publish_shard, remove_unlisted

ROW_GROUP_ROWS = 100
MEDIA_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_FEATURE_TYPES = {"image": "Image", "audio": "Audio"}


class ParquetWriter:
    """Writes accepted pairs into ``parquet/train-NNNNN.parquet``, one shard per committed part."""

    name = "parquet"

    def __init__(self, root: Path, *, image_format: str = "png", audio_format: str = "flac") -> None:
        self.dir = Path(root) / "parquet"
        self.formats = {"image_format": image_format, "audio_format": audio_format}
        self._extensions = {"image": image_format, "audio": audio_format}
        self._shards: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._schema: pa.Schema | None = None
        self._file: pq.ParquetWriter | None = None
        self._tmp = self.dir / "open-shard.parquet.tmp"

    def write(self, candidate: Any) -> None:
        encoded = encode_media(candidate, **self.formats)
        row: dict[str, Any] = {}
        for medium in MEDIA:
            if getattr(candidate, medium) is not None:
                extension = self._extensions[medium]
                row[medium] = {"bytes": encoded[extension], "path": f"{candidate.key}.{extension}"}
        row.update(pair_metadata(candidate))
        self._rows.append(row)
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def commit(self, part: int) -> WriterState:
        """Finish the open shard (if this part accepted anything) and give it its final name."""
        self._flush()
        if self._file is not None:
            self._file.close()
            name = f"train-{part:05d}.parquet"
            publish_shard(self._tmp, self.dir / name)
            self._shards.append(name)
            self._file = None
        return {"shards": list(self._shards)}

    def rollback(self, state: WriterState | None) -> None:
        """Delete the open shard and any shard the last commit did not record."""
        self.close()
        self._rows.clear()
        self._shards = list(state["shards"]) if state else []
        remove_unlisted(self.dir, self._shards)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None

    @property
    def shard_paths(self) -> list[Path]:
        return [self.dir / name for name in self._shards]

    def _flush(self) -> None:
        """Append the buffered rows to the open shard as one row group."""
        if not self._rows:
            return
        if self._schema is None:
            self._schema = shard_schema(self._rows[0])
        if self._file is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._file = pq.ParquetWriter(self._tmp, self._schema)
        self._file.write_table(pa.Table.from_pylist(self._rows, schema=self._schema), row_group_size=ROW_GROUP_ROWS)
        self._rows.clear()


def shard_schema(row: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of a run's shards, with the ``datasets`` features in its metadata.

    Media columns are ``Image``/``Audio`` structs; text is a string; every other column takes the type
    of its first value (``None``: string), so all shards of a run share one schema.
    """
    fields, features = [], {}
    for name, value in row.items():
        if name in _FEATURE_TYPES:
            fields.append(pa.field(name, MEDIA_TYPE))
            features[name] = {"_type": _FEATURE_TYPES[name]}
            continue
        arrow_type = _arrow_type(value)
        fields.append(pa.field(name, arrow_type))
        features[name] = {"dtype": _DTYPE_NAMES[arrow_type], "_type": "Value"}
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=metadata)


_DTYPE_NAMES = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64", pa.bool_(): "bool"}


def _arrow_type(value: Any) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()
