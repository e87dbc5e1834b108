"""Explain a classifier's predictions for a list of examples: predict, attribute, assemble."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from mlflow_explain.attribution import (
    EncodedText,
    RawAttribution,
    check_time_budget,
    exclusive_use,
    get_attribution_method,
    output_activation,
    shared_use,
)
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example, join_labels
from mlflow_explain.errors import ExplanationError
from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, word_indices
from mlflow_explain.metrics import predicted_ids
from mlflow_explain.modeling import encode_texts, max_input_length, predict_proba

__all__ = ["explain_examples", "select_targets"]

logger = logging.getLogger(__name__)

CHUNK = 8
"""Sentences handed to the attribution backend first when a progress bar is shown (it moves per chunk).

Each chunk refines its own pairs in rounds of passes, so fewer, larger chunks are faster: a chunk that
took less than :data:`CHUNK_SECONDS` is followed by one twice its size, and without a progress bar all
sentences go at once (the time budget is still checked before every pass)."""

CHUNK_SECONDS = 2.0


def select_targets(
    target: str, probabilities: np.ndarray, true_id: int | Sequence[int] | None, threshold: float | None = None
) -> list[int]:
    """The label indices to attribute for one sentence.

    Args:
        target: ``"all"``, ``"predicted"``, ``"true"`` or ``"predicted+true"``.
        probabilities: The sentence's label probabilities.
        true_id: Index of the true label, the indices of the true label set (multi-label), or ``None`` (or
            none) when unknown (``"true"`` then falls back to the predicted labels).
        threshold: A multi-label model's decision threshold: the predicted labels are each label at or above
            it, and at least the most probable one (:func:`~mlflow_explain.metrics.predicted_ids`). ``None``
            (single-label) predicts the most probable label. Defaults to None.

    Returns:
        Label indices, the predicted ones first (most probable first) where they are included.
    """
    predicted = predicted_ids(probabilities, threshold)
    true = [] if true_id is None else [true_id] if isinstance(true_id, int) else list(true_id)
    if target == "all":
        return list(range(len(probabilities)))
    if target == "predicted" or not true:
        return predicted
    if target == "true":
        return true
    return predicted + [i for i in true if i not in predicted]


def explain_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    config: ExplainConfig,
    max_length: int | None = None,
    progress: bool = True,
    start_cuts: Mapping[tuple[str, str], tuple[float, ...]] | None = None,
) -> list[Explanation]:
    """Predict and attribute each example with the configured method.

    The model is put in eval mode while explaining and restored to its previous mode after. Threads
    may explain with one model at once (the tokenizer and ``interpret-lig`` are used one call at a time).

    Args:
        model: A ``...ForSequenceClassification`` model whose config names the labels.
        tokenizer: Its tokenizer.
        examples: Sentences with their true labels (labels unknown to the model are kept as
            true labels and simply not attributable).
        config: Method, targets, ``n_steps`` and batch settings.
        max_length: Longest input in tokens; longer texts are truncated and flagged. Defaults
            to the model's maximum.
        progress: Show a progress bar. Defaults to True.
        start_cuts: Where a previous explanation of a ``(text, label)`` ended its adaptive integration
            (:attr:`~mlflow_explain.explanation.LabelAttribution.cuts`): a method that refines (``lig``)
            starts those pairs there, and still refines them to the tolerance. Defaults to None.

    Returns:
        One :class:`Explanation` per example, ``sentence_id`` being its position.

    Raises:
        ExplanationError: If the backend fails on the inputs.
        TimeBudgetExceeded: Once the :func:`~mlflow_explain.attribution._engine.time_budget` around the call runs out.
    """
    from tqdm.auto import tqdm

    method = get_attribution_method(config.method)
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    label2id = {v: k for k, v in id2label.items()}
    threshold = config.threshold if output_activation(model) == "sigmoid" else None
    encoded = _encode(tokenizer, [e.text for e in examples], max_input_length(model, tokenizer, max_length))
    with shared_use(model):
        probabilities = predict_proba(model, tokenizer, encoded)
    targets = [
        select_targets(config.target, p, [label2id[x] for x in ex.label_set if x in label2id], threshold)
        for p, ex in zip(probabilities, examples, strict=True)
    ]
    cuts = None
    if start_cuts and getattr(method, "warm_starts", False):
        cuts = [
            [start_cuts.get((ex.text, id2label[label])) for label in tgt]
            for ex, tgt in zip(examples, targets, strict=True)
        ]
    was_training = model.training
    model.eval()
    raw: list[RawAttribution] = []
    try:
        with tqdm(
            total=len(encoded), desc=f"explaining ({config.method})", unit="sentence", disable=not progress
        ) as bar:
            start, size = 0, CHUNK if progress else len(encoded)
            while start < len(encoded):
                check_time_budget()
                chunk, began = slice(start, start + size), time.perf_counter()
                warm = {} if cuts is None else {"start_cuts": cuts[chunk]}
                raw.extend(method.attribute(model, tokenizer, encoded[chunk], targets[chunk], config, **warm))
                bar.update(len(encoded[chunk]))
                start += size
                size *= 2 if time.perf_counter() - began < CHUNK_SECONDS else 1
    except (RuntimeError, ValueError, IndexError) as err:
        raise ExplanationError(f"attribution with {config.method!r} failed: {err}") from err
    finally:
        model.train(was_training)
    checked = config if getattr(method, "checks_completeness", True) else replace(config, tolerance=None)
    explanations = [
        _assemble(i, ex, enc, probs, tgt, r, id2label, checked, threshold)
        for i, (ex, enc, probs, tgt, r) in enumerate(zip(examples, encoded, probabilities, targets, raw, strict=True))
    ]
    _warn_unconverged(explanations, checked)
    return explanations


def _encode(tokenizer, texts: Sequence[str], max_length: int) -> list[EncodedText]:
    """:func:`~mlflow_explain.modeling.encode_texts` text by text, the tokenizer to itself, the budget checked between.

    A long text takes seconds to tokenize (up to 8 s for 100,000 characters), so the budget is
    checked before each one.
    """
    encoded: list[EncodedText] = []
    for text in texts:
        check_time_budget()
        with exclusive_use(tokenizer):
            encoded += encode_texts(tokenizer, [text], max_length)
    for e in encoded:
        if e.truncated:
            logger.warning("Text truncated from %d to %d tokens: %.40s...", e.n_tokens, len(e.input_ids), e.text)
    return encoded


def _warn_unconverged(explanations: Sequence[Explanation], config: ExplainConfig) -> None:
    failing = [(e, a) for e in explanations for a in e.attributions if a.converged is False]
    if failing:
        worst_sentence, worst = max(failing, key=lambda pair: abs(pair[1].convergence_delta))
        total = sum(len(e.attributions) for e in explanations)
        logger.warning(
            "%d of %d sentence-label pairs are still above the completeness tolerance %.3g (largest |delta| "
            "%.3g after %s steps: sentence %d towards %s); raise max_steps, or read their scores with care "
            "(table column `converged`).",
            len(failing),
            total,
            config.tolerance,
            abs(worst.convergence_delta),
            worst.n_steps if worst.n_steps is not None else config.n_steps,
            worst_sentence.sentence_id,
            worst.label,
        )


def _assemble(
    sentence_id: int,
    example: Example,
    encoded: EncodedText,
    probabilities: np.ndarray,
    targets: Sequence[int],
    raw: RawAttribution,
    id2label: dict[int, str],
    config: ExplainConfig,
    threshold: float | None,
) -> Explanation:
    words = word_indices(encoded.tokens, encoded.special)
    predicted_set = predicted_ids(probabilities, threshold)
    predicted = predicted_set[0]
    attributions = []
    for row, label_id in enumerate(targets):
        tokens = tuple(
            TokenScore(position=p, token=tok, score=float(raw.scores[row, p]), word_index=w, is_special=s)
            for p, (tok, w, s) in enumerate(zip(encoded.tokens, words, encoded.special, strict=True))
        )
        delta = None if raw.deltas is None else float(raw.deltas[row])
        attributions.append(
            LabelAttribution(
                label=id2label[label_id],
                probability=float(probabilities[label_id]),
                tokens=tokens,
                convergence_delta=delta,
                n_steps=None if raw.steps is None else int(raw.steps[row]),
                converged=None if delta is None or config.tolerance is None else abs(delta) <= config.tolerance,
                cuts=None if raw.cuts is None else raw.cuts[row],
            )
        )
    return Explanation(
        sentence_id=sentence_id,
        text=example.text,
        true_label=example.label,
        predicted_label=id2label[predicted] if threshold is None else join_labels(id2label[i] for i in predicted_set),
        predicted_probability=float(probabilities[predicted]),
        predicted_labels=()
        if threshold is None
        else tuple((id2label[i], float(probabilities[i])) for i in predicted_set),
        attributions=tuple(attributions),
        truncated=encoded.truncated,
        n_tokens=encoded.n_tokens,
        method=config.method,
    )
