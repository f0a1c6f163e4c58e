"""The demo: the shipped example recipes, run on the toy zoo."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent / "examples"
DEMO_RECIPES = ("shapes", "sounds")
"""Image–caption and audio–caption pairs; ``triplets.yaml`` ships beside them for a longer try."""


def recipe_path(name: str) -> Path:
    """A recipe shipped inside the package (``shapes``, ``sounds``, ``triplets``)."""
    path = EXAMPLES / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
        raise FileNotFoundError(f"no example recipe {name!r}; shipped: {known}")
    return path
