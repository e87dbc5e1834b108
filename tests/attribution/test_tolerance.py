"""The completeness tolerance: pairs above it get more points where their error is, on their own; the rest is kept."""

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
    exact = integrated_gradients(steep_model, tokenizer, encoded, [ALL] * 4, n_steps=1024)
    above = [(i, k) for i, r in enumerate(fixed) for k, d in enumerate(r.deltas) if abs(d) > 1e-3]
    assert 0 < len(above) < 4 * len(ALL)  # some pairs need more steps, not all
    for i, (before, after, reference) in enumerate(zip(fixed, refined, exact, strict=True)):
        for k in range(len(ALL)):
            if (i, k) in above:
                assert abs(after.deltas[k]) <= 1e-3 and after.steps[k] <= 512
                # the refined scores are the integral's: within the tolerance of 1024 evenly spread points,
                # token by token, where the 8 points were not
                error = np.abs(after.scores[k] - reference.scores[k]).max()
                assert error <= 1e-3 < np.abs(before.scores[k] - reference.scores[k]).max()
            else:
                assert after.steps[k] == 8
                np.testing.assert_array_equal(after.scores[k], before.scores[k])  # untouched


def test_a_steep_pair_gets_its_points_where_its_probability_rises(steep_model, tokenizer, encode):
    """Cutting the path where the error is needs far fewer points than doubling one rule over the whole path."""
    steeper = copy.deepcopy(steep_model)
    with torch.no_grad():
        steeper.classifier.weight.mul_(4.0)  # 48x: three of the four sentences at probabilities of 1.0 in float32
    encoded = encode(SENTENCES)
    refined = integrated_gradients(steeper, tokenizer, encoded, [ALL] * 4, n_steps=8, tolerance=1e-3, max_steps=512)
    adaptive, doubled = [], []
    for i, result in enumerate(refined):
        for k in np.flatnonzero(result.steps > 8):
            uniform = 8
            while abs(_alone(steeper, tokenizer, encoded[i], int(k), uniform).deltas[0]) > 1e-3:
                uniform *= 2
            adaptive.append(int(result.steps[k]))
            doubled.append(uniform)
    assert adaptive and sum(adaptive) < 0.75 * sum(doubled), (adaptive, doubled)  # 196 against 288 here


def _alone(model, tokenizer, text, label: int, n_steps: int):
    return integrated_gradients(model, tokenizer, [text], [[label]], n_steps=n_steps)[0]


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


def test_the_pieces_above_their_share_of_the_tolerance_are_halved_largest_error_first_within_the_limit():
    from mlflow_explain.attribution.gradients import _Pieces

    rule, piece_rule = [(0.5, 1.0)] * 4, [(0.5, 1.0)] * 2
    ends = [(np.zeros(2), np.ones(2))]  # f rises from 0 to 1 for both labels
    pieces = _Pieces([3], ends, [[0, 1]], rule, piece_rule)
    whole = pieces.whole()
    assert [(s.start, s.end, s.rows, len(s.points)) for s in whole] == [(0.0, 1.0, (0, 1), 4)]
    pieces.add([(whole[0], np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.59]]))])  # label 0 is 0 off, label 1 0.01
    assert [(s.start, s.end, s.rows) for s in pieces.splits(0.001, 64)] == [(0.0, 1.0, (1,))]
    assert pieces.splits(0.02, 64) == []  # within the tolerance
    first = pieces.splits(0.001, 64)
    assert pieces.unknown_midpoints(first) == [(0, 0.5)]
    pieces.know([((0, 0.5), np.array([0.5, 0.9]))])
    halves = pieces.halves(first)
    assert [(s.start, s.end, len(s.points)) for s in halves] == [(0.0, 0.5, 2), (0.5, 1.0, 2)]
    assert halves[0].points[0] == (0.25, 0.5)  # the piece rule mapped onto the piece: alpha and weight scaled
    # label 1: the first half is exact (0.9), the second 0.02 off: only it is halved again
    pieces.add([(halves[0], np.array([[0.4, 0.5, 0.0]])), (halves[1], np.array([[0.0, 0.0, 0.12]]))])
    assert [(s.start, s.end) for s in pieces.splits(0.001, 64)] == [(0.5, 1.0)]
    assert pieces.splits(0.001, 4) == []  # 4 points used: the limit leaves no room
    result = pieces.results()[0]
    np.testing.assert_allclose(result.scores, [[0.5, 0.5, 0.0], [0.4, 0.5, 0.12]])
    np.testing.assert_allclose(result.deltas, [0.0, 0.02])
    assert result.steps.tolist() == [4, 4]


@pytest.mark.parametrize(("tolerance", "steps"), [(0.01, 8), (None, 50)])
def test_n_steps_defaults_to_a_small_start_with_a_tolerance_and_to_50_without(tolerance, steps):
    assert ExplainConfig(tolerance=tolerance).n_steps == steps
    assert ExplainConfig(tolerance=tolerance, n_steps=12).n_steps == 12


def _counting_passes(monkeypatch) -> list[int]:
    """Count the gradient passes of ``integrated_gradients`` (calls of its scoring step)."""
    from mlflow_explain.attribution import gradients

    calls: list[int] = []
    scores = gradients._gradient_scores
    monkeypatch.setattr(gradients, "_gradient_scores", lambda *a, **k: calls.append(1) or scores(*a, **k))
    return calls


