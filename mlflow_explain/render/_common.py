"""Helpers shared by the renderers: the display level and the units it shows."""

from __future__ import annotations

from typing import NamedTuple

from mlflow_explain.errors import ConfigError
from mlflow_explain.explanation import LabelAttribution

__all__ = ["LEVELS", "NEGATIVE_COLOR", "POSITIVE_COLOR", "Unit", "check_level", "units"]

POSITIVE_COLOR = "#2e9d4f"
"""Bar colour of a score for the label (the matplotlib plots and the Pillow bar charts)."""

NEGATIVE_COLOR = "#d64541"
"""Bar colour of a score against the label."""

LEVELS = ("token", "word")
"""Display levels: ``"token"`` shows WordPiece tokens, ``"word"`` shows merged words."""


class Unit(NamedTuple):
    """One displayed piece of a sentence: a token or a merged word."""

    text: str
    score: float
    is_special: bool


def check_level(level: str) -> str:
    """Return ``level`` if it is one of :data:`LEVELS`.

    Raises:
        ConfigError: If it is not (a ``ValueError``), naming the valid choices.
    """
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(map(repr, LEVELS))}; got {level!r}")
    return level


def units(attribution: LabelAttribution, level: str) -> list[Unit]:
    """The tokens (special tokens included) or merged words of ``attribution``, in sentence order."""
    if check_level(level) == "word":
        return [Unit(w.word, w.score, False) for w in attribution.words]
    return [Unit(t.token, t.score, t.is_special) for t in attribution.tokens]
