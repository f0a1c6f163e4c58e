"""Caption sources: a list, a text file, or templates expanded over labels and attribute slots."""

from __future__ import annotations

import itertools
import logging
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

from pairsynth.errors import RecipeError

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 2000
"""Longer text is certainly a mistake (a pasted document, a missing newline), not a caption."""


def check_caption(caption: str, where: str) -> str:
    """Return the caption stripped, or raise naming ``where`` it came from."""
    if not isinstance(caption, str):
        raise RecipeError(f"{where}: a caption must be text, got {type(caption).__name__}")
    text = caption.strip()
    if not text:
        raise RecipeError(f"{where}: empty caption")
    if len(text) > MAX_CAPTION_CHARS:
        raise RecipeError(
            f"{where}: caption is {len(text)} characters long; the limit is {MAX_CAPTION_CHARS}"
        )
    return text


def read_captions_file(path: Path) -> list[str]:
    """One caption per line; lines starting with ``#`` are comments.

    A blank line is an error naming its line number: silently skipping it would hide a broken file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"captions file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"captions file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    captions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        captions.append(check_caption(line, f"{path}:{number}"))
    if not captions:
        raise RecipeError(f"captions file {path} has no captions")
    return captions


def template_fields(template: str) -> list[str]:
    """The ``{names}`` a template uses, in order, without repeats."""
    return list(dict.fromkeys(field for _, field, _, _ in string.Formatter().parse(template) if field))


def expand_templates(templates: Sequence[str], slots: Mapping[str, Sequence[str]]) -> list[tuple[str, dict[str, str]]]:
    """Fill every template with every combination of the slot values it names.

    ``"a {color} {shape}"`` with ``color: [red, blue]`` and ``shape: [circle]`` gives two captions. A
    template naming a slot that is not defined raises, naming both. Each caption comes with the slot
    values that made it, so per-modality prompts of a triplet can be filled from the same draw.
    """
    captions = []
    for index, template in enumerate(templates):
        used = template_fields(template)
        missing = [name for name in used if name not in slots]
        if missing:
            raise RecipeError(
                f"templates[{index}] {template!r} uses {{{missing[0]}}} but the slots defined are: "
                f"{', '.join(sorted(slots)) or 'none'}"
            )
        for values in itertools.product(*(slots[name] for name in used)):
            chosen = dict(zip(used, values))
            captions.append((template.format(**chosen), chosen))
    return captions


def deduplicate(captions: Sequence[str]) -> list[str]:
    """Drop repeated captions, keeping first occurrences.

    Seeds derive from the caption text, so a repeated caption would only regenerate the same samples.
    """
    unique = list(dict.fromkeys(captions))
    if len(unique) < len(captions):
        logger.warning("dropped %d repeated captions", len(captions) - len(unique))
    return unique
