"""The model-family matrix: each common classifier family, built offline, explained and scored right.

For every family of :data:`builders.MODEL_FAMILIES` (tiny random models, see :func:`builders.family_classifier`):

- ``lig`` equals Captum's ``LayerIntegratedGradients`` on an untouched copy of the model within 1e-5
  (the same baseline, output function, rule and steps as ``test_captum_reference.py``);
- with a completeness tolerance every sentence-label pair meets it, or is flagged;
- every registered method runs through :func:`~mlflow_explain.explainer.explain_examples`, with finite
  scores of the right shape;
- the exact shortcuts keep the logits and every label's input-embedding gradient, or are not applied.

The convergence delta is the completeness error of the path: the scores' sum against ``f(input) -
f(start of the path)``, the start being the baseline's word embeddings with the input's own ids.
Captum's own delta runs the baseline ids through the model instead, and where the model derives
more than word embeddings from the ids, that is another input: RoBERTa and XLM-R number positions
from the non-pad tokens, and a decoder classifier pools its last non-pad token, which in a baseline
of pad tokens is ``<s>`` (Llama) or the first position. Its delta then never reaches 0
(:func:`test_captums_delta_runs_another_baseline_where_the_ids_set_positions_or_pooling`).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from builders import FAMILY_TEXTS, JAPANESE_TEXTS, MODEL_FAMILIES, family_classifier

from mlflow_explain.attribution import _shortcuts, list_attribution_methods
from mlflow_explain.attribution._engine import Row, forward_logits, stack_rows
from mlflow_explain.attribution._shortcuts import exact_shortcuts
from mlflow_explain.attribution.gradients import integrated_gradients
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.errors import ExplanationError
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import encode_texts

from .conftest import captum_reference

N_LABELS = 3
ALL = list(range(N_LABELS))
STEPS = 8
"""Integration steps of the comparison with Captum (the equality holds at any number)."""

IDS_SET_MORE_THAN_EMBEDDINGS = {"roberta", "xlm-roberta", "llama"}
"""Families whose baseline ids, run as ids, change more than the word embeddings (positions, pooling).

Qwen2's baseline is pad tokens only: every position then sees the same values, pools the same output,
and Captum's delta happens to agree."""


@pytest.fixture(scope="module", params=MODEL_FAMILIES)
def family(request, tmp_path_factory):
    """``(name, model, tokenizer, encoded sentences)`` of one family."""
    name = request.param
    model, tokenizer = family_classifier(name, tmp_path_factory.mktemp(name))
    texts = JAPANESE_TEXTS if name.startswith("bert-japanese") else FAMILY_TEXTS[1:]
    encoded = encode_texts(tokenizer, texts, 64)
    assert not any(e.truncated for e in encoded)
    return name, model, tokenizer, encoded


def test_lig_equals_captums_layer_integrated_gradients(family):
    name, model, tokenizer, encoded = family
    untouched = copy.deepcopy(model).eval()
    raw = integrated_gradients(model, tokenizer, encoded, [ALL] * len(encoded), n_steps=STEPS)
    for text, attribution in zip(encoded, raw, strict=True):
        for label in ALL:
            expected, path_delta, captum_delta = captum_reference(untouched, tokenizer, text, label, STEPS)
            np.testing.assert_allclose(attribution.scores[label], expected, atol=1e-5, rtol=0)
            assert attribution.deltas[label] == pytest.approx(path_delta, abs=1e-5)
            if name not in IDS_SET_MORE_THAN_EMBEDDINGS:
                assert attribution.deltas[label] == pytest.approx(captum_delta, abs=1e-5)
            assert np.all(attribution.scores[label][list(text.special)] == 0) or not any(text.special)


