"""What every attribution backend receives and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlflow_explain.config import ExplainConfig
from mlflow_explain.errors import ExplanationError

__all__ = ["AttributionMethod", "EncodedText", "RawAttribution", "check_sequence_classifier", "output_activation"]


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
        cuts: Per target, the points of ``(0, 1)`` where the adaptive integration cut its path into
            pieces (empty: the whole path in one), or ``None`` when the method does not refine. Given
            back as ``start_cuts``, they let the next explanation of the same sentence and label start
            where this one ended (the Trainer callback does, from one evaluation to the next).
    """

    scores: np.ndarray
    deltas: np.ndarray | None = None
    steps: np.ndarray | None = None
    cuts: tuple[tuple[float, ...], ...] | None = None


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

    Raises:
        ExplanationError: If ``model`` is a transformers model without a sequence-classification head
            (:func:`check_sequence_classifier`): prediction and every backend ask this first.
    """
    check_sequence_classifier(model)
    problem_type = getattr(model.config, "problem_type", None)
    return "sigmoid" if problem_type == "multi_label_classification" else "softmax"


def check_sequence_classifier(model) -> None:
    """Refuse a transformers model that gives no sequence-classification logits, naming its family.

    Predictions and attributions read a ``...ForSequenceClassification`` model's logits, one row of
    label scores per text. A bare encoder (``AutoModel``: no logits) or another task's head
    (``...ForTokenClassification``: logits per token) would fail deep inside a forward pass with an
    error about tensor shapes or a missing ``logits`` attribute. Models defined outside transformers
    (wrappers, own heads) are not checked.

    Args:
        model: The model to explain.

    Raises:
        ExplanationError: If ``model`` is a transformers class whose name does not end with
            ``ForSequenceClassification``.

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> encoder = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1))
        >>> check_sequence_classifier(encoder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlflow_explain.errors.ExplanationError: BertModel (model type 'bert') gives no sequence-classification logits...
    """
    kind = type(model)
    if not kind.__module__.startswith("transformers.") or kind.__name__.endswith("ForSequenceClassification"):
        return
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    raise ExplanationError(
        f"{kind.__name__} (model type {model_type!r}) gives no sequence-classification logits (one row of label "
        "scores per text), so it cannot be explained: load it with transformers.AutoModelForSequenceClassification, "
        "or save it from a ...ForSequenceClassification model."
    )
