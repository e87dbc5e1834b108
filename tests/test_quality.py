"""Quality metrics on the hand-weighted keyword model, whose right answers are known without training.

In :func:`builders.keyword_bert` only the keyword of a sentence has a word embedding: replacing any other
token by [MASK] changes nothing, and a sentence without its keyword is predicted uniformly. So for a
sentence predicted with probability ``p``, removing the keyword drops ``p`` by exactly ``p - 1/3`` and
every other perturbation by exactly 0, which pins down what each figure must be.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from builders import keyword_bert, keyword_tokenizer, tiny_bert

from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.explainer import explain_examples
from mlflow_explain.explanation import Explanation, LabelAttribution
from mlflow_explain.quality import (
    evaluate_quality,
    faithfulness,
    quality_metrics,
    quality_records,
    randomization_correlations,
    randomized_copy,
)

CONFIG = ExplainConfig(n_steps=16, target="predicted")

PROBE = [
    Example(f"{f1} {key} {f2} {f3}", label)
    for f1, key, f2, f3, label in [
        ("the", "rocket", "big", "week", "space"),
        ("a", "goal", "new", "today", "football"),
        ("big", "soup", "with", "after", "cooking"),
        ("new", "rocket", "report", "says", "space"),
        ("week", "goal", "the", "a", "football"),
        ("today", "soup", "says", "big", "cooking"),
    ]
]
"""One keyword among three filler words: the top 50 % (:data:`~mlflow_explain.quality.FRACTIONS` at most, two
words) never reach the last-ranked word."""


@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory):
    """:func:`builders.keyword_bert`, its tokenizer and the probe sentences."""
    return keyword_bert(), keyword_tokenizer(tmp_path_factory.mktemp("vocab")), PROBE


@pytest.fixture(scope="module")
def explained(keyword_model):
    """Integrated Gradients explanations of the probe."""
    model, tokenizer, probe = keyword_model
    return explain_examples(model, tokenizer, probe, CONFIG, progress=False)


def keyword_drop(explanation: Explanation) -> float:
    """What removing the keyword costs the predicted label: from ``p`` to the uniform third."""
    return explanation.predicted_probability - 1 / 3


def _reversed(explanation: Explanation) -> Explanation:
    flipped = tuple(
        LabelAttribution(
            a.label, a.probability, tuple(replace(t, score=-t.score) for t in a.tokens), a.convergence_delta
        )
        for a in explanation.attributions
    )
    return replace(explanation, attributions=flipped)


def test_integrated_gradients_beat_the_random_reference(keyword_model, explained):
    model, tokenizer, _ = keyword_model
    keyword_first = [max(e.primary.tokens, key=lambda t: t.score).token for e in explained]
    assert keyword_first == ["rocket", "goal", "soup", "rocket", "goal", "soup"]
    assert all(e.predicted_label == example.label for e, example in zip(explained, PROBE, strict=True))
    scores = faithfulness(model, tokenizer, explained, seed=1)
    for quality, explanation in zip(scores, explained, strict=True):
        drop = keyword_drop(explanation)
        assert drop > 0.2
        # The keyword ranks first: every removal takes it, every kept top-k keeps it.
        assert quality.comprehensiveness == pytest.approx(drop, abs=1e-6)
        assert quality.sufficiency == pytest.approx(0.0, abs=1e-6)
        # A random ranking puts the keyword among the removed or among the dropped, at each fraction.
        assert quality.comprehensiveness_random + quality.sufficiency_random == pytest.approx(drop, abs=1e-6)
    metrics = quality_metrics(scores)
    assert metrics["quality_comprehensiveness"] > metrics["quality_comprehensiveness_random"] + 0.1
    assert metrics["quality_sufficiency"] < metrics["quality_sufficiency_random"] - 0.1


def test_reversed_attributions_move_both_metrics_the_wrong_way(keyword_model, explained):
    model, tokenizer, _ = keyword_model
    right = faithfulness(model, tokenizer, explained)
    wrong = faithfulness(model, tokenizer, [_reversed(e) for e in explained])
    for r, w, explanation in zip(right, wrong, explained, strict=True):
        # The keyword ranks last now: the top 50 % never take it, and keeping them always drops it.
        assert w.comprehensiveness == pytest.approx(0.0, abs=1e-6)
        assert w.sufficiency == pytest.approx(keyword_drop(explanation), abs=1e-6)
        assert w.comprehensiveness < r.comprehensiveness - 0.2 and w.sufficiency > r.sufficiency + 0.2
        # The random reference does not depend on the attributions.
        assert (w.comprehensiveness_random, w.sufficiency_random) == (r.comprehensiveness_random, r.sufficiency_random)


def test_randomised_head_correlates_less_than_an_identical_copy(keyword_model):
    # A random BERT, not the keyword model: there only the keyword differs from its baseline in any
    # model, so every other token scores 0 and the ranks cannot change (see test_evaluate_quality...).
    _, tokenizer, probe = keyword_model
    model = tiny_bert()
    explanations = explain_examples(model, tokenizer, probe, CONFIG, progress=False)
    same = randomization_correlations(model, tokenizer, explanations, CONFIG, reference_model=copy.deepcopy(model))
    randomised = randomization_correlations(model, tokenizer, explanations, CONFIG, top_layers=1)
    assert np.allclose(same, 1.0)
    assert np.nanmean(randomised) < np.mean(same) - 0.2


def test_randomized_copy_leaves_the_original_alone(keyword_model):
    model, _, _ = keyword_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    randomized = randomized_copy(model, top_layers=1, seed=3)
    after = model.state_dict()
    assert all((before[k] == after[k]).all() for k in before)
    changed = [k for k, v in randomized.state_dict().items() if not (v == before[k]).all()]
    assert any(k.startswith("classifier") for k in changed)
    assert any(".layer.0." in k for k in changed)  # the top (only) encoder layer
    assert not any("embeddings" in k for k in changed)


def test_evaluate_quality_rows_and_metric_names(keyword_model, explained):
    model, tokenizer, _ = keyword_model
    explanations = explained[:2]
    faithfulness_only = evaluate_quality(model, tokenizer, explanations, CONFIG)  # randomization is opt-in
    assert all(np.isnan(q.randomization_spearman) for q in faithfulness_only)
    assert "quality_randomization_spearman" not in quality_metrics(faithfulness_only)
    qualities = evaluate_quality(model, tokenizer, explanations, replace(CONFIG, randomization=True))
    rows = quality_records(qualities)
    assert [r["sentence_id"] for r in rows] == [0, 1]
    assert [r["label"] for r in rows] == [e.predicted_label for e in explanations] == ["space", "football"]
    assert [r["convergence_delta"] for r in rows] == [e.primary.convergence_delta for e in explanations]
    assert [r["comprehensiveness"] for r in rows] == [q.comprehensiveness for q in faithfulness_only]
    # Only the keyword differs from its baseline, in the randomised model too: only its sign can change.
    assert [abs(r["randomization_spearman"]) for r in rows] == pytest.approx([1.0, 1.0])
    assert set(quality_metrics(qualities)) == {
        "quality_comprehensiveness",
        "quality_sufficiency",
        "quality_comprehensiveness_random",
        "quality_sufficiency_random",
        "quality_randomization_spearman",
    }