def test_captums_delta_runs_another_baseline_where_the_ids_set_positions_or_pooling(tmp_path):
    model, tokenizer = family_classifier("llama", tmp_path)
    (text,) = encode_texts(tokenizer, [FAMILY_TEXTS[2]], 64)
    assert text.tokens[0] == "<s>" and text.special[0] and not any(text.special[1:])
    converged = integrated_gradients(model, tokenizer, [text], [ALL], n_steps=256)[0]
    assert np.abs(converged.deltas).max() < 1e-5
    # Captum's delta differs from the path's completeness error by f(start of the path) - f(baseline ids),
    # at any number of steps: its baseline pools <s>, the only non-pad token left, not the text's last token.
    _, path_delta, captum_delta = captum_reference(copy.deepcopy(model).eval(), tokenizer, text, 0, STEPS)
    assert abs(captum_delta - path_delta) > 1e-2


def test_every_pair_meets_the_tolerance_or_is_flagged(family):
    _, model, tokenizer, encoded = family
    tolerance = 1e-3
    config = ExplainConfig(n_steps=8, tolerance=tolerance, max_steps=256, quality=False)
    examples = [Example(e.text, None) for e in encoded]
    explanations = explain_examples(model, tokenizer, examples, config, progress=False)
    pairs = [a for e in explanations for a in e.attributions]
    assert len(pairs) == N_LABELS * len(encoded)
    assert all(pair.converged and abs(pair.convergence_delta) <= tolerance for pair in pairs)
    assert max(pair.n_steps for pair in pairs) <= 128


def test_a_step_near_the_baseline_is_resolved_where_it_is(tmp_path):
    """A model built from a config has a zero pad embedding, and DeBERTa-v3's embedding LayerNorm sees the word
    embedding alone and is scale-invariant: the output changes as a near-step just after the baseline. Cutting the
    path where the error is resolves it in at most 64 points; 64 evenly spread points leave it far above tolerance."""
    model, tokenizer = family_classifier("deberta-v2", tmp_path, zero_pad=True)
    tolerance = 1e-3
    examples = [Example(text, None) for text in FAMILY_TEXTS]
    adaptive = ExplainConfig(n_steps=8, tolerance=tolerance, max_steps=64, quality=False)
    uniform = ExplainConfig(n_steps=64, tolerance=None, quality=False)
    pairs = [a for e in explain_examples(model, tokenizer, examples, adaptive, progress=False) for a in e.attributions]
    assert all(pair.converged and abs(pair.convergence_delta) <= tolerance and pair.n_steps <= 64 for pair in pairs)
    fixed = [a for e in explain_examples(model, tokenizer, examples, uniform, progress=False) for a in e.attributions]
    assert max(abs(pair.convergence_delta) for pair in fixed) > 10 * tolerance


def test_pairs_that_a_zero_pad_embedding_keeps_from_converging_are_flagged(tmp_path, caplog):
    """A decoder's zero hidden states give the bias-free head uniform probabilities that the final RMSNorm leaves
    only within about 1e-3 of the baseline: the output jumps at the baseline itself, which no integration of
    gradients sees. Those pairs are flagged, not passed, once they use the most points allowed."""
    model, tokenizer = family_classifier("qwen2", tmp_path, zero_pad=True)
    tolerance = 1e-3
    config = ExplainConfig(n_steps=8, tolerance=tolerance, max_steps=64, quality=False)
    examples = [Example(text, None) for text in FAMILY_TEXTS]
    explanations = explain_examples(model, tokenizer, examples, config, progress=False)
    pairs = [a for e in explanations for a in e.attributions]
    flagged = [pair for pair in pairs if not pair.converged]
    assert flagged and "above the completeness tolerance" in caplog.text
    for pair in pairs:
        assert pair.converged == (abs(pair.convergence_delta) <= tolerance)
        assert pair.converged or pair.n_steps == config.max_steps


