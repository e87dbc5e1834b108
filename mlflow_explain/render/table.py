"""Explanations as pandas DataFrames: the long attribution table and a per-sentence summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from mlflow_explain.explanation import TABLE_COLUMNS, Explanation, to_records
from mlflow_explain.sampling import sentence_key

__all__ = [
    "FORMULA_STARTS",
    "QUALITY_FIGURES",
    "SENTENCE_COLUMNS",
    "attribution_table",
    "sentence_table",
    "spreadsheet_safe",
    "top_words",
]

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
    "n_steps": "Int64",
    "converged": object,
}

_SENTENCE_DTYPES: dict[str, object] = {
    "key": object,
    "sentence_id": "int64",
    "text": object,
    "true_label": object,
    "predicted_label": object,
    "predicted_probability": "float64",
    "correct": object,
    "attributed_label": object,
    "attributed_probability": "float64",
    "top_words": object,
    "convergence_delta": "float64",
    "n_steps": "Int64",
    "converged": object,
    "comprehensiveness": "float64",
    "sufficiency": "float64",
    "comprehensiveness_random": "float64",
    "sufficiency_random": "float64",
    "randomization_spearman": "float64",
    "truncated": "bool",
    "n_tokens": "int64",
    "method": object,
}

SENTENCE_COLUMNS = tuple(_SENTENCE_DTYPES)
"""Columns of :func:`sentence_table`, in order."""

QUALITY_FIGURES = (
    "comprehensiveness",
    "sufficiency",
    "comprehensiveness_random",
    "sufficiency_random",
    "randomization_spearman",
)
"""Per-sentence quality figures that :func:`sentence_table` takes from its ``quality`` argument."""

TOP_WORDS = 5
"""Words in the ``top_words`` column."""

TOP_WORDS_CHARS = 512
"""Longest ``top_words`` string."""


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


def sentence_table(explanations: Sequence[Explanation], quality: Sequence | None = None) -> pd.DataFrame:
    """Summarise each sentence in one row, keyed so that runs join on it.

    Args:
        explanations: Explanations to summarise.
        quality: Per-sentence quality figures (:class:`~mlflow_explain.quality.SentenceQuality`,
            matched on ``sentence_id``); their columns are NaN without it. Defaults to None.

    Returns:
        A DataFrame with the columns of :data:`SENTENCE_COLUMNS`: ``key`` is
        :func:`~mlflow_explain.sampling.sentence_key` of the text (the same sentence has the same key
        in every run); ``correct`` is ``True``/``False``, or ``None`` where the true label is unknown;
        ``attributed_label`` is the primary attribution's label (the predicted one when it was
        attributed) and ``top_words`` its :data:`TOP_WORDS` highest-scoring words with their scores,
        best first (``独女 +0.99 · 女子 +0.13 · 会 +0.03``, at most :data:`TOP_WORDS_CHARS`
        characters); ``convergence_delta`` is that attribution's completeness error.

    Example:
        >>> sentence_table([]).columns.tolist()[:3]
        ['key', 'sentence_id', 'text']
    """
    by_sentence = {q.sentence_id: q for q in quality or ()}
    records = []
    for e in explanations:
        primary = e.primary if e.attributions else None
        figures = by_sentence.get(e.sentence_id)
        delta = primary.convergence_delta if primary is not None else None
        records.append(
            {
                "key": sentence_key(e.text),
                "sentence_id": e.sentence_id,
                "text": e.text,
                "true_label": e.true_label,
                "predicted_label": e.predicted_label,
                "predicted_probability": e.predicted_probability,
                "correct": None if e.true_label is None else e.true_label == e.predicted_label,
                "attributed_label": primary.label if primary is not None else None,
                "attributed_probability": primary.probability if primary is not None else math.nan,
                "top_words": top_words(e),
                "convergence_delta": math.nan if delta is None else delta,
                "n_steps": primary.n_steps if primary is not None else None,
                "converged": primary.converged if primary is not None else None,
                **{name: getattr(figures, name, math.nan) for name in QUALITY_FIGURES},
                "truncated": e.truncated,
                "n_tokens": e.n_tokens,
                "method": e.method,
            }
        )
    return _frame(records, SENTENCE_COLUMNS, _SENTENCE_DTYPES)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP's CSV injection list)."""


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas, for CSV files.

    A text cell that starts with one of :data:`FORMULA_STARTS` (``=HYPERLINK(...)`` typed into a
    headline, a ``-`` token) gets a leading ``'``, which spreadsheets show as text and do not evaluate.
    Numbers are left as they are; the JSON tables keep every text exactly.

    Args:
        frame: A table to write as CSV.

    Returns:
        The neutralised copy.

    Example:
        >>> spreadsheet_safe(pd.DataFrame({"token": ["=1+1", "ok"], "score": [-0.5, 0.5]})).to_dict("list")
        {'token': ["'=1+1", 'ok'], 'score': [-0.5, 0.5]}
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutralise)
    return out


def _neutralise(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def top_words(explanation: Explanation, n: int = TOP_WORDS) -> str:
    """The ``n`` highest-scoring words of the primary attribution with their scores, best first.

    Args:
        explanation: The sentence.
        n: Words to list. Defaults to :data:`TOP_WORDS`.

    Returns:
        e.g. ``独女 +0.99 · 女子 +0.13 · 会 +0.03``; words are cut to 40 characters and the string to
        :data:`TOP_WORDS_CHARS`; empty when nothing was attributed.
    """
    if not explanation.attributions:
        return ""
    words = sorted(explanation.primary.words, key=lambda w: (-w.score, w.word_index))[:n]
    text = " · ".join(f"{_short(w.word)} {w.score:+.2f}" for w in words)
    return text if len(text) <= TOP_WORDS_CHARS else text[: TOP_WORDS_CHARS - 1] + "…"


def _short(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "…"


def _frame(records: list[dict], columns: Sequence[str], dtypes: dict[str, object]) -> pd.DataFrame:
    # Column by column with an explicit dtype: inference would turn None into NaN in string columns.
    return pd.DataFrame({column: pd.Series([r[column] for r in records], dtype=dtypes[column]) for column in columns})
