"""Gradient methods on the word embeddings, batched over sentences, steps and labels.

- :func:`integrated_gradients`: Layer Integrated Gradients (backends ``lig`` and ``lig-parity``);
- :func:`saliency`: the L2 norm of the gradient of each token's embedding (``saliency``);
- :func:`input_x_gradient`: embedding times gradient, summed over the hidden size (``input-x-gradient``).

They share one loop: rows (a sentence at an interpolation point) are grouped by length into passes
bounded by ``internal_batch_size`` or a token budget; each pass is one forward pass with the word
embeddings replaced, and the gradients of all of a row's target labels come from that one pass.
The functions return raw scores; the backends divide them by their L2 norm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

from mlflow_explain.attribution._engine import (
    Row,
    SentenceInputs,
    activation_jacobian,
    forward_logits,
    l2_normalize,
    model_device,
    padded_targets,
    plan_passes,
    probabilities,
    probe_batch,
    shared_use,
    stack_rows,
    target_token_scores,
    token_budget,
)
from mlflow_explain.attribution._shortcuts import exact_shortcuts
from mlflow_explain.attribution.base import EncodedText, RawAttribution, output_activation
from mlflow_explain.config import ExplainConfig

__all__ = [
    "InputXGradient",
    "LayerIG",
    "LayerIGParity",
    "Saliency",
    "gauss_legendre",
    "input_x_gradient",
    "integrated_gradients",
    "integration_points",
    "saliency",
]

# reduce(gradient, input_embeddings, baseline_embeddings) -> per-token values
_Reduce = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def integrated_gradients(
    model,
    tokenizer,
    texts: Sequence[EncodedText],
    targets: Sequence[Sequence[int]],
    *,
    n_steps: int = 50,
    integration: str = "gausslegendre",
    internal_batch_size: int | None = None,
    parity: bool = False,
    tolerance: float | None = None,
    max_steps: int | None = None,
) -> list[RawAttribution]:
    """Layer Integrated Gradients on the word embeddings, raw (not normalised).

    The word embeddings move from the baseline (special tokens kept, other tokens replaced by the
    pad token) to the input along Captum's integration points; a token's score is its embedding
    difference times the integrated gradient, summed over the hidden size. The convergence delta
    is ``sum(scores) - (f(input) - f(baseline))`` in probability units, ``f`` being the softmax
    (or, for multi-label models, sigmoid) output of the label.

    Args:
        model: A ``...ForSequenceClassification`` model in eval mode; tensors follow its device.
        tokenizer: Its tokenizer.
        texts: Encoded sentences.
        targets: For each sentence, the label indices to attribute (lists may differ).
        n_steps: Integration points. Defaults to 50.
        integration: A Captum integration rule (:data:`mlflow_explain.config.INTEGRATION_METHODS`).
            Defaults to ``"gausslegendre"``.
        internal_batch_size: Most rows (interpolated sentences) per forward pass; ``None`` bounds
            the padded tokens per pass instead. Defaults to None.
        parity: Use transformers-interpret's position and token type ids
            (see :class:`~mlflow_explain.attribution._engine.SentenceInputs`). Defaults to False.
        tolerance: Completeness tolerance in probability units: the sentence-label pairs whose
            ``|delta|`` exceeds it are integrated again, on their own rows and labels only, with more
            steps (:func:`refinement_plan`), until they meet it or reach ``max_steps``. ``None``
            integrates once. Defaults to None.
        max_steps: Most steps a refined pair may use. Defaults to ``n_steps`` (no refinement).

    Returns:
        One :class:`RawAttribution` per sentence, with deltas and the steps each label used.

    Example:
        >>> raw = integrated_gradients(model, tokenizer, encoded, [[0, 1]] * len(encoded))  # doctest: +SKIP
    """
    inputs = SentenceInputs(model, tokenizer, texts, parity=parity)
    if not len(inputs):
        return []
    device = model_device(model)
    probe = probe_batch([inputs.input_row(i) for i in range(len(inputs))], inputs.pad_id, device)
    # One installation of the shortcuts, and one evaluation of the path's ends, for every round.
    with shared_use(model), exact_shortcuts(model, probe):
        changes = _output_changes(model, inputs, internal_batch_size)
        integrate = partial(_integrate, model, integration=integration, internal_batch_size=internal_batch_size)
        results = integrate(inputs, changes, targets, n_steps)
        limit = max(max_steps or n_steps, n_steps)
        while tolerance is not None:
            plan = refinement_plan(results, tolerance, limit)
            if not plan:
                break
            for steps, failing in plan.items():
                order = sorted(failing)
                subset = [[targets[i][k] for k in failing[i]] for i in order]
                again = integrate(inputs.select(order), [changes[i] for i in order], subset, steps)
                for i, refined in zip(order, again, strict=True):
                    results[i] = results[i].replaced(failing[i], refined)
    return results


def refinement_plan(results: Sequence[RawAttribution], tolerance: float, limit: int) -> dict[int, dict[int, list[int]]]:
    """Which sentence-label pairs to integrate again, and with how many steps.

    A pair above ``tolerance`` gets twice its steps, at most ``limit``. (Growing faster for pairs far
    above it, four or eight times, measured no faster on the embedded model: more, smaller passes.)

    Returns:
        ``{steps: {sentence: [target rows]}}``, in increasing steps; empty when nothing is left to refine.
    """
    plan: dict[int, dict[int, list[int]]] = {}
    for i, result in enumerate(results):
        for k, (delta, used) in enumerate(zip(np.abs(result.deltas), result.steps, strict=True)):
            if delta <= tolerance or used >= limit:
                continue
            plan.setdefault(min(2 * int(used), limit), {}).setdefault(i, []).append(k)
    return dict(sorted(plan.items()))


def _output_changes(model, inputs: SentenceInputs, internal_batch_size: int | None) -> list[np.ndarray]:
    """``f(input) - f(baseline)`` of every label, per sentence (float64): what the scores should sum to."""
    n = len(inputs)
    rows = [inputs.input_row(i) for i in range(n)] + [inputs.baseline_row(i) for i in range(n)]
    ends = probabilities(model, rows, inputs.pad_id, output_activation(model), internal_batch_size).double()
    return [(ends[i] - ends[n + i]).numpy() for i in range(n)]


def _integrate(
    model,
    inputs: SentenceInputs,
    changes: Sequence[np.ndarray],
    targets: Sequence[Sequence[int]],
    n_steps: int,
    *,
    integration: str,
    internal_batch_size: int | None,
) -> list[RawAttribution]:
    """One integration of every sentence and target at ``n_steps`` (see :func:`integrated_gradients`)."""
    points = integration_points(integration, n_steps)
    raw = _gradient_scores(
        model, inputs, targets, points, _along_path, linear=True, internal_batch_size=internal_batch_size
    )
    results = []
    for scores, change, label_ids in zip(raw, changes, targets, strict=True):
        steps = np.full(len(label_ids), n_steps, dtype=np.int64)
        results.append(RawAttribution(scores=scores, deltas=scores.sum(axis=1) - change[list(label_ids)], steps=steps))
    return results


def integration_points(integration: str, n_steps: int) -> list[tuple[float, float]]:
    """The ``(alpha, weight)`` pairs of an integration rule over [0, 1]; the weights sum to 1.

    Captum's rules, with two changes. ``gausslegendre`` has the same nodes and weights (within 1e-14)
    from :func:`gauss_legendre`, in O(n) memory rather than numpy's O(n^2) companion matrix.
    ``riemann_trapezoid``: Captum places its ``n`` nodes ``1/(n-1)`` apart but weighs them ``1/n``
    (halved at the ends), so its weights sum to ``1 - 1/n`` and a saturated pair's completeness error
    tends to ``-Δf/n`` instead of 0; here they are ``1/(n-1)``, halved at the ends.

    Args:
        integration: A rule of :data:`mlflow_explain.config.INTEGRATION_METHODS`.
        n_steps: Number of nodes (at least 2 for the Riemann rules).

    Returns:
        ``n_steps`` pairs in increasing ``alpha``.

    Example:
        >>> sum(w for _, w in integration_points("riemann_trapezoid", 3))
        1.0
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    if integration == "gausslegendre":
        nodes, weights = gauss_legendre(n_steps)
        return list(zip((0.5 * (nodes + 1.0)).tolist(), (0.5 * weights).tolist(), strict=True))
    if integration == "riemann_trapezoid":
        weights = [1.0 / (n_steps - 1)] * n_steps
        weights[0] = weights[-1] = 0.5 / (n_steps - 1)
        return list(zip(np.linspace(0.0, 1.0, n_steps).tolist(), weights, strict=True))
    step_sizes, alphas = approximation_parameters(integration)
    return list(zip(alphas(n_steps), step_sizes(n_steps), strict=True))


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1], by Newton's method on the Legendre recurrence.

    O(n) memory and O(n^2) time (numpy's ``leggauss`` needs an n x n matrix and O(n^3) time: 1.5 s
    for 1024 nodes here, against 0.12 s).

    Args:
        n: Number of nodes, at least 1.

    Returns:
        ``(nodes, weights)`` in increasing node order; the weights sum to 2.

    Example:
        >>> nodes, weights = gauss_legendre(2)
        >>> [round(float(x), 6) for x in nodes]
        [-0.57735, 0.57735]
    """
    x = np.cos(np.pi * (np.arange(1, n + 1) - 0.25) / (n + 0.5))

    def legendre(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P_n(x) and its derivative."""
        previous, current = np.ones_like(x), x.copy()
        for degree in range(2, n + 1):
            previous, current = current, ((2 * degree - 1) * x * current - (degree - 1) * previous) / degree
        derivative = n * (x * current - previous) / (x * x - 1.0) if n > 1 else np.ones_like(x)
        return current, derivative

    for _ in range(100):
        value, derivative = legendre(x)
        step = value / derivative
        x = x - step
        if np.abs(step).max() < 1e-15:
            break
    _, derivative = legendre(x)
    weights = 2.0 / ((1.0 - x * x) * derivative * derivative)
    return x[::-1].copy(), weights[::-1].copy()


