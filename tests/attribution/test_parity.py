"""The native engine, configured like transformers-interpret, gives transformers-interpret's scores."""

from __future__ import annotations

import numpy as np
import pytest

from mlflow_explain.attribution import get_attribution_method
from mlflow_explain.config import ExplainConfig

from .conftest import LABELS, SENTENCES, WITH_UNKNOWN

TOLERANCE = 1e-3
ALL = list(range(len(LABELS)))


@pytest.mark.parametrize("texts", [SENTENCES, WITH_UNKNOWN], ids=["sentences", "with [UNK]"])
def test_matches_interpret_backend_for_each_label_of_a_softmax_classifier(softmax_model, tokenizer, encode, texts):
    encoded = encode([*texts, SENTENCES[0]][:4])
    targets = [ALL, [2, 0], [1], ALL]
    config = ExplainConfig(n_steps=20, tolerance=None)

    ours = get_attribution_method("lig-parity").attribute(softmax_model, tokenizer, encoded, targets, config)
    theirs = get_attribution_method("interpret-lig").attribute(softmax_model, tokenizer, encoded, targets, config)

    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.scores.shape == reference.scores.shape
        np.testing.assert_allclose(mine.scores, reference.scores, atol=TOLERANCE)
        np.testing.assert_allclose(mine.deltas, reference.deltas, atol=1e-4)
    # The comparison is not trivially between zeros.
    assert min(np.abs(r.scores).max() for r in ours) > 0.3


def test_matches_plain_sequence_classification_explainer(softmax_model, tokenizer, encode):
    from transformers_interpret import SequenceClassificationExplainer

    explainer = SequenceClassificationExplainer(softmax_model, tokenizer)
    encoded = encode(SENTENCES[:3])
    ours = get_attribution_method("lig-parity").attribute(
        softmax_model, tokenizer, encoded, [ALL] * len(encoded), ExplainConfig(n_steps=16, tolerance=None)
    )

    for text, mine in zip(encoded, ours, strict=True):
        for label in ALL:
            pairs = explainer(text.text, index=label, n_steps=16)
            assert [token for token, _ in pairs] == list(text.tokens)
            np.testing.assert_allclose(mine.scores[label], [score for _, score in pairs], atol=TOLERANCE)
            delta = float(explainer.attributions.delta.reshape(-1)[0])
            assert mine.deltas[label] == pytest.approx(delta, abs=1e-4)


def test_matches_multilabel_classification_explainer_on_a_sigmoid_model(multilabel_model, tokenizer, encode):
    from transformers_interpret import MultiLabelClassificationExplainer

    explainer = MultiLabelClassificationExplainer(multilabel_model, tokenizer)
    encoded = encode(SENTENCES[1:3])
    # MultiLabelClassificationExplainer always integrates with its default of 50 steps.
    ours = get_attribution_method("lig-parity").attribute(
        multilabel_model, tokenizer, encoded, [ALL] * len(encoded), ExplainConfig(n_steps=50, tolerance=None)
    )

    for text, mine in zip(encoded, ours, strict=True):
        theirs = explainer(text.text)
        for label, name in enumerate(LABELS):
            np.testing.assert_allclose(mine.scores[label], [s for _, s in theirs[name]], atol=TOLERANCE)


def test_default_engine_explains_the_prediction_itself(softmax_model, tokenizer, encode):
    """``lig`` keeps the model's own token type ids, so its completeness error vanishes; the parity
    configuration inherits transformers-interpret's, which its mismatched baseline ids keep large."""
    encoded = encode(SENTENCES)
    targets = [ALL] * len(encoded)
    config = ExplainConfig(n_steps=32, tolerance=None)

    native = get_attribution_method("lig").attribute(softmax_model, tokenizer, encoded, targets, config)
    parity = get_attribution_method("lig-parity").attribute(softmax_model, tokenizer, encoded, targets, config)

    assert max(np.abs(r.deltas).max() for r in native) < 1e-4
    assert np.median(np.concatenate([np.abs(r.deltas) for r in parity])) > 1e-3
