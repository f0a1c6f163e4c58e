"""``--set KEY=VALUE``: change one recipe value from the command line without editing the file.

Keys are dotted paths into the recipe's mapping (``generator.steps``, ``accept.retrieval.max_rank``);
values are read as YAML scalars or flow collections (``4`` is an int, ``null`` clears a value,
``[webdataset, parquet]`` is a list), exactly as the same text would be read in the file. The
overridden mapping is then validated like the file itself, so a misspelt key or a bad value fails
with the same one-line message, prefixed by the ``--set`` that caused it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml

from pairsynth.errors import RecipeError


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``KEY=VALUE`` into the key's path and the value read as YAML.

    Raises:
        RecipeError: when there is no ``=``, a key part is empty, or the value is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(part.strip() for part in path):
        raise RecipeError(f"--set {text!r}: write KEY=VALUE with a dotted key, e.g. --set generator.steps=4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        raise RecipeError(f"--set {text!r}: the value is not valid YAML ({problem})") from None
    return [part.strip() for part in path], value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the recipe mapping ``data`` with each ``KEY=VALUE`` applied in order.

    Missing intermediate mappings are created (``--set accept.retrieval.max_rank=2`` works when the
    file has no ``accept:``); a key path that runs through a non-mapping value is an error.
    """
    result = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise RecipeError(f"--set {text!r}: {where} is {child!r}, not a mapping of keys")
            node = child
        node[path[-1]] = value
    return result


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys the overrides set, to name them when validation fails."""
    return [".".join(parse_override(text)[0]) for text in overrides]
