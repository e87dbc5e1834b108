"""The completeness tolerance: pairs above it are integrated again with more steps, on their own; the rest is kept."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from mlflow_explain.attribution.gradients import integrated_gradients
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.errors import ConfigError
from mlflow_explain.explainer import explain_examples
from mlflow_explain.explanation import summary_metrics
from mlflow_explain.render import attribution_table, render_html, sentence_table

from .conftest import LABELS, SENTENCES

ALL = list(range(len(LABELS)))


@pytest.fixture(scope="module")
def steep_model(keyword_model):
    """The keyword model with a 12x classifier: the keyword's probability rises within a few % of the path."""
    model = copy.deepcopy(keyword_model)
    with torch.no_grad():
        model.classifier.weight.mul_(12.0)
    model.config.id2label = dict(enumerate(LABELS))
    model.config.label2id = {label: i for i, label in enumerate(LABELS)}
    return model.eval()


def test_only_the_pairs_above_the_tolerance_are_refined(steep_model, tokenizer, encode):
    encoded = encode(SENTENCES)
    fixed = integrated_gradients(steep_model, tokenizer, encoded, [ALL] * 4, n_steps=8)
    refined = integrated_gradients(steep_model, tokenizer, encoded, [ALL] * 4, n_steps=8, tolerance=1e-3, max_steps=512)
    above = [(i, k) for i, r in enumerate(fixed) for k, d in enumerate(r.deltas) if abs(d) > 1e-3]
    assert 0 < len(above) < 4 * len(ALL)  # some pairs need more steps, not all
    for i, (before, after) in enumerate(zip(fixed, refined, strict=True)):
        for k in range(len(ALL)):
            if (i, k) in above:
                assert after.steps[k] > 8 and abs(after.deltas[k]) <= 1e-3
                # the refined pair is what integrating it alone at its final step count gives
                alone = integrated_gradients(steep_model, tokenizer, [encoded[i]], [[k]], n_steps=int(after.steps[k]))
                np.testing.assert_allclose(after.scores[k], alone[0].scores[0], atol=1e-6)  # float32 batching
            else:
                assert after.steps[k] == 8
                np.testing.assert_array_equal(after.scores[k], before.scores[k])  # untouched


def test_a_pair_still_above_the_tolerance_is_flagged_everywhere(steep_model, tokenizer, caplog):
    examples = [Example(t, None) for t in SENTENCES]
    config = ExplainConfig(n_steps=2, tolerance=1e-9, max_steps=4, quality=False)
    with caplog.at_level(logging.WARNING):
        explanations = explain_examples(steep_model, tokenizer, examples, config, progress=False)
    flagged = [a for e in explanations for a in e.attributions if a.converged is False]
    assert flagged and all(a.n_steps == 4 for a in flagged)
    assert "still above the completeness tolerance" in caplog.text
    metrics = summary_metrics(explanations)
    assert metrics["convergence_failures"] == len(flagged) and metrics["n_steps_max"] == 4
    table = attribution_table(explanations)
    assert set(table.n_steps.dropna()) <= {2, 4} and (table.converged == False).any()  # noqa: E712
    assert "converged" in sentence_table(explanations).columns
    assert "completeness error above tolerance" in render_html(explanations)


def test_without_a_tolerance_every_pair_keeps_n_steps(steep_model, tokenizer):
    examples = [Example(t, None) for t in SENTENCES[:2]]
    explanations = explain_examples(
        steep_model, tokenizer, examples, ExplainConfig(n_steps=8, tolerance=None, quality=False), progress=False
    )
    assert {a.n_steps for e in explanations for a in e.attributions} == {8}
    assert {a.converged for e in explanations for a in e.attributions} == {None}
    assert "convergence_failures" not in summary_metrics(explanations)


@pytest.mark.parametrize("tolerance", [0.0, -0.1])
def test_a_tolerance_must_be_positive(tolerance):
    with pytest.raises(ConfigError, match="tolerance must be a positive"):
        ExplainConfig(tolerance=tolerance)


@pytest.mark.parametrize("method", ["lig-parity", "interpret-lig"])
def test_transformers_interpret_style_deltas_are_reported_not_refined(steep_model, tokenizer, method, caplog):
    """Their delta uses another baseline than their path (transformers-interpret's), so it never meets a tolerance."""
    examples = [Example(t, None) for t in SENTENCES[:2]]
    config = ExplainConfig(method=method, n_steps=8, tolerance=1e-9, quality=False)
    with caplog.at_level(logging.WARNING):
        explanations = explain_examples(steep_model, tokenizer, examples, config, progress=False)
    pairs = [a for e in explanations for a in e.attributions]
    assert all(a.converged is None for a in pairs) and "completeness tolerance" not in caplog.text
    assert all(a.convergence_delta is not None for a in pairs)
    assert {a.n_steps for a in pairs} <= {8, None}


def test_refinement_rounds_share_one_shortcut_installation_and_one_evaluation_of_the_ends(
    steep_model, tokenizer, encode, monkeypatch
):
    from mlflow_explain.attribution import _shortcuts, gradients

    installs, ends = [], []
    install, probabilities = _shortcuts._install, gradients.probabilities
    monkeypatch.setattr(_shortcuts, "_install", lambda model: installs.append(1) or install(model))
    monkeypatch.setattr(gradients, "probabilities", lambda *a, **k: ends.append(len(a[1])) or probabilities(*a, **k))
    encoded = encode(SENTENCES)
    refined = integrated_gradients(steep_model, tokenizer, encoded, [ALL] * 4, n_steps=4, tolerance=1e-3, max_steps=64)
    assert max(int(r.steps.max()) for r in refined) >= 16  # at least two refinement rounds ran
    assert installs == [1] and ends == [2 * len(encoded)]  # inputs and baselines, once


def test_the_plan_doubles_the_steps_of_the_pairs_above_the_tolerance_up_to_the_limit():
    from mlflow_explain.attribution import RawAttribution
    from mlflow_explain.attribution.gradients import refinement_plan

    results = [
        RawAttribution(np.zeros((3, 2)), deltas=np.array([0.5, 0.001, -0.2]), steps=np.array([8, 8, 32])),
        RawAttribution(np.zeros((2, 2)), deltas=np.array([0.0, 0.3]), steps=np.array([48, 64])),
    ]
    assert refinement_plan(results, 0.01, 64) == {16: {0: [0]}, 64: {0: [2]}}  # the pair at the limit stays
    assert refinement_plan(results, 1.0, 64) == {}


@pytest.mark.parametrize(("tolerance", "steps"), [(0.01, 8), (None, 50)])
def test_n_steps_defaults_to_a_small_start_with_a_tolerance_and_to_50_without(tolerance, steps):
    assert ExplainConfig(tolerance=tolerance).n_steps == steps
    assert ExplainConfig(tolerance=tolerance, n_steps=12).n_steps == 12
