"""Perturbation methods over tokens: no gradients, only forward passes.

- :func:`occlusion`: the drop in each label output when one token is replaced by the pad token
  (``occlusion``, Captum's ``FeatureAblation`` with one feature per token);
- :func:`shapley_sampling`: Shapley values estimated from random orders in which tokens are
  revealed, starting from all tokens replaced by the pad token (``shapley-sampling``, as Captum's
  ``ShapleyValueSampling``).

Special tokens are never perturbed and score 0. One forward pass gives every label, so the cost
does not grow with the number of targets; the perturbed copies of all sentences are grouped by
length into passes bounded by ``internal_batch_size`` or a token budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mlflow_explain.attribution._engine import Row, SentenceInputs, l2_normalize, probabilities
from mlflow_explain.attribution.base import EncodedText, RawAttribution, output_activation
from mlflow_explain.config import ExplainConfig

__all__ = ["Occlusion", "ShapleySampling", "occlusion", "shapley_sampling"]


def occlusion(
    model,
    tokenizer,
    texts: Sequence[EncodedText],
    targets: Sequence[Sequence[int]],
    *,
    internal_batch_size: int | None = None,
) -> list[RawAttribution]:
    """Output of the input minus the output with the token replaced by the pad token, per token.

    Args:
        model: A ``...ForSequenceClassification`` model in eval mode.
        tokenizer: Its tokenizer.
        texts: Encoded sentences.
        targets: For each sentence, the label indices to attribute.
        internal_batch_size: Most rows per forward pass; ``None`` bounds padded tokens instead.

    Returns:
        One :class:`RawAttribution` per sentence, raw, without deltas.
    """
    inputs = SentenceInputs(model, tokenizer, texts)
    rows, spans = [], []
    for i, ids in enumerate(inputs.ids):
        positions = torch.nonzero(~inputs.special[i]).flatten()
        copies = ids.repeat(len(positions), 1)
        copies[torch.arange(len(positions)), positions] = inputs.reference_id
        spans.append((len(rows), positions))
        rows += [Row(ids), *(Row(c) for c in copies)]
    probs = probabilities(model, rows, inputs.pad_id, output_activation(model), internal_batch_size).double()
    results = []
    for (start, positions), label_ids, n_tokens in zip(spans, targets, inputs.lengths, strict=True):
        label_ids = list(label_ids)
        scores = torch.zeros((len(label_ids), n_tokens), dtype=torch.float64)
        drop = probs[start, label_ids][:, None] - probs[start + 1 : start + 1 + len(positions), label_ids].T
        scores[:, positions] = drop
        results.append(RawAttribution(scores=scores.numpy()))
    return results


def shapley_sampling(
    model,
    tokenizer,
    texts: Sequence[EncodedText],
    targets: Sequence[Sequence[int]],
    *,
    n_samples: int = 25,
    seed: int = 42,
    internal_batch_size: int | None = None,
) -> list[RawAttribution]:
    """Shapley values of the tokens, estimated from ``n_samples`` random orders per sentence.

    For each order, tokens are revealed one by one on top of the baseline (every token replaced by
    the pad token); a token's value is the average change in the label output when it is revealed.
    Each order sums exactly to ``f(input) - f(baseline)``, so the returned deltas (the same
    completeness error as for Integrated Gradients) are zero up to rounding. The orders of a
    sentence depend only on ``seed`` and its token ids, not on the other sentences in the call.

    Args:
        model: A ``...ForSequenceClassification`` model in eval mode.
        tokenizer: Its tokenizer.
        texts: Encoded sentences.
        targets: For each sentence, the label indices to attribute.
        n_samples: Random orders per sentence. Defaults to 25.
        seed: Seed of the orders. Defaults to 42.
        internal_batch_size: Most rows per forward pass; ``None`` bounds padded tokens instead.

    Returns:
        One :class:`RawAttribution` per sentence, raw, with deltas.
    """
    inputs = SentenceInputs(model, tokenizer, texts)
    rows: list[Row] = []
    plans = []
    for i, (ids, baseline) in enumerate(zip(inputs.ids, inputs.baseline_ids, strict=True)):
        positions = torch.nonzero(~inputs.special[i]).flatten()
        n = len(positions)
        rng = np.random.default_rng([seed, *ids.tolist()])
        orders = torch.from_numpy(rng.permuted(np.tile(np.arange(n), (n_samples, 1)), axis=1))
        ranks = torch.argsort(orders, dim=1)  # ranks[s, p]: when text token p is revealed in order s
        # Coalitions of 1 .. n-1 revealed tokens; the empty one is the baseline and the full one the input.
        revealed = ranks[:, None, :] < torch.arange(1, max(n, 1))[None, :, None]  # (samples, n - 1, n)
        mixed = baseline.repeat(n_samples, max(n - 1, 0), 1)
        mixed[..., positions] = torch.where(revealed, ids[positions], baseline[positions])
        plans.append((len(rows), n, positions, ranks))
        rows += [Row(baseline), Row(ids), *(Row(r) for r in mixed.reshape(-1, len(ids)))]
    probs = probabilities(model, rows, inputs.pad_id, output_activation(model), internal_batch_size).double()
    results = []
    for (start, n, positions, ranks), label_ids, n_tokens in zip(plans, targets, inputs.lengths, strict=True):
        label_ids = list(label_ids)
        scores = torch.zeros((len(label_ids), n_tokens), dtype=torch.float64)
        empty, full = probs[start, label_ids], probs[start + 1, label_ids]
        if n:
            middle = probs[start + 2 : start + 2 + n_samples * (n - 1), label_ids].reshape(
                n_samples, n - 1, len(label_ids)
            )
            values = torch.cat([empty.expand(n_samples, 1, -1), middle, full.expand(n_samples, 1, -1)], dim=1)
            gains = values[:, 1:] - values[:, :-1]  # gains[s, r]: change when the r-th token of order s appears
            per_token = gains.gather(1, ranks[..., None].expand(-1, -1, len(label_ids)))  # (samples, n, targets)
            scores[:, positions] = per_token.mean(dim=0).T
        deltas = scores.sum(dim=1) - (full - empty)
        results.append(RawAttribution(scores=scores.numpy(), deltas=deltas.numpy()))
    return results


class Occlusion:
    """Drop in the label output when one token is replaced by the pad token."""

    name = "occlusion"
    description = "Occlusion (feature ablation) over tokens: output drop when a token becomes [PAD]; L2-normalised."

    def attribute(self, model, tokenizer, texts, targets, config: ExplainConfig) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`."""
        raw = occlusion(model, tokenizer, texts, targets, internal_batch_size=config.internal_batch_size)
        return [l2_normalize(r) for r in raw]


class ShapleySampling:
    """Shapley values of the tokens from random reveal orders."""

    name = "shapley-sampling"
    description = (
        "Shapley value sampling over tokens (n_samples random orders, [PAD] baseline); L2-normalised, "
        "exact completeness."
    )

    def attribute(self, model, tokenizer, texts, targets, config: ExplainConfig) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`."""
        raw = shapley_sampling(
            model,
            tokenizer,
            texts,
            targets,
            n_samples=config.n_samples,
            seed=config.sample_seed,
            internal_batch_size=config.internal_batch_size,
        )
        return [l2_normalize(r) for r in raw]
