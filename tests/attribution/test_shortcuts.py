"""The gradient shortcuts: same logits and gradients, model put back, refused when they would differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlflow_explain.attribution import _shortcuts, get_attribution_method
from mlflow_explain.attribution._engine import Row, stack_rows
from mlflow_explain.attribution._shortcuts import exact_shortcuts, onednn_is_faster
from mlflow_explain.config import ExplainConfig

from .conftest import LABELS, SENTENCES, make_bert

ALL = list(range(len(LABELS)))


@pytest.fixture
def model():
    """A fresh model per test, since the tests look at its modules."""
    return make_bert(seed=3)


@pytest.fixture
def batch(encode, tokenizer):
    """Model inputs of sentences of different lengths, padded."""
    rows = [Row(torch.tensor(e.input_ids)) for e in encode(SENTENCES)]
    return stack_rows(rows, tokenizer.pad_token_id, torch.device("cpu"))


def _logits_and_gradients(model, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits, and the gradients of three label directions with respect to the input embeddings."""
    embeddings = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeddings, attention_mask=batch["attention_mask"]).logits
    directions = torch.eye(len(LABELS))[:, None, :].expand(-1, len(logits), -1)
    grads = [torch.autograd.grad(logits, embeddings, d, retain_graph=True)[0] for d in directions]
    return logits.detach(), grads


def _spy(function, calls: list):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(result is not None)
        return result

    return wrapper


def _state(model) -> tuple:
    """What the shortcuts change: module types, the last layer's own forward, the attention setting."""
    last = model.bert.encoder.layer[-1]
    return (
        [type(m).__name__ for m in model.modules()],
        "forward" in vars(last),
        model.config._attn_implementation,
    )


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "mkl"])
def test_shortcuts_keep_the_logits_and_every_label_gradient(model, batch, monkeypatch, onednn):
    monkeypatch.setattr(_shortcuts, "onednn_is_faster", lambda *shape: onednn)
    logits, expected = _logits_and_gradients(model, batch)
    with exact_shortcuts(model, batch) as active:
        assert active
        assert "forward" in vars(model.bert.encoder.layer[-1])
        assert model.config._attn_implementation == "eager"
        assert any(isinstance(m, _shortcuts._OneDNNLinear) for m in model.modules()) is onednn
        inside_logits, inside = _logits_and_gradients(model, batch)
    torch.testing.assert_close(inside_logits, logits, atol=1e-5, rtol=1e-5)
    assert sum(g.abs().sum() for g in expected) > 0
    for a, b in zip(inside, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_model_is_put_back_even_after_an_error(model, batch):
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"), exact_shortcuts(model, batch):
        assert _state(model) != before
        raise RuntimeError("boom")
    assert _state(model) == before
    assert model.config._attn_implementation == "sdpa"


def test_nested_contexts_keep_the_shortcuts_until_the_last_one_closes(model, batch):
    before = _state(model)
    with exact_shortcuts(model, batch) as outer:
        inside = _state(model)
        with exact_shortcuts(model, batch) as inner:
            assert outer and inner
        assert _state(model) == inside  # the inner context did not undo the outer one's shortcuts
    assert _state(model) == before


def test_a_model_in_training_mode_is_left_alone(model, batch):
    model.train()
    before = _state(model)
    with exact_shortcuts(model, batch) as active:
        assert not active
        assert _state(model) == before


def test_shortcuts_that_would_change_the_logits_are_not_used(model, batch, monkeypatch, caplog):
    original = _shortcuts._first_token_layer
    monkeypatch.setattr(_shortcuts, "_first_token_layer", lambda *a, **k: 2 * original(*a, **k))
    before = _state(model)
    with caplog.at_level("DEBUG", logger=_shortcuts.__name__), exact_shortcuts(model, batch) as active:
        assert not active
        assert _state(model) == before
    assert "logits differ" in caplog.text


def test_a_classifier_with_another_head_keeps_its_last_layer(batch):
    from transformers import BertConfig, BertForTokenClassification

    model = BertForTokenClassification(
        BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    ).eval()
    with exact_shortcuts(model, batch) as active:
        assert active  # activations and attention only
        assert "forward" not in vars(model.bert.encoder.layer[-1])


@pytest.mark.parametrize("method", ["lig", "saliency", "occlusion", "shapley-sampling"])
def test_attributions_are_the_same_without_shortcuts(method, model, tokenizer, encode, monkeypatch):
    backend = get_attribution_method(method)
    encoded = encode(SENTENCES)
    targets = [ALL] * len(encoded)
    config = ExplainConfig(method=method, n_steps=8, n_samples=4)
    installed = []
    monkeypatch.setattr(_shortcuts, "_install", _spy(_shortcuts._install, installed))
    fast = backend.attribute(model, tokenizer, encoded, targets, config)
    assert installed and all(installed)  # the method ran through the shortcuts
    monkeypatch.setattr(_shortcuts, "_install", lambda model: None)
    plain = backend.attribute(model, tokenizer, encoded, targets, config)
    for a, b in zip(fast, plain, strict=True):  # float32 rounding, L2-normalised: differences ~1e-6
        np.testing.assert_allclose(a.scores, b.scores, atol=2e-5)
        if a.deltas is not None:
            np.testing.assert_allclose(a.deltas, b.deltas, atol=1e-6)


@pytest.mark.parametrize("method", ["lig", "saliency", "interpret-lig"])
def test_threads_explaining_one_model_get_the_same_scores_and_leave_it_restored(method, model, tokenizer, encode):
    from concurrent.futures import ThreadPoolExecutor

    backend = get_attribution_method(method)
    encoded = encode(SENTENCES)
    targets = [ALL] * len(encoded)
    config = ExplainConfig(method=method, n_steps=8)
    alone = backend.attribute(model, tokenizer, encoded, targets, config)
    before = _state(model)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(backend.attribute, model, tokenizer, encoded, targets, config) for _ in range(6)]
        results = [f.result() for f in futures]
    assert _state(model) == before
    assert not _shortcuts._users  # no context left open
    for result in results:
        for a, b in zip(result, alone, strict=True):
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def _family(name: str):
    """A tiny random classifier of a BERT-family architecture."""
    import transformers

    shape = {"vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}
    shape |= {"intermediate_size": 32, "max_position_embeddings": 40, "num_labels": len(LABELS)}
    torch.manual_seed(0)
    if name == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=64, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=40, num_labels=3
        )
        return transformers.DistilBertForSequenceClassification(config).eval()
    config_class, model_class = {
        "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification),
        "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification),
        "electra": (transformers.ElectraConfig, transformers.ElectraForSequenceClassification),
    }[name]
    return model_class(config_class(**shape)).eval()


