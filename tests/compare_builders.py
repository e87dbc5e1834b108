"""Hand-built explanations and attribution tables for the comparison tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, word_indices
from mlflow_explain.render import attribution_table

SPECIAL_SCORE = 9.0
"""Score given to [CLS] and [SEP]: large, so that a comparison that counted them would show it."""


def explanation(
    sentence_id: int,
    tokens: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    *,
    predicted: str | None = None,
    probability: float = 0.9,
    text: str | None = None,
    true_label: str | None = "sports",
) -> Explanation:
    """One sentence: ``tokens`` (no special tokens) between [CLS] and [SEP], one score list per label.

    The predicted label defaults to the first label of ``scores``.
    """
    pieces = ["[CLS]", *tokens, "[SEP]"]
    special = [p in ("[CLS]", "[SEP]") for p in pieces]
    indices = word_indices(pieces, special)
    attributions = tuple(
        LabelAttribution(
            label,
            0.5,
            tuple(
                TokenScore(p, piece, SPECIAL_SCORE if sp else float(values[p - 1]), w, sp)
                for p, (piece, w, sp) in enumerate(zip(pieces, indices, special, strict=True))
            ),
        )
        for label, values in scores.items()
    )
    return Explanation(
        sentence_id=sentence_id,
        text=text if text is not None else "".join(t.removeprefix("##") for t in tokens),
        true_label=true_label,
        predicted_label=predicted or next(iter(scores)),
        predicted_probability=probability,
        attributions=attributions,
        n_tokens=len(pieces),
    )


def table(*explanations: Explanation) -> pd.DataFrame:
    """The long attribution table of some explanations."""
    return attribution_table(explanations)


def step_table(tables_by_step: Mapping[tuple[int, float], pd.DataFrame]) -> pd.DataFrame:
    """The Trainer callback's cumulative table: each step's rows with ``step`` and ``epoch`` in front."""
    parts = []
    for (step, epoch), frame in tables_by_step.items():
        frame = frame.copy()
        frame.insert(0, "epoch", epoch)
        frame.insert(0, "step", step)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)
