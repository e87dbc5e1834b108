"""Layer Integrated Gradients: completeness, integration settings, targets, batching and memory bound."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from mlflow_explain.attribution import _engine
from mlflow_explain.attribution.gradients import gauss_legendre, integrated_gradients, integration_points
from mlflow_explain.config import INTEGRATION_METHODS, MAX_STEPS, ExplainConfig
from mlflow_explain.errors import ConfigError
from mlflow_explain.modeling import predict_proba

from .conftest import KEYWORDS, LABELS, SENTENCES

SATURATED = "a big rocket launch today"

ALL = list(range(len(LABELS)))


def _deltas(raw) -> np.ndarray:
    return np.concatenate([r.deltas for r in raw])


def test_delta_is_sum_of_attributions_minus_change_in_output(softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES)
    raw = integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * len(encoded), n_steps=4)

    pad = tokenizer.pad_token_id
    baselines = [
        replace(e, input_ids=tuple(i if special else pad for i, special in zip(e.input_ids, e.special, strict=True)))
        for e in encoded
    ]
    change = predict_proba(softmax_model, tokenizer, encoded) - predict_proba(softmax_model, tokenizer, baselines)
    for r, expected in zip(raw, change, strict=True):
        np.testing.assert_allclose(r.scores.sum(axis=1) - r.deltas, expected, atol=1e-6)


def test_completeness_error_shrinks_as_n_steps_grows(softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES)
    errors = [
        np.abs(_deltas(integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * 4, n_steps=n))).max()
        for n in (1, 2, 4, 16)
    ]

    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-5
    assert errors[0] > 1e-3  # one step is visibly wrong, so the decrease is not noise


def test_n_steps_and_integration_rule_change_the_scores(softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES[2:3])

    def scores(**kwargs) -> np.ndarray:
        return integrated_gradients(softmax_model, tokenizer, encoded, [ALL], **kwargs)[0].scores

    reference = scores(n_steps=64)
    assert np.abs(scores(n_steps=1) - reference).max() > 1e-3
    assert np.abs(scores(n_steps=3, integration="riemann_left") - scores(n_steps=3)).max() > 1e-3
    for rule in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"):
        # Every rule converges to the same integral, Riemann sums slowly.
        np.testing.assert_allclose(scores(n_steps=300, integration=rule), reference, atol=5e-3)


def test_targets_can_differ_per_sentence(softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES)
    targets = [[0], [2, 1], ALL, []]

    some = integrated_gradients(softmax_model, tokenizer, encoded, targets, n_steps=8)
    every = integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * 4, n_steps=8)

    for text, label_ids, part, full in zip(encoded, targets, some, every, strict=True):
        assert part.scores.shape == (len(label_ids), len(text.input_ids))
        np.testing.assert_allclose(part.scores, full.scores[label_ids], atol=1e-6)
        np.testing.assert_allclose(part.deltas, full.deltas[label_ids], atol=1e-6)


@pytest.mark.parametrize("model_name", ["softmax_model", "multilabel_model"])
def test_batched_equals_one_sentence_at_a_time(model_name, tokenizer, encode, request):
    model = request.getfixturevalue(model_name)
    encoded = encode(SENTENCES)
    targets = [ALL, [1], [0, 2], ALL]

    batched = integrated_gradients(model, tokenizer, encoded, targets, n_steps=8)
    for text, label_ids, together in zip(encoded, targets, batched, strict=True):
        alone = integrated_gradients(model, tokenizer, [text], [label_ids], n_steps=8)[0]
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-6)
        np.testing.assert_allclose(together.deltas, alone.deltas, atol=1e-6)


class _RowCounter:
    """Records the shape of every batch the model sees."""

    def __init__(self, model):
        self.shapes: list[tuple[int, int]] = []
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, _args, kwargs):
        self.shapes.append(tuple(kwargs["input_ids"].shape))

    def close(self) -> None:
        self._handle.remove()


def test_internal_batch_size_bounds_passes_without_changing_scores(softmax_model, tokenizer, encode):
    long_text = " ".join(["the big league match of the week"] * 8)  # 58 tokens
    encoded = encode([long_text, SENTENCES[1]])
    assert len(encoded[0].input_ids) > 50
    reference = integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * 2, n_steps=10)

    counter = _RowCounter(softmax_model)
    try:
        bounded = integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * 2, n_steps=10, internal_batch_size=3)
    finally:
        counter.close()

    assert max(rows for rows, _ in counter.shapes) <= 3
    for r, b in zip(reference, bounded, strict=True):
        np.testing.assert_allclose(b.scores, r.scores, atol=1e-6)
        np.testing.assert_allclose(b.deltas, r.deltas, atol=1e-6)


def test_token_budget_bounds_padded_tokens_per_pass(softmax_model, tokenizer, encode, monkeypatch):
    monkeypatch.setattr(_engine, "TOKEN_BUDGET", 128)
    encoded = encode(SENTENCES)
    counter = _RowCounter(softmax_model)
    try:
        integrated_gradients(softmax_model, tokenizer, encoded, [ALL] * 4, n_steps=12)
    finally:
        counter.close()

    assert max(rows * width for rows, width in counter.shapes) <= 128
    assert len(counter.shapes) > 4  # the budget really split the work


def test_sentences_are_grouped_by_length():
    lengths = [30, 4, 29, 5]
    passes = list(_engine.plan_passes(lengths, [2] * 4, internal_batch_size=4, token_budget=10_000))

    assert [[item for item, _ in batch] for batch in passes] == [[1, 1, 3, 3], [2, 2, 0, 0]]


@pytest.mark.parametrize("rule", INTEGRATION_METHODS)
def test_every_rules_weights_sum_to_one(rule):
    for n_steps in (2, 3, 50, 401):
        points = integration_points(rule, n_steps)
        assert len(points) == n_steps
        assert sum(w for _, w in points) == pytest.approx(1.0, abs=1e-12)
        alphas = [a for a, _ in points]
        assert alphas == sorted(alphas) and alphas[0] >= 0.0 and alphas[-1] <= 1.0


@pytest.fixture(scope="module")
def saturated_model(keyword_model):
    """The keyword model with a 12x steeper classifier: the keyword's label reaches a probability near 1."""
    model = copy.deepcopy(keyword_model)
    with torch.no_grad():
        model.classifier.weight.mul_(12.0)
    return model.eval()


