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
    """Parse a YAML file; a file that cannot be read as YAML text is a :class:`RecipeError` naming ``what`` it is."""
    path = Path(path)
    try:
        return yaml.safe_load(read_text_file(path, what))
    except yaml.YAMLError as err:
        # PyYAML's message spans lines (the problem, then a marked copy of the line); keep it on one
        detail = " ".join(str(err).split())
        raise RecipeError(f"{path}: not valid YAML: {detail}") from None


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 text file's contents; every way it can fail is a :class:`RecipeError` naming ``what`` it is."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise RecipeError(f"{what} {path} is a folder; give the path of a {what} file") from None
    except PermissionError:
        raise RecipeError(f"{what} {path} cannot be read: permission denied") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                          f"a {what} is a YAML or text file") from None
    except OSError as err:
        raise RecipeError(f"{what} {path} cannot be read: {err.strerror or err}") from None


_MESSAGES = {"extra_forbidden": "unknown key"}
_NOT_BOOL = {"int_type": "expected a whole number", "float_type": "expected a number"}


def describe_error(error: dict[str, Any], source: str, *, location: Sequence[Any] | None = None,
                   message: str | None = None) -> str:
    """One pydantic error as one line; ``location``/``message`` override pydantic's own."""
    loc = list(error["loc"] if location is None else location)
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    text = message or _MESSAGES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
    if error["type"] in _NOT_BOOL and isinstance(error.get("input"), bool):  # YAML's true/false/yes/no
        text = f"{_NOT_BOOL[error['type']]}, not {str(error['input']).lower()}"
    # Missing and unknown keys have no value worth repeating; validators' own messages already name it.
    quiet = not loc or error["type"] in ("missing", "extra_forbidden", "value_error") or "input" not in error
    shown = "" if quiet else f" (got {error['input']!r})"
    return f"{source}: {where}: {text}{shown}" if where else f"{source}: {text}{shown}"
