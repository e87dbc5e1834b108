"""Explanations as pandas DataFrames: the long attribution table and a per-sentence summary."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mlflow_explain.explanation import TABLE_COLUMNS, Explanation, to_records

__all__ = ["SENTENCE_COLUMNS", "attribution_table", "sentence_table"]

_TOP_WORDS = 3

# Strings are kept as ``object`` so that a missing label stays ``None`` under pandas 2 and 3 alike.
_TABLE_DTYPES: dict[str, object] = {
    "sentence_id": "int64",
    "text": object,
    "true_label": object,
    "predicted_label": object,
    "predicted_probability": "float64",
    "attributed_label": object,
    "position": "int64",
    "token": object,
    "attribution": "float64",
    "word_index": "int64",
    "word": object,
    "is_special": "bool",
    "convergence_delta": "float64",
    "truncated": "bool",
}

_SENTENCE_DTYPES: dict[str, object] = {
    "sentence_id": "int64",
    "text": object,
    "true_label": object,
    "predicted_label": object,
    "predicted_probability": "float64",
    "correct": object,
    "truncated": "bool",
    "n_tokens": "int64",
    "method": object,
    "top_tokens": object,
}

SENTENCE_COLUMNS = tuple(_SENTENCE_DTYPES)
"""Columns of :func:`sentence_table`, in order."""


def attribution_table(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """Build the long attribution table: one row per sentence x attributed label x token.

    Args:
        explanations: Explanations to tabulate.

    Returns:
        A DataFrame with the columns of :data:`~mlflow_explain.explanation.TABLE_COLUMNS` in that
        order and the same dtypes whatever the input (an empty input gives an empty frame).
        ``convergence_delta`` is ``NaN`` where the method has none; a missing ``true_label`` is ``None``.

    Example:
        >>> attribution_table([]).columns.tolist()[:3]
        ['sentence_id', 'text', 'true_label']
    """
    return _frame(to_records(explanations), TABLE_COLUMNS, _TABLE_DTYPES)


def sentence_table(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """Summarise each sentence in one row.

    Args:
        explanations: Explanations to summarise.

    Returns:
        A DataFrame with the columns of :data:`SENTENCE_COLUMNS`. ``correct`` is ``True``/``False``,
        or ``None`` where the true label is unknown; ``top_tokens`` holds the three highest-scoring
        words of the primary attribution (special tokens left out), best first, joined with a space.

    Example:
        >>> sentence_table([]).columns.tolist()[-2:]
        ['method', 'top_tokens']
    """
    records = [
        {
            "sentence_id": e.sentence_id,
            "text": e.text,
            "true_label": e.true_label,
            "predicted_label": e.predicted_label,
            "predicted_probability": e.predicted_probability,
            "correct": None if e.true_label is None else e.true_label == e.predicted_label,
            "truncated": e.truncated,
            "n_tokens": e.n_tokens,
            "method": e.method,
            "top_tokens": _top_words(e),
        }
        for e in explanations
    ]
    return _frame(records, SENTENCE_COLUMNS, _SENTENCE_DTYPES)


def _top_words(explanation: Explanation) -> str:
    if not explanation.attributions:
        return ""
    words = sorted(explanation.primary.words, key=lambda w: (-w.score, w.word_index))
    return " ".join(w.word for w in words[:_TOP_WORDS])


def _frame(records: list[dict], columns: Sequence[str], dtypes: dict[str, object]) -> pd.DataFrame:
    # Column by column with an explicit dtype: inference would turn None into NaN in string columns.
    return pd.DataFrame({column: pd.Series([r[column] for r in records], dtype=dtypes[column]) for column in columns})
