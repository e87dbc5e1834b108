"""Quality metrics on a tiny model trained so that one keyword decides the label."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from builders import english_rows, save_tiny_english_model

from mlflow_explain.config import ExplainConfig, TrainConfig
from mlflow_explain.data import Example, TextDataset
from mlflow_explain.explainer import explain_examples
from mlflow_explain.explanation import Explanation, LabelAttribution
from mlflow_explain.modeling import load_pretrained, train
from mlflow_explain.quality import (
    evaluate_quality,
    faithfulness,
    quality_metrics,
    quality_records,
    randomization_correlations,
    randomized_copy,
)

CONFIG = ExplainConfig(n_steps=16, target="predicted")


@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory):
    """A tiny BERT trained until the keyword of each sentence decides its label."""
    tmp = tmp_path_factory.mktemp("quality")
    rows = english_rows(per_label=20)
    examples = tuple(Example(r["text"], r["label"]) for r in rows)
    dataset = TextDataset(examples, examples[::4], ("cooking", "football", "space"), "keywords")
    model, tokenizer = load_pretrained(str(save_tiny_english_model(tmp / "model", seed=0)))
    training = TrainConfig(model="local", epochs=40, batch_size=8, learning_rate=5e-3, seed=0)
    result = train(model, tokenizer, dataset, training, tmp / "out")
    assert result.metrics["accuracy"] == 1.0
    probe = [
        Example(f"{f1} {key} {f2} {f3}", label)
        for f1, key, f2, f3, label in [
            ("the", "rocket", "big", "week", "space"),
            ("a", "striker", "new", "today", "football"),
            ("big", "oven", "with", "after", "cooking"),
            ("new", "orbit", "report", "says", "space"),
            ("week", "coach", "the", "a", "football"),
            ("today", "garlic", "says", "big", "cooking"),
        ]
    ]
    return model, tokenizer, probe


def _reversed(explanation: Explanation) -> Explanation:
    flipped = tuple(
        LabelAttribution(
            a.label, a.probability, tuple(replace(t, score=-t.score) for t in a.tokens), a.convergence_delta
        )
        for a in explanation.attributions
    )
    return replace(explanation, attributions=flipped)


def test_integrated_gradients_beat_the_random_reference(keyword_model):
    model, tokenizer, probe = keyword_model
    explanations = explain_examples(model, tokenizer, probe, CONFIG, progress=False)
    keyword_first = [max(e.primary.tokens, key=lambda t: t.score).token for e in explanations]
    assert keyword_first == ["rocket", "striker", "oven", "orbit", "coach", "garlic"]
    scores = faithfulness(model, tokenizer, explanations, seed=1)
    metrics = quality_metrics(scores)
    assert metrics["quality_comprehensiveness"] > metrics["quality_comprehensiveness_random"] + 0.1
    assert metrics["quality_sufficiency"] < metrics["quality_sufficiency_random"]


def test_reversed_attributions_move_both_metrics_the_wrong_way(keyword_model):
    model, tokenizer, probe = keyword_model
    explanations = explain_examples(model, tokenizer, probe, CONFIG, progress=False)
    right = quality_metrics(faithfulness(model, tokenizer, explanations))
    wrong = quality_metrics(faithfulness(model, tokenizer, [_reversed(e) for e in explanations]))
    assert wrong["quality_comprehensiveness"] < right["quality_comprehensiveness"]
    assert wrong["quality_sufficiency"] > right["quality_sufficiency"]
    # The random reference does not depend on the attributions.
    assert wrong["quality_comprehensiveness_random"] == pytest.approx(right["quality_comprehensiveness_random"])


def test_randomised_head_correlates_less_than_an_identical_copy(keyword_model):
    model, tokenizer, probe = keyword_model
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


def test_evaluate_quality_rows_and_metric_names(keyword_model):
    model, tokenizer, probe = keyword_model
    explanations = explain_examples(model, tokenizer, probe[:2], CONFIG, progress=False)
    faithfulness_only = evaluate_quality(model, tokenizer, explanations, CONFIG)  # randomization is opt-in
    assert all(np.isnan(q.randomization_spearman) for q in faithfulness_only)
    assert "quality_randomization_spearman" not in quality_metrics(faithfulness_only)
    qualities = evaluate_quality(model, tokenizer, explanations, replace(CONFIG, randomization=True))
    rows = quality_records(qualities)
    assert [r["sentence_id"] for r in rows] == [0, 1]
    assert all(r["label"] == e.predicted_label for r, e in zip(rows, explanations, strict=True))
    assert all(np.isfinite(r["randomization_spearman"]) for r in rows)
    assert set(quality_metrics(qualities)) == {
        "quality_comprehensiveness",
        "quality_sufficiency",
        "quality_comprehensiveness_random",
        "quality_sufficiency_random",
        "quality_randomization_spearman",
    }
