"""Reading YAML configs and turning pydantic's validation errors into one line per problem.

Recipes, augmentation configs and ``vary`` settings all report mistakes the same way:
``SOURCE: field.path[index]: what is wrong (got VALUE)``, so a user can find the line at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pairsynth.errors import RecipeError


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML file; a missing file or bad YAML is a :class:`RecipeError` naming ``what`` it is."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{what} {path} does not exist") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None


def describe_error(error: dict[str, Any], source: str, *, location: Sequence[Any] | None = None,
                   message: str | None = None) -> str:
    """One pydantic error as one line; ``location``/``message`` override pydantic's own."""
    loc = list(error["loc"] if location is None else location)
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    text = message or ("unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, "))
    # Missing and unknown keys have no value worth repeating; validators' own messages already name it.
    quiet = not loc or error["type"] in ("missing", "extra_forbidden", "value_error") or "input" not in error
    shown = "" if quiet else f" (got {error['input']!r})"
    return f"{source}: {where}: {text}{shown}" if where else f"{source}: {text}{shown}"
