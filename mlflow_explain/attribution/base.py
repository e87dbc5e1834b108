"""What every attribution backend receives and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlflow_explain.config import ExplainConfig

__all__ = ["AttributionMethod", "EncodedText", "RawAttribution", "output_activation"]


@dataclass(frozen=True)
class EncodedText:
    """A text as the model sees it.

    Args:
        text: The original text.
        input_ids: Token ids, special tokens included, truncated to the model's maximum length.
        tokens: The tokens of ``input_ids``.
        special: For each token, whether it is a special token.
        truncated: Whether tokens were cut off to fit the maximum length.
        n_tokens: Token count of the full text, special tokens included.
    """

    text: str
    input_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    special: tuple[bool, ...]
    truncated: bool
    n_tokens: int


@dataclass(frozen=True)
class RawAttribution:
    """Scores of one sentence towards each requested label.

    Args:
        scores: Array of shape ``(n_targets, n_tokens)``.
        deltas: Convergence deltas of shape ``(n_targets,)``, or ``None`` when the method has none.
        steps: Integration steps each target used, shape ``(n_targets,)``, or ``None`` when the method
            does not integrate.
    """

    scores: np.ndarray
    deltas: np.ndarray | None = None
    steps: np.ndarray | None = None

    def replaced(self, rows: Sequence[int], other: RawAttribution) -> RawAttribution:
        """A copy whose target ``rows`` come from ``other`` (whose rows are those targets, in order)."""
        scores = self.scores.copy()
        scores[list(rows)] = other.scores
        deltas, steps = self.deltas, self.steps
        if deltas is not None and other.deltas is not None:
            deltas = deltas.copy()
            deltas[list(rows)] = other.deltas
        if steps is not None and other.steps is not None:
            steps = steps.copy()
            steps[list(rows)] = other.steps
        return RawAttribution(scores=scores, deltas=deltas, steps=steps)


class AttributionMethod(Protocol):
    """A backend that attributes label outputs to input tokens."""

    name: str
    description: str

    def attribute(
        self,
        model,
        tokenizer,
        texts: Sequence[EncodedText],
        targets: Sequence[Sequence[int]],
        config: ExplainConfig,
    ) -> list[RawAttribution]:
        """Attribute, for each text, each of its target label indices to its tokens.

        Args:
            model: A ``...ForSequenceClassification`` model in eval mode.
            tokenizer: Its tokenizer.
            texts: Encoded texts.
            targets: For each text, the label indices to attribute.
            config: Explanation settings (``n_steps``, ``internal_batch_size``, ...).

        Returns:
            One :class:`RawAttribution` per text, rows in the order of its targets.
        """
        ...


def output_activation(model) -> str:
    """Name the function that turns the model's logits into label probabilities.

    Args:
        model: A sequence-classification model.

    Returns:
        ``"sigmoid"`` for ``problem_type == "multi_label_classification"``, else ``"softmax"``.
    """
    problem_type = getattr(model.config, "problem_type", None)
    return "sigmoid" if problem_type == "multi_label_classification" else "softmax"
