"""``pairsynth init``: commented starter recipes that run offline as written (toy zoo models).

The starters live in ``pairsynth/examples/starters/`` as plain YAML with comments on every key, so
``init`` copies bytes rather than generating text, and the tests load and run the same files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pairsynth.errors import PairsynthError, RecipeError

STARTERS = Path(__file__).parent / "examples" / "starters"
KINDS = ("image", "audio", "triplet")


def starter_path(kind: str) -> Path:
    """The shipped starter recipe of a kind (``image``, ``audio`` or ``triplet``)."""
    if kind not in KINDS:
        raise RecipeError(f"no starter recipe {kind!r}; use one of: {', '.join(KINDS)}")
    return STARTERS / f"{kind}.yaml"


def write_starter(kind: str, out: str | Path, *, force: bool = False) -> Path:
    """Copy the starter recipe of ``kind`` to ``out``; an existing file is kept unless ``force``."""
    source, out = starter_path(kind), Path(out)
    if out.exists() and not force:
        raise PairsynthError(f"{out} already exists; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    return out
