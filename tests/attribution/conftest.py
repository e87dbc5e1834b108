"""Tiny models for the attribution tests: random BERTs and one whose answer is known by construction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from mlflow_explain.attribution import EncodedText
from mlflow_explain.modeling import encode_texts

FILLER = ["the", "a", "new", "today", "report", "says", "big", "week", "with", "after", "and", "of", "to", "in"]
FILLER += ["on", "for", "at", "by", "from", "more", "striker", "league", "match", "coach", "orbit", "planet"]
WORDS = [*FILLER, "launch", "recipe", "oven", "bake", "garlic", "goal", "rocket", "soup"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
LABELS = ["football", "space", "cooking"]
KEYWORDS = {"goal": 0, "rocket": 1, "soup": 2}
"""Tokens that decide the keyword model's label."""

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


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A lower-casing WordPiece tokenizer over :data:`VOCAB`."""
    from transformers import BertTokenizerFast

    vocab_file = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(vocab_file), model_max_length=64)


def make_bert(problem_type: str | None = None, seed: int = 0, **overrides):
    """A random two-layer BERT (hidden size 16) whose outputs are far from uniform, in eval mode."""
    from transformers import BertConfig, BertForSequenceClassification

    settings = {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
        "initializer_range": 0.3,
        **overrides,
    }
    config = BertConfig(
        vocab_size=len(VOCAB),
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type=problem_type,
        **settings,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


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
    """A BERT whose weights are set so that only the keyword tokens matter.

    Only the keywords have a word embedding (a large value in the dimension of their label); every
    other token, [PAD] included, has a zero one, so replacing a non-keyword token by [PAD] changes
    nothing at all. A constant position embedding keeps the embedding LayerNorm smooth. The single
    attention head attends uniformly (zero queries and keys) and copies the normalised embeddings
    (identity values), the feed-forward block adds nothing, and the pooler and classifier read the
    label dimensions. A keyword therefore decides the prediction, and every attribution method
    must give all the credit to it: non-keyword tokens score exactly 0.
    """
    model = make_bert(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    n_labels, hidden = len(LABELS), 8
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if "LayerNorm.weight" in name:
                parameter.fill_(1.0)
        bert = model.bert
        for token, label in KEYWORDS.items():
            bert.embeddings.word_embeddings.weight[VOCAB.index(token), label] = 5.0
        bert.embeddings.position_embeddings.weight[:] = torch.tensor([0.0, 0, 0, 1, -1, 1, -1, 0])
        layer = bert.encoder.layer[0]
        layer.attention.self.value.weight.copy_(torch.eye(hidden))
        layer.attention.output.dense.weight.copy_(torch.eye(hidden))
        bert.pooler.dense.weight.copy_(torch.eye(hidden))
        model.classifier.weight.copy_(4.0 * torch.eye(n_labels, hidden))
    return model.eval()


@pytest.fixture
def encode(tokenizer) -> Callable[[Sequence[str]], list[EncodedText]]:
    """Encode texts the way the explainer does."""

    def run(texts: Sequence[str]) -> list[EncodedText]:
        return encode_texts(tokenizer, list(texts), 64)

    return run