def saliency(
    model,
    tokenizer,
    texts: Sequence[EncodedText],
    targets: Sequence[Sequence[int]],
    *,
    internal_batch_size: int | None = None,
) -> list[RawAttribution]:
    """L2 norm of the gradient of each label output with respect to each token's word embedding.

    Special tokens score 0, as in the other methods. Arguments as in :func:`integrated_gradients`.

    Returns:
        One :class:`RawAttribution` per sentence, without deltas.
    """
    return _at_input(model, tokenizer, texts, targets, _norm, False, internal_batch_size)


def input_x_gradient(
    model,
    tokenizer,
    texts: Sequence[EncodedText],
    targets: Sequence[Sequence[int]],
    *,
    internal_batch_size: int | None = None,
) -> list[RawAttribution]:
    """Word embedding times its gradient, summed over the hidden size, for each label output.

    Special tokens score 0, as in the other methods. Arguments as in :func:`integrated_gradients`.

    Returns:
        One :class:`RawAttribution` per sentence, without deltas.
    """
    return _at_input(model, tokenizer, texts, targets, _times_input, True, internal_batch_size)


def _at_input(
    model, tokenizer, texts, targets, reduce: _Reduce, linear: bool, internal_batch_size: int | None
) -> list[RawAttribution]:
    """``reduce`` of the gradient at the input itself, special tokens scored 0, without deltas."""
    inputs = SentenceInputs(model, tokenizer, texts)
    raw = _gradient_scores(
        model, inputs, targets, [(1.0, 1.0)], reduce, linear=linear, internal_batch_size=internal_batch_size
    )
    return [RawAttribution(scores=_zero_special(s, t)) for s, t in zip(raw, texts, strict=True)]


