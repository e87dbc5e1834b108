"""The explanation pipeline with the transformers-interpret backend, on tiny local models."""

from __future__ import annotations

import numpy as np
import pytest
from builders import save_tiny_english_model

from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.explainer import explain_examples, select_targets
from mlflow_explain.modeling import load_pretrained

TI = "interpret-lig"  # parity with transformers-interpret is what these tests check
EXAMPLES = [Example("rocket launch today", "space"), Example("the striker goals", "football")]


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    return load_pretrained(str(save_tiny_english_model(tmp_path_factory.mktemp("m") / "softmax", seed=1)))


@pytest.fixture(scope="module")
def sigmoid_model(tmp_path_factory):
    folder = save_tiny_english_model(
        tmp_path_factory.mktemp("m") / "sigmoid", problem_type="multi_label_classification", seed=2
    )
    return load_pretrained(str(folder))


def _scores(explanation, label):
    return np.array([t.score for t in explanation.for_label(label).tokens])


def test_select_targets():
    probs = np.array([0.1, 0.7, 0.2])
    assert select_targets("all", probs, 2) == [0, 1, 2]
    assert select_targets("predicted", probs, 2) == [1]
    assert select_targets("true", probs, 2) == [2]
    assert select_targets("true", probs, None) == [1]
    assert select_targets("predicted+true", probs, 2) == [1, 2]
    assert select_targets("predicted+true", probs, 1) == [1]


def test_softmax_scores_match_transformers_interpret_per_label(softmax_model):
    from transformers_interpret import SequenceClassificationExplainer

    model, tokenizer = softmax_model
    ours = explain_examples(model, tokenizer, EXAMPLES[:1], ExplainConfig(n_steps=7, method=TI), progress=False)[0]
    reference = SequenceClassificationExplainer(model, tokenizer)
    for index, label in model.config.id2label.items():
        expected = reference(EXAMPLES[0].text, index=index, n_steps=7)
        assert [t.token for t in ours.for_label(label).tokens] == [tok for tok, _ in expected]
        np.testing.assert_allclose(_scores(ours, label), [s for _, s in expected], atol=1e-6)
    # And the probabilities are softmax probabilities.
    assert sum(a.probability for a in ours.attributions) == pytest.approx(1.0, abs=1e-5)


def test_multilabel_model_attributes_sigmoid_like_multilabel_explainer(sigmoid_model):
    from transformers_interpret import MultiLabelClassificationExplainer

    model, tokenizer = sigmoid_model
    ours = explain_examples(model, tokenizer, EXAMPLES[:1], ExplainConfig(n_steps=50, method=TI), progress=False)[0]
    expected = MultiLabelClassificationExplainer(model, tokenizer)(EXAMPLES[0].text)  # always 50 steps
    for label, pairs in expected.items():
        np.testing.assert_allclose(_scores(ours, label), [s for _, s in pairs], atol=1e-6)
    assert sum(a.probability for a in ours.attributions) != pytest.approx(1.0, abs=1e-3)


def test_n_steps_takes_effect(softmax_model):
    model, tokenizer = softmax_model
    coarse, fine = (
        explain_examples(model, tokenizer, EXAMPLES, ExplainConfig(n_steps=n), progress=False)[0] for n in (1, 64)
    )
    label = fine.predicted_label
    assert not np.allclose(_scores(coarse, label), _scores(fine, label), atol=1e-4)
    assert coarse.for_label(label).convergence_delta != pytest.approx(fine.for_label(label).convergence_delta)


def test_targets_and_result_fields(softmax_model):
    model, tokenizer = softmax_model
    results = explain_examples(
        model, tokenizer, EXAMPLES, ExplainConfig(n_steps=4, target="predicted+true", method=TI), progress=False
    )
    assert [r.sentence_id for r in results] == [0, 1]
    for example, result in zip(EXAMPLES, results, strict=True):
        assert result.text == example.text and result.true_label == example.label
        assert result.attributed_labels[0] == result.predicted_label
        assert set(result.attributed_labels) == {result.predicted_label, example.label}
        assert result.method == "interpret-lig"
        tokens = result.primary.tokens
        assert tokens[0].token == "[CLS]" and tokens[0].is_special and tokens[0].word_index == -1
        assert tokens[0].score == 0.0 and tokens[-1].score == 0.0
        # transformers-interpret L2-normalises the scores of each label.
        assert np.linalg.norm([t.score for t in tokens]) == pytest.approx(1.0, abs=1e-5)
        assert result.primary.convergence_delta is not None


def test_wordpieces_merge_into_words(softmax_model):
    model, tokenizer = softmax_model
    result = explain_examples(
        model, tokenizer, [Example("rockets launching", "space")], ExplainConfig(n_steps=4), progress=False
    )[0]
    tokens = [t.token for t in result.primary.tokens]
    assert tokens == ["[CLS]", "rocket", "##s", "launch", "##ing", "[SEP]"]
    words = result.primary.words
    assert [w.word for w in words] == ["rockets", "launching"]
    assert words[0].score == pytest.approx(sum(t.score for t in result.primary.tokens[1:3]))


def test_long_text_is_truncated_not_crashing(softmax_model):
    model, tokenizer = softmax_model
    text = " ".join(["orbit planet"] * 40)
    model.train()
    result = explain_examples(model, tokenizer, [Example(text, "space")], ExplainConfig(n_steps=3), progress=False)[0]
    assert result.truncated and result.n_tokens == 82
    assert len(result.primary.tokens) == model.config.max_position_embeddings
    assert model.training  # the caller's mode is restored


def test_unknown_method_is_a_clear_error(softmax_model):
    from mlflow_explain.errors import ConfigError

    model, tokenizer = softmax_model
    with pytest.raises(ConfigError, match="unknown attribution method 'nope'; choose one of"):
        explain_examples(model, tokenizer, EXAMPLES, ExplainConfig(method="nope"), progress=False)