def _refined(model, tokenizer, encoded, start_cuts=None):
    """All labels of ``encoded`` from 8 steps, refined to a tolerance of 1e-3 (at most 512 points)."""
    return integrated_gradients(
        model, tokenizer, encoded, [ALL] * len(encoded), n_steps=8, tolerance=1e-3, max_steps=512, start_cuts=start_cuts
    )


def test_a_warm_start_from_the_last_cuts_gives_the_same_scores_in_one_pass(steep_model, tokenizer, encode, monkeypatch):
    encoded = encode(SENTENCES)
    passes = _counting_passes(monkeypatch)
    cold = _refined(steep_model, tokenizer, encoded)
    cold_passes = len(passes)
    assert all(len(r.cuts) == len(ALL) for r in cold)
    assert any(cuts for r in cold for cuts in r.cuts) and any(not cuts for r in cold for cuts in r.cuts)
    passes.clear()
    warm = _refined(steep_model, tokenizer, encoded, start_cuts=[r.cuts for r in cold])
    assert len(passes) == 1 < cold_passes  # the final pieces at once, no refinement round
    for before, after in zip(cold, warm, strict=True):
        np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
        assert after.steps.tolist() == before.steps.tolist() and after.cuts == before.cuts
        assert np.abs(after.deltas).max() <= 1e-3


def test_a_warm_start_still_refines_where_the_model_has_moved(steep_model, tokenizer, encode):
    encoded = encode(SENTENCES)
    earlier = _refined(steep_model, tokenizer, encoded)
    steeper = copy.deepcopy(steep_model)
    with torch.no_grad():
        steeper.classifier.weight.mul_(3.0)  # the model saturates further, as training goes on
    cold = _refined(steeper, tokenizer, encoded)
    warm = _refined(steeper, tokenizer, encoded, start_cuts=[r.cuts for r in earlier])
    exact = integrated_gradients(steeper, tokenizer, encoded, [ALL] * 4, n_steps=1024)
    for result, reference in zip(warm, exact, strict=True):
        assert np.abs(result.deltas).max() <= 1e-3
        assert np.abs(result.scores - reference.scores).max() <= 1e-3
    # it started from the earlier cuts: every earlier cut is still a cut
    for before, after in zip(earlier, warm, strict=True):
        assert all(set(b) <= set(a) for b, a in zip(before.cuts, after.cuts, strict=True))
    assert [r.cuts for r in warm] != [r.cuts for r in earlier]  # and it cut further where needed
    assert [r.cuts for r in cold] != [r.cuts for r in earlier]


def test_a_warm_start_groups_rows_by_piece_and_ignores_layouts_over_the_limit():
    from mlflow_explain.attribution.gradients import _Pieces

    rule, piece_rule = [(0.5, 1.0)] * 4, [(0.5, 1.0)] * 2
    pieces = _Pieces([3, 3], [(np.zeros(3), np.ones(3))] * 2, [[0, 1, 2], [0]], rule, piece_rule)
    cuts = [((0.5,), (0.25, 0.5), ()), [tuple(k / 64 for k in range(1, 64))]]  # the second: 64 pieces, 128 points
    started = pieces.start(cuts, limit=64)
    assert sorted((s.sentence, s.start, s.end, s.rows, len(s.points)) for s in started) == [
        (0, 0.0, 0.25, (1,), 2),
        (0, 0.0, 0.5, (0,), 2),
        (0, 0.0, 1.0, (2,), 4),  # no cuts: the whole path with the rule
        (0, 0.25, 0.5, (1,), 2),
        (0, 0.5, 1.0, (0, 1), 2),  # a piece two labels share is integrated once for both
        (1, 0.0, 1.0, (0,), 4),  # over the limit: the whole path
    ]
    assert pieces.unknown_points(started) == [(0, 0.25), (0, 0.5)]
    assert pieces.start([None, None], limit=64) == pieces.whole()


def test_explanations_carry_their_cuts_and_start_from_given_ones(steep_model, tokenizer, monkeypatch):
    examples = [Example(text, LABELS[0]) for text in SENTENCES]
    config = ExplainConfig(target="all", tolerance=1e-3, n_steps=8, max_steps=512)
    first = explain_examples(steep_model, tokenizer, examples, config, progress=False)
    cuts = {(e.text, a.label): a.cuts for e in first for a in e.attributions}
    assert len(cuts) == len(SENTENCES) * len(LABELS) and any(cuts.values())
    passes = _counting_passes(monkeypatch)
    again = explain_examples(steep_model, tokenizer, examples, config, progress=False, start_cuts=cuts)
    assert len(passes) == 1
    for before, after in zip(first, again, strict=True):
        for a, b in zip(before.attributions, after.attributions, strict=True):
            assert (b.cuts, b.n_steps, b.converged) == (a.cuts, a.n_steps, True)
            np.testing.assert_allclose([t.score for t in b.tokens], [t.score for t in a.tokens], atol=1e-6)
    fixed = explain_examples(steep_model, tokenizer, examples, ExplainConfig(tolerance=None, n_steps=8), progress=False)
    assert all(a.cuts is None for e in fixed for a in e.attributions)  # nothing refined, nothing to start from
