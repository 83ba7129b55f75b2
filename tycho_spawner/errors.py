"""The project's one small error hierarchy.

Every error a person can cause (an admin's catalog, a user's form) carries the exact path of
the offending value, so the message can point at it; the spawner edge is the one place that
turns these into what the user sees (HTTP 400 for options, a SpawnException for a failed start).
"""
from __future__ import annotations

from typing import Any

#: How much of a user's value a message or log line quotes. A form field or API body can be
#: megabytes; echoing it back would amplify a bad request into a large reply and log.
SHOWN_CHARACTERS = 60


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)``, cut to ``limit`` characters and saying how long it was, for quoting
    what a user sent in an error message or a log line."""
    try:
        text = repr(value)
    except RecursionError:
        return "(a value nested too deeply to show)"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


class TychoError(Exception):
    """Base class of every error this package raises on purpose."""


class SpecError(TychoError, ValueError):
    """A value in a catalog or System description is invalid.

    ``path`` is the dotted location of the value (``catalog.rstudio.containers.app.limits.memory``)
    so that an admin can find it in a YAML file of hundreds of lines.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class CatalogError(SpecError):
    """The catalog as a whole is unusable (bad profile, unknown key, broken choice)."""


class OptionsError(TychoError, ValueError):
    """A user's spawn options do not describe something the catalog offers.

    Raised before anything is created; the spawner edge turns it into HTTP 400.
    """


class RenderError(TychoError):
    """A template failed to render or produced something that is not a manifest."""
