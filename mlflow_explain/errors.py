"""Errors raised by mlflow-explain.

Every error says what went wrong and what to do about it. Callers catch
:class:`MlflowExplainError` to handle them all; the CLI turns them into a one-line
message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "ComparisonError",
    "ConfigError",
    "DataError",
    "ExplanationError",
    "MlflowExplainError",
    "ModelError",
    "TimeBudgetExceeded",
    "TrackingError",
]


class MlflowExplainError(Exception):
    """Base class of every error raised on purpose by mlflow-explain."""


class ConfigError(MlflowExplainError, ValueError):
    """A setting is out of range or names an unknown choice."""


class DataError(MlflowExplainError):
    """A data set cannot be read or does not fit the task (missing column, one class, ...)."""


class ModelError(MlflowExplainError):
    """A model cannot be loaded, built or does not fit the data (label mismatch, ...)."""


class ExplanationError(MlflowExplainError):
    """Attributions cannot be computed for the given inputs."""


class TrackingError(MlflowExplainError):
    """The MLflow tracking store cannot be reached or refused a write."""


class ComparisonError(MlflowExplainError):
    """Explanations cannot be compared: unknown run, missing attribution table, different samples, ..."""


class TimeBudgetExceeded(ExplanationError):
    """The work of a call ran past its :func:`mlflow_explain.attribution.time_budget`; nothing of it is returned.

    Args:
        seconds: The budget that ran out.
    """

    def __init__(self, seconds: float):
        super().__init__(
            f"the explanation ran past its time budget of {seconds:g} s; explain fewer texts or use fewer steps "
            "per call, or give it a larger budget."
        )
        self.seconds = seconds