def _along_path(gradient: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return (gradient * (x - x0)).sum(-1)


def _times_input(gradient: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return (gradient * x).sum(-1)


def _norm(gradient: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(gradient, dim=-1)


def _zero_special(scores: np.ndarray, text: EncodedText) -> np.ndarray:
    return np.where(np.asarray(text.special, dtype=bool)[None, :], 0.0, scores)


def _gradient_scores(
    model,
    inputs: SentenceInputs,
    targets: Sequence[Sequence[int]],
    points: Sequence[tuple[float, float]],
    reduce: _Reduce,
    linear: bool,
    internal_batch_size: int | None,
) -> list[np.ndarray]:
    """Sum over ``points`` ``(alpha, weight)`` of ``weight * reduce(grad at x0 + alpha (x - x0))``.

    Threads may run this on one model at once (:func:`~mlflow_explain.attribution._engine.shared_use`).

    Returns:
        For each sentence, an array ``(len(targets[i]), n_tokens)``.

    Raises:
        TimeBudgetExceeded: Between passes, once this thread's time budget has run out.
    """
    device = model_device(model)
    activation = output_activation(model)
    embedding = model.get_input_embeddings()
    labels, valid = padded_targets(targets)
    alphas = torch.tensor([a for a, _ in points], device=device)
    weights = torch.tensor([w for _, w in points], device=device)
    totals = [np.zeros((len(t), n)) for t, n in zip(targets, inputs.lengths, strict=True)]
    n_rows = [len(points)] * len(inputs)
    if not totals:
        return totals
    probe = probe_batch([inputs.input_row(i) for i in range(len(inputs))], inputs.pad_id, device)
    with shared_use(model), exact_shortcuts(model, probe), torch.enable_grad():
        for batch in plan_passes(inputs.lengths, n_rows, internal_batch_size, token_budget(device)):
            sentence = torch.tensor([i for i, _ in batch])
            slots = int(valid[sentence].sum(dim=1).max())  # the most targets of a sentence in this pass
            if slots == 0:
                continue
            point = torch.tensor([k for _, k in batch], device=device)
            unique, local = torch.unique_consecutive(sentence, return_inverse=True)
            local = local.to(device)
            batch_inputs = stack_rows([inputs.input_row(i) for i in unique.tolist()], inputs.pad_id, device)
            baseline = stack_rows([Row(inputs.baseline_ids[i]) for i in unique.tolist()], inputs.pad_id, device)
            with torch.no_grad():
                x = embedding(batch_inputs["input_ids"])[local]
                x0 = embedding(baseline["input_ids"])[local]
            path = torch.lerp(x0, x, alphas[point].view(-1, 1, 1).to(x.dtype)).requires_grad_(True)
            logits = forward_logits(model, {k: v[local] for k, v in batch_inputs.items()}, path)
            cotangents = activation_jacobian(logits.detach(), activation, labels[sentence, :slots].to(device))
            cotangents *= valid[sentence, :slots, None].to(device) * weights[point].view(-1, 1, 1)
            scores = target_token_scores(
                logits, path, cotangents, partial(reduce, x=x, x0=x0), linear=linear, activation=activation
            )
            per_sentence = torch.zeros((len(unique), *scores.shape[1:]), device=device).index_add_(0, local, scores)
            for i, values in zip(unique.tolist(), per_sentence.cpu().double().numpy(), strict=True):
                n_targets, n_tokens = totals[i].shape
                totals[i] += values[:n_targets, :n_tokens]
    return totals


class LayerIG:
    """Layer Integrated Gradients on the word embeddings, many sentences and labels at once."""

    name = "lig"
    description = (
        "Layer Integrated Gradients on the word embeddings (native, batched over sentences, steps and "
        "labels); baseline: special tokens kept, others [PAD]; L2-normalised scores, raw deltas."
    )
    parity = False
    checks_completeness = True
    """Whether the deltas measure this method's own completeness error (and so the tolerance applies)."""

    def attribute(
        self,
        model,
        tokenizer,
        texts: Sequence[EncodedText],
        targets: Sequence[Sequence[int]],
        config: ExplainConfig,
    ) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`."""
        raw = integrated_gradients(
            model,
            tokenizer,
            texts,
            targets,
            n_steps=config.n_steps,
            integration=config.integration,
            internal_batch_size=config.internal_batch_size,
            parity=self.parity,
            tolerance=config.tolerance if self.checks_completeness else None,
            max_steps=config.max_steps,
        )
        return [l2_normalize(r) for r in raw]


class LayerIGParity(LayerIG):
    """:class:`LayerIG` with transformers-interpret's position and token type ids."""

    name = "lig-parity"
    description = (
        "Native Layer Integrated Gradients configured like transformers-interpret (explicit position ids, "
        "token type 1 on the last [SEP], all-zero ids in the delta's baseline): same scores, much faster."
    )
    parity = True
    checks_completeness = False  # its delta, like transformers-interpret's, uses another baseline than its path


class Saliency:
    """Gradient norm of each token's word embedding."""

    name = "saliency"
    description = "Saliency: L2 norm of the gradient of the label output per token embedding; L2-normalised."

    def attribute(self, model, tokenizer, texts, targets, config: ExplainConfig) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`."""
        raw = saliency(model, tokenizer, texts, targets, internal_batch_size=config.internal_batch_size)
        return [l2_normalize(r) for r in raw]


class InputXGradient:
    """Word embedding times gradient, summed over the hidden size."""

    name = "input-x-gradient"
    description = "Input x Gradient on the word embeddings, summed over the hidden size; L2-normalised."

    def attribute(self, model, tokenizer, texts, targets, config: ExplainConfig) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`."""
        raw = input_x_gradient(model, tokenizer, texts, targets, internal_batch_size=config.internal_batch_size)
        return [l2_normalize(r) for r in raw]
