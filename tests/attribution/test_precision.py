"""Perturbation methods on saturated labels: probability differences in float64, against a float64 model copy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mlflow_explain.attribution._engine import SentenceInputs
from mlflow_explain.attribution.perturbation import occlusion, shapley_sampling
from mlflow_explain.modeling import predict_proba

from .conftest import SENTENCES, make_bert


@pytest.fixture(scope="module")
def saturated_bert():
    """A random BERT with a 30x classifier: three of the four sentences reach probabilities of 0.997 to 0.9998."""
    model = make_bert(seed=5)
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)
        model.classifier.bias.zero_()
    return model.eval()


def _float64_drops(model, encoded, label: int, reference_id: int) -> np.ndarray:
    """Occlusion computed from scratch on a float64 copy of the model: the reference."""
    model64 = copy.deepcopy(model).double()
    ids = torch.tensor([encoded.input_ids])
    drops = np.zeros(len(encoded.input_ids))
    with torch.no_grad():
        full = torch.softmax(model64(input_ids=ids).logits, dim=-1)[0, label]
        for position, special in enumerate(encoded.special):
            if not special:
                occluded = ids.clone()
                occluded[0, position] = reference_id
                drops[position] = float(full - torch.softmax(model64(input_ids=occluded).logits, dim=-1)[0, label])
    return drops


def test_occlusion_matches_a_float64_model_on_saturated_labels(saturated_bert, tokenizer, encode):
    encoded = encode(SENTENCES)
    labels = predict_proba(saturated_bert, tokenizer, encoded).argmax(axis=1)
    assert (predict_proba(saturated_bert, tokenizer, encoded).max(axis=1) > 0.995).sum() == 3
    raw = occlusion(saturated_bert, tokenizer, encoded, [[int(label)] for label in labels])
    reference_id = SentenceInputs(saturated_bert, tokenizer, encoded).reference_id
    for text, attribution, label in zip(encoded, raw, labels, strict=True):
        expected = _float64_drops(saturated_bert, text, int(label), reference_id)
        got = attribution.scores[0]
        # What is left is the float32 forward pass itself (up to 2.4e-6 on a Zen 4 CPU, whose kernels round
        # differently); differences of float32 probabilities were off by up to 8e-5 here after normalisation
        # (float32 keeps ~7 digits of a probability near 1).
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got / np.linalg.norm(got), expected / np.linalg.norm(expected), atol=2e-5, rtol=0)


def test_shapley_values_still_add_up_on_saturated_labels(saturated_bert, tokenizer, encode):
    encoded = encode(SENTENCES)
    labels = predict_proba(saturated_bert, tokenizer, encoded).argmax(axis=1)
    raw = shapley_sampling(saturated_bert, tokenizer, encoded, [[int(label)] for label in labels], n_samples=4)
    assert max(abs(float(r.deltas[0])) for r in raw) < 1e-12  # exact in float64, not to float32's 6e-8
