"""Every registered method: the registry, output shapes, known answers and the explanation pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from mlflow_explain.attribution import get_attribution_method, list_attribution_methods
from mlflow_explain.attribution.perturbation import shapley_sampling
from mlflow_explain.config import ExplainConfig
from mlflow_explain.errors import ConfigError

from .conftest import KEYWORDS, LABELS, SENTENCES

NATIVE = ["input-x-gradient", "lig", "lig-parity", "occlusion", "saliency", "shapley-sampling"]
WITH_DELTAS = {"lig", "lig-parity", "shapley-sampling", "interpret-lig"}
ALL = list(range(len(LABELS)))
FAST = ExplainConfig(n_steps=8, n_samples=6)


def test_registry_lists_every_method():
    assert list_attribution_methods() == sorted([*NATIVE, "interpret-lig"])
    for name in list_attribution_methods():
        method = get_attribution_method(name)
        assert method.name == name
        assert method.description


def test_unknown_method_names_the_choices():
    with pytest.raises(ConfigError, match=r"lig-parity.*shapley-sampling"):
        get_attribution_method("deeplift")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"integration": "simpson"}, "gausslegendre"),
        ({"integration": "riemann_trapezoid", "n_steps": 1}, "n_steps >= 2"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_config_rejects_bad_attribution_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        ExplainConfig(**settings)


@pytest.mark.parametrize("name", [*NATIVE, "interpret-lig"])
def test_scores_have_one_normalised_row_per_target(name, softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES[:3])
    targets = [[1], ALL, [2, 0]]

    raw = get_attribution_method(name).attribute(softmax_model, tokenizer, encoded, targets, FAST)

    assert len(raw) == len(encoded)
    for r, text, label_ids in zip(raw, encoded, targets, strict=True):
        assert r.scores.shape == (len(label_ids), len(text.input_ids))
        np.testing.assert_allclose(np.linalg.norm(r.scores, axis=1), 1.0, atol=1e-6)
        assert np.all(r.scores[:, np.asarray(text.special)] == 0)
        if name in WITH_DELTAS:
            assert r.deltas.shape == (len(label_ids),)
        else:
            assert r.deltas is None


@pytest.mark.parametrize("name", NATIVE)
def test_batched_equals_one_sentence_at_a_time(name, multilabel_model, tokenizer, encode):
    method = get_attribution_method(name)
    encoded = encode(SENTENCES)
    targets = [ALL, [2], [0, 1], ALL]

    batched = method.attribute(multilabel_model, tokenizer, encoded, targets, FAST)
    for text, label_ids, together in zip(encoded, targets, batched, strict=True):
        alone = method.attribute(multilabel_model, tokenizer, [text], [label_ids], FAST)[0]
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-5)


@pytest.mark.parametrize("name", ["lig", "occlusion", "shapley-sampling", "input-x-gradient"])
def test_the_planted_keyword_gets_all_the_credit(name, keyword_model, tokenizer, encode):
    texts = ["the big goal of the week", "a new rocket launch today", "garlic soup recipe"]
    encoded = encode(texts)
    raw = get_attribution_method(name).attribute(keyword_model, tokenizer, encoded, [ALL] * 3, FAST)

    for text, r in zip(encoded, raw, strict=True):
        keyword = next(i for i, token in enumerate(text.tokens) if token in KEYWORDS)
        others = np.delete(r.scores, keyword, axis=1)
        np.testing.assert_allclose(np.abs(r.scores[:, keyword]), 1.0, atol=1e-6)
        np.testing.assert_allclose(others, 0.0, atol=1e-6)
        if name != "input-x-gradient":  # the keyword raises its own label and lowers the others
            label = KEYWORDS[text.tokens[keyword]]
            assert r.scores[label, keyword] == pytest.approx(1.0)
            assert all(r.scores[other, keyword] == pytest.approx(-1.0) for other in ALL if other != label)


def test_saliency_and_occlusion_see_the_keyword_model_differently(keyword_model, tokenizer, encode):
    """Gradients saturate where occlusion does not: a check that the methods are really different."""
    encoded = encode(["the big goal of the week"])
    saliency = get_attribution_method("saliency").attribute(keyword_model, tokenizer, encoded, [[0]], FAST)[0]
    occlusion = get_attribution_method("occlusion").attribute(keyword_model, tokenizer, encoded, [[0]], FAST)[0]

    assert np.count_nonzero(saliency.scores) > np.count_nonzero(occlusion.scores) == 1


def test_shapley_values_add_up_and_follow_the_seed(softmax_model, tokenizer, encode):
    encoded = encode(SENTENCES)

    first = shapley_sampling(softmax_model, tokenizer, encoded, [ALL] * 4, n_samples=5, seed=3)
    again = shapley_sampling(softmax_model, tokenizer, encoded, [ALL] * 4, n_samples=5, seed=3)
    other = shapley_sampling(softmax_model, tokenizer, encoded, [ALL] * 4, n_samples=5, seed=4)

    assert max(np.abs(r.deltas).max() for r in first) < 1e-6  # each sampled order adds up exactly
    assert all(np.array_equal(a.scores, b.scores) for a, b in zip(first, again, strict=True))
    assert not np.allclose(first[-1].scores, other[-1].scores)
    assert np.abs(first[-1].scores).max() > 1e-3


@pytest.mark.parametrize("name", NATIVE)
def test_every_method_fills_the_table_html_and_plots(name, softmax_model, tokenizer):
    from matplotlib import pyplot as plt

    from mlflow_explain.data import Example
    from mlflow_explain.explainer import explain_examples
    from mlflow_explain.explanation import summary_metrics
    from mlflow_explain.render import (
        attribution_table,
        render_html,
        sentence_table,
        token_importance_figure,
        top_tokens_figure,
    )

    examples = [Example(text=SENTENCES[1], label="space"), Example(text=SENTENCES[2], label="cooking")]
    config = ExplainConfig(method=name, n_steps=8, n_samples=4, target="predicted+true")

    explanations = explain_examples(softmax_model, tokenizer, examples, config, progress=False)

    assert set(sentence_table(explanations)["method"]) == {name}
    table = attribution_table(explanations)
    assert len(table) == sum(len(e.attributions) * e.n_tokens for e in explanations)
    assert table["convergence_delta"].notna().all() == (name in WITH_DELTAS)
    assert ("convergence_delta_median" in summary_metrics(explanations)) == (name in WITH_DELTAS)
    assert "<mark" in render_html(explanations)
    for figure in (token_importance_figure(explanations[0]), top_tokens_figure(explanations)):
        assert figure.axes
        plt.close(figure)
