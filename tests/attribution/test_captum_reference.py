"""The engine against Captum's own ``LayerIntegratedGradients`` on an untouched copy of the model.

The reference is written from Captum's public API only: the word-embedding layer, the baseline
``[CLS] [PAD] ... [SEP]`` (structural tokens kept), the model's own position and token type ids,
Gauss-Legendre at 50 steps and the softmax probability of the label. Sentences with ``[UNK]``
included: it is a token of the text, attributed like any other.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mlflow_explain.attribution.gradients import integrated_gradients

from .conftest import LABELS, SENTENCES, WITH_UNKNOWN, captum_reference


@pytest.mark.parametrize("texts", [SENTENCES, WITH_UNKNOWN], ids=["sentences", "with [UNK]"])
def test_lig_equals_captums_layer_integrated_gradients(softmax_model, tokenizer, encode, texts):
    encoded = encode(texts)
    unknown = sum(t.tokens.count("[UNK]") for t in encoded)
    assert unknown == (1 if texts is SENTENCES else 4)  # "is" is not in the test vocabulary
    targets = [list(range(len(LABELS)))] * len(encoded)
    raw = integrated_gradients(softmax_model, tokenizer, encoded, targets, n_steps=50)
    for text, attribution in zip(encoded, raw, strict=True):
        for label in range(len(LABELS)):
            untouched = copy.deepcopy(softmax_model).eval()
            expected, _, delta = captum_reference(untouched, tokenizer, text, label, 50)
            np.testing.assert_allclose(attribution.scores[label], expected, atol=1e-5, rtol=0)
            assert attribution.deltas[label] == pytest.approx(delta, abs=1e-5)
        for position, token in enumerate(text.tokens):
            if token == "[UNK]":  # a real score, not the 0 of a structural token
                assert not text.special[position] and abs(attribution.scores[:, position]).max() > 1e-4
