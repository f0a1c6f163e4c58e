"""The exceptions pairsynth raises for problems a user can fix.

Each carries a message meant to be printed as-is: it names the file, field or item at fault and
what would be accepted. The CLI prints these without a traceback; anything else is a bug.
"""

from __future__ import annotations


class PairsynthError(Exception):
    """Base class of the errors a user can act on."""


class RecipeError(PairsynthError, ValueError):
    """A recipe (or a captions file it names) is invalid.

    A ``ValueError`` too, so that pydantic reports it like any other validation problem.
    """


class ModelRefError(PairsynthError):
    """A model reference names nothing that can be loaded."""


class OutputDirError(PairsynthError):
    """The output directory cannot be used: locked, written by another recipe, or out of space."""


class ConceptError(PairsynthError, ValueError):
    """A concept's source items, token or folder cannot be used (pairsynth learn-concept, recipes' concepts:)."""