FAMILIES = [("roberta", True), ("xlm-roberta", True), ("electra", True), ("distilbert", False)]


@pytest.mark.parametrize(("family", "first_token_layer"), FAMILIES)
def test_other_bert_family_classifiers_keep_their_gradients(family, first_token_layer, batch):
    model = _family(family)
    logits, expected = _logits_and_gradients(model, batch)
    with exact_shortcuts(model, batch) as active:
        assert active
        base = model.base_model
        layers = base.transformer.layer if family == "distilbert" else base.encoder.layer
        assert ("forward" in vars(layers[-1])) is first_token_layer
        inside_logits, inside = _logits_and_gradients(model, batch)
    torch.testing.assert_close(inside_logits, logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(inside, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_linear_layers_compute_through_onednn_on_a_cpu_and_are_put_back(model, batch, monkeypatch):
    monkeypatch.setattr(_shortcuts, "onednn_is_faster", lambda *shape: True)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    with exact_shortcuts(model, batch) as active:
        assert active
        swapped = [m.linear for m in model.modules() if isinstance(m, _shortcuts._OneDNNLinear)]
        assert swapped == linears  # every one, each wrapping its original
    assert [m for m in model.modules() if type(m) is torch.nn.Linear] == linears
    assert not any(isinstance(m, _shortcuts._OneDNNLinear) for m in model.modules())


def test_onednn_is_chosen_by_timing_it_once_per_layer_shape(model, batch, monkeypatch):
    monkeypatch.setattr(_shortcuts, "onednn_is_faster", onednn_is_faster)  # the real one (conftest forces True)
    onednn_is_faster.cache_clear()
    timed = []
    products = torch.ops.mkldnn._linear_pointwise

    def counting(x, weight, *args):
        timed.append(tuple(weight.shape))
        return products(x, weight, *args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", counting)
    chosen = onednn_is_faster(16, 32, torch.get_num_threads())
    assert isinstance(chosen, bool) and timed == [(32, 16)] * 3  # best of three
    assert onednn_is_faster(16, 32, torch.get_num_threads()) is chosen and len(timed) == 3  # once
    with exact_shortcuts(model, batch) as active:  # the widest layer of the model (intermediate: 16 -> 32)
        assert active
        swapped = any(isinstance(m, _shortcuts._OneDNNLinear) for m in model.modules())
    assert swapped is chosen


def test_onednn_is_left_alone_when_fp32_products_may_lose_precision(model, batch, monkeypatch):
    monkeypatch.setattr(_shortcuts, "onednn_is_faster", lambda *shape: True)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # lets PyTorch use bf16 or tf32 for fp32 products
    try:
        assert _shortcuts._onednn_linear(model) is None
        with exact_shortcuts(model, batch):
            # The other shortcuts apply where the model's own products stay fp32; on a CPU with AMX,
            # "medium" computes them in bf16 and the check on entry refuses all shortcuts.
            assert not any(isinstance(m, _shortcuts._OneDNNLinear) for m in model.modules())
    finally:
        torch.set_float32_matmul_precision(previous)
