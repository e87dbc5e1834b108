"""Tiny models for the attribution tests: random BERTs and one whose answer is known by construction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
from builders import KEYWORD_MODEL_LABELS, PLANTED_KEYWORDS, keyword_bert, keyword_tokenizer, tiny_bert

from mlflow_explain.attribution import EncodedText, _shortcuts
from mlflow_explain.modeling import encode_texts

LABELS = KEYWORD_MODEL_LABELS
KEYWORDS = PLANTED_KEYWORDS
"""Tokens that decide the keyword model's label."""

make_bert = tiny_bert

SENTENCES = [
    "the goal",
    "a big rocket launch today",
    "new soup recipe with garlic after the week",
    "the coach says the league match of the week is on today at the big report for more",
]
"""Sentences of different lengths (4 to 21 tokens with [CLS] and [SEP])."""

WITH_UNKNOWN = ["the zebra rocket", "a quokka soup with xylophone garlic", "zebra"]
"""Sentences with words outside the vocabulary: each unknown word is one [UNK]."""


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Run these tiny models on one thread: more only adds synchronisation, and on a busy machine
    the spinning OpenMP workers make the tests up to ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def onednn_linear(monkeypatch):
    """Route the linear layers through oneDNN whatever this CPU's timing says (see
    :func:`~mlflow_explain.attribution._shortcuts.onednn_is_faster`): the engine's own products and
    backward passes are what the reference tests check; untouched MKL layers are the model's own."""
    monkeypatch.setattr(_shortcuts, "onednn_is_faster", lambda *shape: True)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A lower-casing WordPiece tokenizer over :data:`builders.KEYWORD_MODEL_VOCAB`."""
    return keyword_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="session")
def softmax_model():
    """A single-label (softmax) classifier."""
    return make_bert()


@pytest.fixture(scope="session")
def multilabel_model():
    """A multi-label (sigmoid) classifier."""
    return make_bert("multi_label_classification", seed=1)


@pytest.fixture(scope="session")
def keyword_model():
    """:func:`builders.keyword_bert`: only the keyword tokens (:data:`KEYWORDS`) matter."""
    return keyword_bert()


@pytest.fixture
def encode(tokenizer) -> Callable[[Sequence[str]], list[EncodedText]]:
    """Encode texts the way the explainer does."""

    def run(texts: Sequence[str]) -> list[EncodedText]:
        return encode_texts(tokenizer, list(texts), 64)

    return run


def baseline_ids(tokenizer, input_ids) -> list[int]:
    structural = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return [i if i in structural else tokenizer.pad_token_id for i in input_ids]


def captum_reference(untouched, tokenizer, encoded, label: int, n_steps: int) -> tuple[np.ndarray, float, float]:
    """Captum's scores, the path's completeness error, and Captum's own delta, from its public API only.

    The baseline keeps the structural tokens and puts the pad token elsewhere (``[UNK]`` is a token of the
    text); the output is the label's softmax probability; Gauss-Legendre at ``n_steps``.

    Args:
        untouched: A copy of the model that the engine never ran.
    """
    from captum.attr import LayerIntegratedGradients

    ids = torch.tensor([encoded.input_ids])
    baseline = torch.tensor([baseline_ids(tokenizer, encoded.input_ids)])
    mask = torch.ones_like(ids)

    def forward(input_ids, attention_mask):
        return torch.softmax(untouched(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)[:, label]

    layer = untouched.get_input_embeddings()
    lig = LayerIntegratedGradients(forward, layer)
    attributions, delta = lig.attribute(
        ids,
        baselines=baseline,
        additional_forward_args=(mask,),
        n_steps=n_steps,
        method="gausslegendre",
        return_convergence_delta=True,
    )
    with torch.no_grad():
        start = layer(baseline)
        handle = layer.register_forward_hook(lambda _module, _args, _output: start)  # the path at alpha = 0
        try:
            at_start = forward(ids, mask)
        finally:
            handle.remove()
        change = float(forward(ids, mask) - at_start)
    scores = attributions.sum(dim=-1)[0].detach().double().numpy()
    return scores, float(scores.sum()) - change, float(delta)
