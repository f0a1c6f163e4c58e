"""The exceptions pairsynth raises for problems a user can fix, and how text from data is shown safely.

Each exception carries a message meant to be printed as-is: it names the file, field or item at fault
and what would be accepted. The CLI prints these as one ``error: …`` line and exits 2; anything else
is a bug (exit 1, with ``--verbose`` printing the traceback).
"""

from __future__ import annotations

import re


class PairsynthError(Exception):
    """Base class of the errors a user can act on."""


class RecipeError(PairsynthError, ValueError):
    """A recipe (or a captions file it names), or a command's settings, is invalid.

    A ``ValueError`` too, so that pydantic reports it like any other validation problem.
    """


class ModelRefError(PairsynthError):
    """A model reference names nothing that can be loaded, or a model of the wrong kind."""


class OutputDirError(PairsynthError):
    """The output directory cannot be used: a file, not writable, locked, another recipe's, or out of space."""


class DatasetError(PairsynthError):
    """A dataset as a whole cannot be read: missing, no known layout, or not one readable pair."""


# C0/C1 control characters (ANSI escapes start with ESC, \x1b) and the bidirectional overrides that
# can make text display in a different order than it is stored ("Trojan source").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``, ``\\u202e``), safe for a terminal.

    File names, keys and captions come from datasets nobody here wrote; printed raw, an ANSI escape
    in one could recolour, rewrite or hide what the terminal shows.
    """
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), str(text))


class ConceptError(PairsynthError, ValueError):
    """A concept's source items, token or folder cannot be used (pairsynth learn-concept, recipes' concepts:)."""