@pytest.mark.parametrize("rule", INTEGRATION_METHODS)
def test_each_rules_delta_goes_to_zero_on_a_saturated_pair(saturated_model, tokenizer, encode, rule):
    encoded = encode([SATURATED])
    label = [KEYWORDS["rocket"]]
    probability = predict_proba(saturated_model, tokenizer, encoded)[0, label[0]]
    assert probability > 0.999  # saturated: the integrand is a narrow spike along the path

    def delta(n_steps: int) -> float:
        raw = integrated_gradients(saturated_model, tokenizer, encoded, [label], n_steps=n_steps, integration=rule)
        return abs(float(raw[0].deltas[0]))

    errors = [delta(n) for n in (25, 100, 400)]
    assert errors[0] > errors[1] > errors[2] or errors[2] < 1e-6, errors
    assert errors[2] < (1e-4 if rule in ("gausslegendre", "riemann_middle", "riemann_trapezoid") else 1e-2), errors


def test_captums_trapezoid_weights_would_leave_a_delta_of_one_nth(saturated_model, tokenizer, encode):
    """The control: Captum's trapezoid weighs its nodes 1/n instead of 1/(n-1), so its delta stays near -Δf/n."""
    n = 400
    encoded = encode([SATURATED])
    label = [KEYWORDS["rocket"]]
    ours = integrated_gradients(
        saturated_model, tokenizer, encoded, [label], n_steps=n, integration="riemann_trapezoid"
    )[0]
    change = float(ours.scores.sum() - ours.deltas[0])
    captum_delta = float(ours.scores.sum()) * (n - 1) / n - change  # the same nodes, every weight times (n-1)/n
    assert abs(float(ours.deltas[0])) < 1e-4
    assert abs(captum_delta) > 1e-3 and captum_delta == pytest.approx(-change / n, abs=1e-4)


@pytest.mark.parametrize("n_steps", [1, 2, 3, 7, 50, 128, 512])
def test_gauss_legendre_nodes_equal_numpys(n_steps):
    nodes, weights = gauss_legendre(n_steps)
    expected_nodes, expected_weights = np.polynomial.legendre.leggauss(n_steps)
    np.testing.assert_allclose(nodes, expected_nodes, atol=1e-13, rtol=0)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-13, rtol=0)
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    points = integration_points("gausslegendre", n_steps)
    np.testing.assert_allclose([a for a, _ in points], alphas(n_steps), atol=1e-13, rtol=0)
    np.testing.assert_allclose([w for _, w in points], step_sizes(n_steps), atol=1e-13, rtol=0)


def test_the_largest_rule_is_computed_without_a_quadratic_matrix():
    nodes, weights = gauss_legendre(MAX_STEPS)  # numpy's leggauss would build a 4096 x 4096 matrix
    assert nodes.shape == weights.shape == (MAX_STEPS,)
    assert weights.sum() == pytest.approx(2.0, abs=1e-12) and np.all(np.diff(nodes) > 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_steps": MAX_STEPS + 1}, "n_steps must be between 1 and 4096"),
        ({"n_steps": 100_000}, "n_steps must be between 1 and 4096"),
        ({"max_steps": MAX_STEPS + 1}, "max_steps must be between 1 and 4096"),
        ({"n_samples": 1001}, "n_samples must be between 1 and 1000"),
    ],
)
def test_work_is_bounded(settings, message):
    with pytest.raises(ConfigError, match=message):
        ExplainConfig(**settings)
