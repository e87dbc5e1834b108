"""The one explain pipeline: examples in, explanations with their quality figures, metrics and timings out.

The jobs, the Trainer callback, the served explainer and ``explain-file`` (through the explainer) all
explain with :func:`explain_sample`, so a setting of :class:`~mlflow_explain.config.ExplainConfig` means
the same everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.explanation import Explanation

__all__ = ["ExplainResult", "explain_sample"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainResult:
    """What explaining a set of examples produced.

    Args:
        explanations: One per example, in order.
        qualities: Per-sentence quality figures (:func:`~mlflow_explain.quality.evaluate_quality`), or
            ``None`` when quality was off.
        seconds: Wall time of the attributions.
        quality_seconds: Wall time of the quality figures (0 when off).
        metrics: ``explain_seconds``, ``explain_seconds_per_sentence``, ``n_explained`` and, with
            quality, the run-level quality means and ``quality_seconds``.
    """

    explanations: list[Explanation]
    qualities: list | None = None
    seconds: float = 0.0
    quality_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


def explain_sample(
    model,
    tokenizer,
    examples: Sequence[Example],
    config: ExplainConfig,
    *,
    max_length: int | None = None,
    quality: bool | None = None,
    progress: bool = True,
    start_cuts: Mapping[tuple[str, str], tuple[float, ...]] | None = None,
) -> ExplainResult:
    """Explain ``examples`` with ``config`` and, when asked, score the explanations' faithfulness.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        examples: The texts (with true labels where known).
        config: How to explain.
        max_length: Longest input in tokens. Defaults to the model's maximum.
        quality: Compute the quality figures; ``None`` follows ``config.quality``.
        progress: Show a progress bar. Defaults to True.
        start_cuts: Where earlier explanations ended their adaptive integration, by ``(text, label)``
            (see :func:`~mlflow_explain.explainer.explain_examples`). Defaults to None.

    Returns:
        The explanations, their quality figures, timings and metrics.

    Raises:
        ExplanationError: If the attribution backend fails.
    """
    from mlflow_explain.explainer import explain_examples
    from mlflow_explain.quality import evaluate_quality, quality_metrics

    started = time.perf_counter()
    explanations = explain_examples(
        model, tokenizer, examples, config, max_length=max_length, progress=progress, start_cuts=start_cuts
    )
    seconds = time.perf_counter() - started
    metrics = {
        "explain_seconds": seconds,
        "explain_seconds_per_sentence": seconds / max(len(examples), 1),
        "n_explained": float(len(examples)),
    }
    if not (config.quality if quality is None else quality) or not explanations:
        return ExplainResult(explanations, None, seconds, 0.0, metrics)
    started = time.perf_counter()
    qualities = evaluate_quality(model, tokenizer, explanations, config, max_length=max_length)
    quality_seconds = time.perf_counter() - started
    metrics |= {**quality_metrics(qualities), "quality_seconds": quality_seconds}
    return ExplainResult(explanations, qualities, seconds, quality_seconds, metrics)
