"""Whether a tar shard is whole, and if not, which sample the damage falls in: from its headers alone.

Python's ``tarfile`` (and so webdataset, which reads shards through it) takes a header cut short, or
one that fails its checksum, for the end of the archive and stops without a word; a member cut short
fails only while its data is read, and then twice (once per layer). A whole tar ends with an
end-of-archive marker (two zero blocks) after its last member, so a shard is whole exactly when that
marker follows the last member its headers list. Counting the damage once, named after its sample,
keeps the share of readable pairs that ``score --fail-under`` gates on honest.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True, kw_only=True)
class ShardDamage:
    """Where a shard is damaged.

    Attributes:
        reason: for people: ``damaged shard a.tar: cut short inside k2.png (30 of 3090 bytes)``.
        key: the sample of the last member the headers list (``None``: none, or not known).
        certain: whether that sample is certainly incomplete (a member cut inside its data), or only
            may be (the cut fell between members: the sample is kept when it reads whole).
        error: the exception's class when one caused it.
    """

    reason: str
    key: str | None
    certain: bool
    error: str | None = None


def scan_shard(shard: Path, name: str) -> ShardDamage | None:
    """Walk a shard's tar headers (no member data is read); ``None`` when it is whole.

    Args:
        shard: the ``.tar`` file.
        name: how reasons name it (relative to the dataset folder).

    Raises:
        OSError: the file cannot be read at all.
    """
    size = shard.stat().st_size
    last: tarfile.TarInfo | None = None
    stopped = ""  # why tarfile stopped early, when it said
    try:
        with tarfile.open(shard, "r:") as tar:
            while (member := tar.next()) is not None:
                last = member
    except tarfile.ReadError as err:
        stopped = str(err)
        if last is None:
            if tarfile.is_tarfile(shard):  # a compressed tar: its offsets are not the file's; webdataset reads it
                return None
            return ShardDamage(reason=f"not a tar archive: {name} ({size} bytes)", key=None, certain=True,
                               error=type(err).__name__)
    if last is None:
        return None if size >= 2 * _BLOCK else ShardDamage(reason=f"not a tar archive: {name} ({size} bytes)", key=None,
                                                           certain=True)
    key = member_key(last.name)
    end = last.offset_data + last.size
    if end > size:
        return ShardDamage(reason=f"damaged shard {name}: cut short inside {last.name} ({size - last.offset_data} of "
                                  f"{last.size} bytes)", key=key, certain=True)
    marker_at = -(-end // _BLOCK) * _BLOCK
    with open(shard, "rb") as handle:
        handle.seek(marker_at)
        marker = handle.read(2 * _BLOCK)
    if marker == bytes(2 * _BLOCK):
        return None
    # a cut in a header (or in the extended header before it) ends the file within a member's headers;
    # anything else is a header that fails its checksum
    cut = (any(words in stopped for words in ("end of data", "empty header", "truncated header"))
           or size - marker_at < _BLOCK or not marker.strip(b"\0"))
    what = "cut short" if cut else "a broken tar header"
    return ShardDamage(reason=f"damaged shard {name}: {what} after {last.name} (byte {marker_at}); any later "
                              "samples are lost", key=key, certain=False)


def member_key(member: str) -> str | None:
    """The sample key webdataset gives a member: its path up to the first dot of its file name."""
    from webdataset.tariterators import base_plus_ext

    return base_plus_ext(member)[0]
