"""Caption rules: what a transform does to the words of a caption.

A transform that changes what a caption describes must change the caption too, or the pair stops
being aligned: a mirrored image of "a red circle on the left" shows a circle on the right. A rule is
data, not code, so a recipe can list it and a manifest can record it:

* ``swaps`` — words replaced in one pass (``{"left": "right", "right": "left"}``), so a caption
  with both words swaps them rather than turning both into one;
* ``invalidates`` — words the transform makes untrue and cannot fix (a hue shift and ``"red"``);
  the transform's ``on_invalid`` policy then skips the transform, drops the pair or flags it;
* ``when`` — an optional condition on the drawn parameters (``semitones >= 12``), so one table can
  say "an octave up turns *low* into *high*" without touching smaller shifts.

Matching is by whole word, case-insensitive, and keeps the case of the word it replaces
(``Left`` → ``Right``, ``LEFT`` → ``RIGHT``). A word is a run of letters, digits and ``_``; a hyphen
separates words, so ``left-hand`` becomes ``right-hand`` and ``top-left`` becomes ``top-right``
(mirroring really does move a left hand to the right), while ``leftover``, ``lefty`` and ``bright``
never match. Rules see words, not meaning: ``"he left"`` would become ``"he right"``; give a
transform your own table (``default_rules=False``) where captions use such senses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _normalise(word: str) -> str:
    return " ".join(word.lower().split())


@dataclass(frozen=True, kw_only=True)
class When:
    """A condition on one drawn parameter: the rule fires only while it holds.

    Attributes:
        param: the parameter's name in the transform's params (``"semitones"``, ``"hue"``).
        at_least: fires when the value is ``>= at_least`` (``None``: no lower bound).
        at_most: fires when the value is ``<= at_most`` (``None``: no upper bound).
        absolute: compare ``abs(value)``, for symmetric draws such as a hue rotation.
    """

    param: str
    at_least: float | None = None
    at_most: float | None = None
    absolute: bool = False

    def __post_init__(self) -> None:
        if self.at_least is None and self.at_most is None:
            raise ValueError(f"When(param={self.param!r}) needs at_least, at_most or both")

    def holds(self, params: Mapping[str, Any]) -> bool:
        """Whether the drawn ``params`` satisfy the condition.

        Raises:
            ValueError: If the transform draws no parameter of this name (a misspelt rule would
                otherwise never fire, silently).
        """
        if self.param not in params:
            raise ValueError(f"caption rule condition names param {self.param!r}; this transform draws "
                             f"{sorted(params) or 'no params'}")
        value = float(params[self.param])
        value = abs(value) if self.absolute else value
        above = self.at_least is None or value >= self.at_least
        below = self.at_most is None or value <= self.at_most
        return above and below

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "at_least": self.at_least, "at_most": self.at_most, "absolute": self.absolute}


@dataclass(frozen=True)
class CaptionRule:
    """One row of a transform's caption table: swaps, invalidated words and when they apply.

    Keys and words are matched case-insensitively as whole words (see the module docstring); a
    multi-word key (``"top left"``) matches any whitespace between its words.

    Attributes:
        swaps: word → replacement, applied in a single pass. Not symmetric by itself; build a
            two-way table with :func:`symmetric`.
        invalidates: words the transform makes untrue and cannot rewrite.
        when: the condition on the drawn params; ``None`` fires on every draw.
    """

    swaps: Mapping[str, str] = field(default_factory=dict)
    invalidates: tuple[str, ...] = ()
    when: When | None = None

    def __post_init__(self) -> None:
        swaps = {}
        for key, value in dict(self.swaps).items():
            if not isinstance(key, str) or not isinstance(value, str) or not key.strip() or not value.strip():
                raise ValueError(f"CaptionRule.swaps: {key!r} → {value!r}; both must be non-empty strings")
            swaps[_normalise(key)] = value
        invalidates = tuple(dict.fromkeys(_normalise(word) for word in self.invalidates))
        if any(not word for word in invalidates):
            raise ValueError("CaptionRule.invalidates: words must be non-empty")
        both = sorted(set(swaps) & set(invalidates))
        if both:
            raise ValueError(f"CaptionRule: {both} both swapped and invalidated; choose one")
        object.__setattr__(self, "swaps", MappingProxyType(swaps))
        object.__setattr__(self, "invalidates", invalidates)

    def fires(self, params: Mapping[str, Any]) -> bool:
        """Whether this rule applies to a draw with these params."""
        return self.when is None or self.when.holds(params)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form; :meth:`from_dict` reads it back."""
        return {"swaps": dict(self.swaps), "invalidates": list(self.invalidates),
                "when": self.when.to_dict() if self.when else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaptionRule:
        """The rule a :meth:`to_dict` (or a recipe's ``rules:`` entry) describes."""
        unknown = sorted(set(data) - {"swaps", "invalidates", "when"})
        if unknown:
            raise ValueError(f"caption rule: unknown keys {unknown}; accepted: swaps, invalidates, when")
        when = data.get("when")
        return cls(swaps=dict(data.get("swaps") or {}), invalidates=tuple(data.get("invalidates") or ()),
                   when=When(**when) if when else None)


def symmetric(pairs: Mapping[str, str]) -> dict[str, str]:
    """A two-way swap table from one-way pairs: ``{"left": "right"}`` → both directions.

    Raises:
        ValueError: If a word would need two different replacements.
    """
    table: dict[str, str] = {}
    for a, b in pairs.items():
        for key, value in ((a, b), (b, a)):
            if _normalise(key) in table and table[_normalise(key)] != value:
                raise ValueError(f"symmetric: {key!r} maps to both {table[_normalise(key)]!r} and {value!r}")
            table[_normalise(key)] = value
    return table


@dataclass(frozen=True, kw_only=True)
class CaptionEdit:
    """What the fired rules did to one caption.

    Attributes:
        before: the caption as it came in.
        after: the caption with every swap applied.
        swaps: ``(found, replacement)`` per replaced word, in caption order, case as written.
        invalidated: words of the caption that a fired rule says the draw makes untrue.
    """

    before: str
    after: str
    swaps: tuple[tuple[str, str], ...] = ()
    invalidated: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.after != self.before


def edit_caption(caption: str, rules: Iterable[CaptionRule], params: Mapping[str, Any]) -> CaptionEdit:
    """Apply every rule that fires for ``params`` to ``caption`` in one pass.

    The swap tables of the fired rules are merged (a later rule's entry wins), so a caption is
    rewritten exactly once however many rules fire; two passes would swap ``left`` back.
    """
    swaps: dict[str, str] = {}
    invalidates: list[str] = []
    for rule in rules:
        if rule.fires(params):
            swaps.update(rule.swaps)
            invalidates.extend(rule.invalidates)
    done: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        replacement = _match_case(found, swaps[_normalise(found)])
        done.append((found, replacement))
        return replacement

    after = _pattern(tuple(swaps)).sub(replace, caption) if swaps else caption
    return CaptionEdit(before=caption, after=after, swaps=tuple(done),
                       invalidated=tuple(find_words(caption, invalidates)))


def find_words(caption: str, words: Sequence[str]) -> list[str]:
    """The occurrences of ``words`` in ``caption`` (whole words, case-insensitive), as written."""
    if not words:
        return []
    return [match.group(0) for match in _pattern(tuple(_normalise(w) for w in words)).finditer(caption)]


@functools.lru_cache(maxsize=256)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first: at one position the regex takes the first alternative that matches, so
    # "counter-clockwise" must be tried before "clockwise" (which it contains).
    alternatives = sorted(set(words), key=lambda w: (-len(w), w))
    body = "|".join(r"\s+".join(re.escape(part) for part in word.split()) for word in alternatives)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def _match_case(found: str, replacement: str) -> str:
    """Write ``replacement`` in the case of ``found``: lower, Capitalised, Title Case or UPPER."""
    if found.isupper() and sum(c.isalpha() for c in found) > 1:
        return replacement.upper()
    if found.istitle() and len(re.findall(r"[A-Za-z]+", found)) > 1:
        return replacement.title()
    if found[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


# The default tables. Mirroring also reverses the sense of a rotation, hence "clockwise".
_ROTATION = {"clockwise": "counterclockwise", "counterclockwise": "clockwise", "counter-clockwise": "clockwise",
             "anticlockwise": "clockwise", "anti-clockwise": "clockwise"}
LEFT_RIGHT = CaptionRule(swaps={
    **symmetric({"left": "right", "leftmost": "rightmost", "leftward": "rightward", "leftwards": "rightwards"}),
    **_ROTATION,
})
"""Horizontal flip: left ↔ right (and leftmost, leftward(s)); clockwise ↔ counterclockwise."""

TOP_BOTTOM = CaptionRule(swaps={
    **symmetric({"top": "bottom", "topmost": "bottommost", "above": "below", "upper": "lower",
                 "uppermost": "lowermost"}),
    **_ROTATION,
})
"""Vertical flip: top ↔ bottom, above ↔ below, upper ↔ lower; clockwise ↔ counterclockwise."""

PITCH_UP = CaptionRule(swaps={"low": "high", "lower": "higher", "lowest": "highest"},
                       when=When(param="semitones", at_least=12.0))
"""Pitch shifted up by an octave or more: low → high. Smaller shifts leave pitch words alone."""

PITCH_DOWN = CaptionRule(swaps={"high": "low", "higher": "lower", "highest": "lowest"},
                         when=When(param="semitones", at_most=-12.0))
"""Pitch shifted down by an octave or more: high → low."""

COLOUR_WORDS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "cyan", "magenta",
    "teal", "turquoise", "indigo", "crimson", "scarlet", "gold", "golden", "beige", "maroon", "navy", "lime",
)
"""Hue words: a hue rotation or a desaturation can make any of them untrue."""

HUE_CHANGE = CaptionRule(invalidates=COLOUR_WORDS, when=When(param="hue", at_least=0.05, absolute=True))
"""A hue rotation of 0.05 turn (18°) or more may move a named colour to its neighbour."""

DESATURATION = CaptionRule(invalidates=COLOUR_WORDS, when=When(param="saturation", at_most=0.3))
"""Saturation scaled to 0.3 or less turns colours towards grey."""