@pytest.mark.parametrize("method", list_attribution_methods())
def test_every_method_gives_finite_scores_of_the_right_shape(family, method):
    _, model, tokenizer, encoded = family
    config = ExplainConfig(method=method, n_steps=8, n_samples=4, quality=False)
    examples = [Example(e.text, None) for e in encoded]
    explanations = explain_examples(model, tokenizer, examples, config, progress=False)
    for explanation, text in zip(explanations, encoded, strict=True):
        assert [a.label for a in explanation.attributions] == [model.config.id2label[i] for i in ALL]
        for attribution in explanation.attributions:
            scores = np.array([t.score for t in attribution.tokens])
            assert [t.token for t in attribution.tokens] == list(text.tokens)
            assert np.all(np.isfinite(scores))
            assert np.linalg.norm(scores) == pytest.approx(1.0, abs=1e-6)


def _logits_and_gradients(model, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits, and the gradient of each label's logit with respect to the input embeddings (the model's
    ids given too, so that decoders pool their last non-pad token)."""
    embeddings = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    logits = forward_logits(model, batch, embeddings)
    directions = torch.eye(N_LABELS)[:, None, :].expand(-1, len(logits), -1)
    grads = [torch.autograd.grad(logits, embeddings, d, retain_graph=True)[0] for d in directions]
    return logits.detach(), grads


def test_shortcuts_keep_logits_and_gradients_or_are_not_applied(family, caplog):
    _, model, tokenizer, encoded = family
    batch = stack_rows([Row(torch.tensor(e.input_ids)) for e in encoded], tokenizer.pad_token_id, torch.device("cpu"))
    logits, expected = _logits_and_gradients(model, batch)
    assert sum(float(g.abs().sum()) for g in expected) > 0
    before = [type(m) for m in model.modules()]
    with caplog.at_level("DEBUG", logger=_shortcuts.__name__), exact_shortcuts(model, batch) as active:
        inside_logits, inside = _logits_and_gradients(model, batch)
        changed = [type(m) for m in model.modules()] != before
    assert active, caplog.text  # every family here gets some shortcut
    assert changed
    torch.testing.assert_close(inside_logits, logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(inside, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert [type(m) for m in model.modules()] == before


# --- models the engine cannot explain ---------------------------------------------------------


@pytest.fixture(scope="module")
def keyword_texts(tmp_path_factory):
    _, tokenizer = family_classifier("bert", tmp_path_factory.mktemp("vocab"))
    return tokenizer, [Example(text, None) for text in FAMILY_TEXTS[:2]]


@pytest.mark.parametrize("head", ["BertModel", "BertForTokenClassification", "BertForMaskedLM"])
@pytest.mark.parametrize("method", ["lig", "occlusion"])
def test_a_model_without_sequence_classification_logits_is_refused_by_name(head, method, keyword_texts):
    import transformers

    tokenizer, examples = keyword_texts
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_labels=N_LABELS
    )
    model = getattr(transformers, head)(config).eval()
    with pytest.raises(ExplanationError, match=rf"^{head} \(model type 'bert'\) gives no sequence-classification"):
        explain_examples(model, tokenizer, examples, ExplainConfig(method=method, n_steps=4), progress=False)


def test_a_classifier_without_input_embeddings_is_named_and_perturbations_still_explain_it(keyword_texts):
    """CANINE reads characters through hash embeddings: there is no word-embedding layer to integrate on."""
    import transformers

    tokenizer, examples = keyword_texts
    config = transformers.CanineConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=N_LABELS
    )
    torch.manual_seed(0)
    model = transformers.CanineForSequenceClassification(config).eval()
    for method in ("lig", "saliency", "input-x-gradient", "interpret-lig"):
        with pytest.raises(
            ExplanationError, match=rf"^attribution with '{method}' failed: .*get_input_embeddings.*Canine"
        ):
            explain_examples(model, tokenizer, examples, ExplainConfig(method=method, n_steps=4), progress=False)
    for method in ("occlusion", "shapley-sampling"):
        config = ExplainConfig(method=method, n_samples=4, quality=False)
        (explanation, _) = explain_examples(model, tokenizer, examples, config, progress=False)
        assert all(np.isfinite(t.score) for a in explanation.attributions for t in a.tokens)
