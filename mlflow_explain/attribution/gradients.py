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

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    output_function,
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
    start_cuts: Sequence[Sequence[tuple[float, ...] | None]] | None = None,
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
        tolerance: Completeness tolerance in probability units: the path of a sentence-label pair
            whose ``|delta|`` exceeds it is cut into pieces where the error is, each integrated with
            ``n_steps // 2`` points of the rule (at least 2; :class:`_Pieces`), on that pair's rows and
            labels only, until the pair meets it or would use more than ``max_steps`` points.
            ``None`` integrates the whole path once with ``n_steps`` points. Defaults to None.
        max_steps: Most integration points a refined pair may use. Defaults to ``n_steps`` (no refinement).
        start_cuts: With a ``tolerance``: per sentence, per target, the cut points to start from (a
            previous result's :attr:`RawAttribution.cuts`; ``None`` or empty for the whole path). Each
            piece gets the piece rule and is refined further where it still misses its share, so the
            result meets the tolerance as from a cold start; a layout over ``max_steps`` is ignored.
            Defaults to None.

    Returns:
        One :class:`RawAttribution` per sentence, with deltas, the integration points each label used and,
        with a ``tolerance``, where its path was cut.

    Example:
        >>> raw = integrated_gradients(model, tokenizer, encoded, [[0, 1]] * len(encoded))  # doctest: +SKIP
    """
    inputs = SentenceInputs(model, tokenizer, texts, parity=parity)
    if not len(inputs):
        return []
    device = model_device(model)
    probe = probe_batch([inputs.input_row(i) for i in range(len(inputs))], inputs.pad_id, device)
    # One installation of the shortcuts, and one evaluation of the path's ends, for every round.
    limit = max(max_steps or n_steps, n_steps)
    with shared_use(model), exact_shortcuts(model, probe):
        ends = _path_ends(model, inputs, internal_batch_size)
        piece_rule = integration_points(integration, max(2, n_steps // 2))
        pieces = _Pieces(inputs.lengths, ends, targets, integration_points(integration, n_steps), piece_rule)
        first = pieces.whole() if tolerance is None or start_cuts is None else pieces.start(start_cuts, limit)
        pieces.know(_path_outputs(model, inputs, pieces.unknown_points(first), internal_batch_size))
        pieces.add(_integrate_pieces(model, inputs, targets, first, internal_batch_size))
        if tolerance is not None:
            while splits := pieces.splits(tolerance, limit):
                pieces.know(_path_outputs(model, inputs, pieces.unknown_midpoints(splits), internal_batch_size))
                pieces.add(_integrate_pieces(model, inputs, targets, pieces.halves(splits), internal_batch_size))
    return pieces.results(with_cuts=tolerance is not None)


@dataclass(frozen=True)
class _Interval:
    """What one piece ``[start, end]`` of the path contributes to sentence ``sentence``'s target rows ``rows``."""

    sentence: int
    start: float
    end: float
    rows: tuple[int, ...]
    points: tuple[tuple[float, float], ...]  # the rule's (alpha, weight) pairs mapped onto [start, end]


class _Pieces:
    """Adaptive composite integration: each sentence-label pair's path cut into pieces, each with its own rule.

    The whole path is integrated with the rule; a piece ``[a, b]`` of it with the (smaller) piece rule
    mapped onto it. A piece's scores must sum to ``f(b) - f(a)``: that is its own completeness error
    (``f`` at a cut point costs a forward row, no backward pass). While a pair's total error is above the
    tolerance, its pieces whose error is above their share of it (``tolerance * (b - a)``) are halved,
    largest error first, as far as ``max_steps`` allows; once every piece meets its share the total does.
    A sharp rise of the probability (a saturated pair) so gets points where it happens instead of
    everywhere: on the embedded model after 30 epochs the pairs that need refining end at 8-36 points,
    where doubling the rule over the whole path took them to 16-128 (and every doubling integrates the
    whole path again). A later explanation of the same pairs may :meth:`start` from the cuts this one
    ended with (:attr:`RawAttribution.cuts`), and so skip the rounds that found them.
    """

    def __init__(self, lengths: Sequence[int], ends, targets: Sequence[Sequence[int]], rule, piece_rule) -> None:
        self.targets = [list(t) for t in targets]
        self.rule = list(rule)
        self.piece_rule = list(piece_rule)
        self.lengths = list(lengths)
        self.values = [{0.0: start, 1.0: end} for start, end in ends]  # f along each sentence's path
        # per sentence, per target row: {(start, end): (scores, completeness error, points)}
        self.pieces: list[list[dict[tuple[float, float], tuple[np.ndarray, float, int]]]] = [
            [{} for _ in t] for t in self.targets
        ]

    def whole(self) -> list[_Interval]:
        """Every sentence's whole path, for all its target rows."""
        return [self._interval(i, 0.0, 1.0, tuple(range(len(t)))) for i, t in enumerate(self.targets) if t]

    def start(self, cuts: Sequence[Sequence[tuple[float, ...] | None]], limit: int) -> list[_Interval]:
        """Every sentence's paths cut at ``cuts`` (per sentence, per target row), rows that share a piece together.

        A row without cuts, or whose pieces would take more than ``limit`` points, starts with its whole path.
        """
        wanted: dict[tuple[int, float, float], list[int]] = {}
        for i, targets in enumerate(self.targets):
            given = cuts[i] if i < len(cuts) and cuts[i] is not None else ()
            for row in range(len(targets)):
                row_cuts = given[row] if row < len(given) else None
                points = sorted({float(p) for p in row_cuts or () if 0.0 < p < 1.0})
                if (len(points) + 1) * len(self.piece_rule) > limit:
                    points = []
                bounds = [0.0, *points, 1.0]
                for a, b in itertools.pairwise(bounds):
                    wanted.setdefault((i, a, b), []).append(row)
        return [self._interval(i, a, b, tuple(rows)) for (i, a, b), rows in wanted.items()]

    def unknown_points(self, intervals: Sequence[_Interval]) -> list[tuple[int, float]]:
        """The ``(sentence, alpha)`` ends of ``intervals`` whose outputs are not known yet."""
        return self._unknown({(s.sentence, alpha) for s in intervals for alpha in (s.start, s.end)})

    def _unknown(self, points: set[tuple[int, float]]) -> list[tuple[int, float]]:
        return sorted(p for p in points if p[1] not in self.values[p[0]])

    def _interval(self, i: int, start: float, end: float, rows: tuple[int, ...]) -> _Interval:
        width = end - start
        rule = self.rule if width == 1.0 else self.piece_rule
        points = tuple((start + width * alpha, width * weight) for alpha, weight in rule)
        return _Interval(i, start, end, rows, points)

    def add(self, integrated: Sequence[tuple[_Interval, np.ndarray]]) -> None:
        """Record integrated pieces; a piece replaces the one it halves."""
        for interval, scores in integrated:
            i, a, b = interval.sentence, interval.start, interval.end
            f = self.values[i]
            for row, values in zip(interval.rows, scores, strict=True):
                label = self.targets[i][row]
                pair = self.pieces[i][row]
                for parent in [key for key in pair if key[0] <= a and b <= key[1] and key != (a, b)]:
                    del pair[parent]
                pair[(a, b)] = (values, float(values.sum() - (f[b][label] - f[a][label])), len(interval.points))

    def _total(self, i: int, row: int) -> tuple[np.ndarray, float]:
        pair = self.pieces[i][row]
        scores = np.sum([piece[0] for piece in pair.values()], axis=0)
        label = self.targets[i][row]
        return scores, float(scores.sum() - (self.values[i][1.0][label] - self.values[i][0.0][label]))

    def splits(self, tolerance: float, limit: int) -> list[_Interval]:
        """The pieces to halve next, with the target rows that need it; empty when every pair is done."""
        wanted: dict[tuple[int, float, float], list[int]] = {}
        for i, rows in enumerate(self.pieces):
            for row, pair in enumerate(rows):
                if abs(self._total(i, row)[1]) <= tolerance:
                    continue
                room = limit - sum(piece[2] for piece in pair.values())  # points the pair may still add
                over = [
                    (abs(err), key, n) for key, (_, err, n) in pair.items() if abs(err) > tolerance * (key[1] - key[0])
                ]
                for _, (a, b), n in sorted(over, reverse=True):
                    added = 2 * len(self.piece_rule) - n
                    if added > room:
                        break
                    room -= added
                    wanted.setdefault((i, a, b), []).append(row)
        return [self._interval(i, a, b, tuple(rows)) for (i, a, b), rows in wanted.items()]

    def unknown_midpoints(self, splits: Sequence[_Interval]) -> list[tuple[int, float]]:
        """The ``(sentence, alpha)`` cut points of ``splits`` whose outputs are not known yet."""
        return self._unknown({(s.sentence, 0.5 * (s.start + s.end)) for s in splits})

    def know(self, outputs: Sequence[tuple[tuple[int, float], np.ndarray]]) -> None:
        """Record the outputs at cut points (from :func:`_path_outputs`)."""
        for (i, alpha), values in outputs:
            self.values[i][alpha] = values

    def halves(self, splits: Sequence[_Interval]) -> list[_Interval]:
        """The two halves of each piece in ``splits``, for the same target rows."""
        halves = []
        for s in splits:
            middle = 0.5 * (s.start + s.end)
            halves += [
                self._interval(s.sentence, s.start, middle, s.rows),
                self._interval(s.sentence, middle, s.end, s.rows),
            ]
        return halves

    def results(self, with_cuts: bool = True) -> list[RawAttribution]:
        """Each sentence's scores (the sum over its pieces), completeness errors, points used and cut points."""
        results = []
        for i, rows in enumerate(self.pieces):
            totals = [self._total(i, row) for row in range(len(rows))]
            scores = np.stack([t[0] for t in totals]) if totals else np.zeros((0, self.lengths[i]))
            steps = np.array([sum(piece[2] for piece in pair.values()) for pair in rows], dtype=np.int64)
            cuts = tuple(tuple(sorted(a for a, _ in pair if a > 0.0)) for pair in rows) if with_cuts else None
            results.append(RawAttribution(scores, np.array([t[1] for t in totals]), steps, cuts))
        return results


def _path_ends(model, inputs: SentenceInputs, internal_batch_size: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(f(baseline), f(input))`` of every label, per sentence (float64): the ends of the path."""
    n = len(inputs)
    rows = [inputs.input_row(i) for i in range(n)] + [inputs.baseline_row(i) for i in range(n)]
    ends = probabilities(model, rows, inputs.pad_id, output_activation(model), internal_batch_size).double().numpy()
    return [(ends[n + i], ends[i]) for i in range(n)]


def _path_outputs(
    model, inputs: SentenceInputs, requests: Sequence[tuple[int, float]], internal_batch_size: int | None
) -> list[tuple[tuple[int, float], np.ndarray]]:
    """The label outputs (float64) of sentence ``i`` at ``alpha`` on its path, for each ``(i, alpha)``: forward only."""
    device = model_device(model)
    activation = output_activation(model)
    embedding = model.get_input_embeddings()
    found = []
    lengths = [inputs.lengths[i] for i, _ in requests]
    with torch.no_grad():
        for batch in plan_passes(lengths, [1] * len(requests), internal_batch_size, token_budget(device)):
            chosen = [requests[item] for item, _ in batch]
            rows = stack_rows([inputs.input_row(i) for i, _ in chosen], inputs.pad_id, device)
            baseline = stack_rows([Row(inputs.baseline_ids[i]) for i, _ in chosen], inputs.pad_id, device)
            x, x0 = embedding(rows["input_ids"]), embedding(baseline["input_ids"])
            alphas = torch.tensor([alpha for _, alpha in chosen], device=device, dtype=x.dtype).view(-1, 1, 1)
            logits = forward_logits(model, rows, torch.lerp(x0, x, alphas))
            found += zip(chosen, output_function(logits.double(), activation).cpu().numpy(), strict=True)
    return found


def _integrate_pieces(
    model, inputs: SentenceInputs, targets: Sequence[Sequence[int]], intervals: Sequence[_Interval], internal_batch_size
) -> list[tuple[_Interval, np.ndarray]]:
    """Integrate each piece with the rule mapped onto it, for its target rows: ``(piece, scores)`` pairs."""
    if not intervals:
        return []
    raw = _gradient_scores(
        model,
        inputs.select([s.sentence for s in intervals]),
        [[targets[s.sentence][row] for row in s.rows] for s in intervals],
        [s.points for s in intervals],
        _along_path,
        linear=True,
        internal_batch_size=internal_batch_size,
    )
    return list(zip(intervals, raw, strict=True))


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
    if integration == "gausslegendre":
        nodes, weights = gauss_legendre(n_steps)
        return list(zip((0.5 * (nodes + 1.0)).tolist(), (0.5 * weights).tolist(), strict=True))
    if integration == "riemann_trapezoid":
        weights = [1.0 / (n_steps - 1)] * n_steps
        weights[0] = weights[-1] = 0.5 / (n_steps - 1)
        return list(zip(np.linspace(0.0, 1.0, n_steps).tolist(), weights, strict=True))
    from captum.attr._utils.approximation_methods import approximation_parameters  # 0.3 s to import

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
    at_input = [[(1.0, 1.0)]] * len(inputs)
    raw = _gradient_scores(
        model, inputs, targets, at_input, reduce, linear=linear, internal_batch_size=internal_batch_size
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
    points: Sequence[Sequence[tuple[float, float]]],
    reduce: _Reduce,
    linear: bool,
    internal_batch_size: int | None,
) -> list[np.ndarray]:
    """Per sentence, the sum over its ``points`` ``(alpha, weight)`` of ``weight * reduce(grad at x0 + alpha(x - x0))``.

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
    totals = [np.zeros((len(t), n)) for t, n in zip(targets, inputs.lengths, strict=True)]
    n_rows = [len(p) for p in points]
    if not totals:
        return totals
    probe = probe_batch([inputs.input_row(i) for i in range(len(inputs))], inputs.pad_id, device)
    with shared_use(model), exact_shortcuts(model, probe), torch.enable_grad():
        for batch in plan_passes(inputs.lengths, n_rows, internal_batch_size, token_budget(device)):
            sentence = torch.tensor([i for i, _ in batch])
            slots = int(valid[sentence].sum(dim=1).max())  # the most targets of a sentence in this pass
            if slots == 0:
                continue
            alpha = torch.tensor([points[i][k][0] for i, k in batch], device=device)
            weight = torch.tensor([points[i][k][1] for i, k in batch], device=device)
            unique, local = torch.unique_consecutive(sentence, return_inverse=True)
            local = local.to(device)
            batch_inputs = stack_rows([inputs.input_row(i) for i in unique.tolist()], inputs.pad_id, device)
            baseline = stack_rows([Row(inputs.baseline_ids[i]) for i in unique.tolist()], inputs.pad_id, device)
            with torch.no_grad():
                x = embedding(batch_inputs["input_ids"])[local]
                x0 = embedding(baseline["input_ids"])[local]
            path = torch.lerp(x0, x, alpha.view(-1, 1, 1).to(x.dtype)).requires_grad_(True)
            logits = forward_logits(model, {k: v[local] for k, v in batch_inputs.items()}, path)
            cotangents = activation_jacobian(logits.detach(), activation, labels[sentence, :slots].to(device))
            cotangents *= valid[sentence, :slots, None].to(device) * weight.view(-1, 1, 1)
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
    warm_starts = True
    """Whether :meth:`attribute` takes ``start_cuts`` (where a previous explanation's refinement ended)."""

    def attribute(
        self,
        model,
        tokenizer,
        texts: Sequence[EncodedText],
        targets: Sequence[Sequence[int]],
        config: ExplainConfig,
        start_cuts: Sequence[Sequence[tuple[float, ...] | None]] | None = None,
    ) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`; ``start_cuts`` as in
        :func:`integrated_gradients` (where the adaptive integration starts; used with a tolerance)."""
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
            start_cuts=start_cuts,
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
    warm_starts = False  # no tolerance: nothing is refined


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
