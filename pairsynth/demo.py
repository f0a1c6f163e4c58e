"""The demo: the shipped example recipes, run on the toy zoo."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent / "examples"


def demo_recipe_path() -> Path:
    """The image–caption demo recipe shipped inside the package."""
    return EXAMPLES / "shapes.yaml"
