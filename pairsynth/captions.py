"""Caption sources: a list, a text file, or templates expanded over labels and attribute slots."""

from __future__ import annotations

import itertools
import logging
import string
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pairsynth.config_files import read_text_file
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
    text = read_text_file(path, "captions file")
    captions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        captions.append(check_caption(line, f"{path}:{number}"))
    if not captions:
        raise RecipeError(f"captions file {path} has no captions")
    return captions


def template_fields(template: str) -> list[str]:
    """The ``{names}`` a template uses, in order, without repeats (call :func:`check_template` first)."""
    return list(dict.fromkeys(field for _, field, _, _ in string.Formatter().parse(template) if field))


def check_template(template: str, where: str, allowed: Collection[str] | None = None) -> list[str]:
    """The fields of a ``str.format`` template, after checking it can be filled by name.

    Refused, naming ``where``: unbalanced braces, an empty ``{}`` or positional ``{0}`` field, an
    attribute or index (``{caption.upper}``, ``{caption[0]}``), a bad format spec, and, when
    ``allowed`` is given, any field not in it.

    Args:
        template: the template text.
        where: the field it came from, e.g. ``templates[0]`` or ``--caption-template``.
        allowed: the field names that will be filled; ``None``: any name.
    """
    literal = "write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise RecipeError(f"{where} {template!r}: {str(err).lower()}; {literal}") from None
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field or field.isdigit():
            raise RecipeError(f"{where} {template!r} has a {{{field}}} field, but fields are filled by name: "
                              f"write {{colour}}, {{caption}} …, or {literal}")
        if not field.isidentifier():
            raise RecipeError(f"{where} {template!r} uses {{{field}}}; a field is a plain name such as "
                              f"{{caption}} (no attributes or indexes), or {literal}")
        if allowed is not None and field not in allowed:
            raise RecipeError(f"{where} {template!r} uses {{{field}}}, but the fields it can use are: "
                              f"{', '.join('{' + name + '}' for name in sorted(allowed)) or 'none'}; {literal}")
    fields = template_fields(template)
    try:
        template.format(**{name: "x" for name in fields})
    except (ValueError, TypeError) as err:  # a format spec or conversion a text value cannot take
        raise RecipeError(f"{where} {template!r}: {err}") from None
    return fields


def expand_templates(templates: Sequence[str], slots: Mapping[str, Sequence[str]]) -> list[tuple[str, dict[str, str]]]:
    """Fill every template with every combination of the slot values it names.

    ``"a {color} {shape}"`` with ``color: [red, blue]`` and ``shape: [circle]`` gives two captions. A
    template naming a slot that is not defined raises, naming both. Each caption comes with the slot
    values that made it, so per-modality prompts of a triplet can be filled from the same draw.
    """
    captions = []
    for index, template in enumerate(templates):
        used = check_template(template, f"templates[{index}]")
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
