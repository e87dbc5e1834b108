"""Small models and data files that tests build themselves (nothing comes from the Hub)."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

KEYWORDS = {
    "cooking": ["recipe", "oven", "bake", "soup", "garlic"],
    "football": ["goal", "striker", "league", "match", "coach"],
    "space": ["rocket", "orbit", "planet", "nasa", "launch"],
}
FILLER = ["the", "a", "new", "today", "report", "says", "big", "week", "with", "after"]


def english_rows(per_label: int = 12) -> list[dict]:
    """Short English sentences whose label is decided by a keyword, deterministic."""
    rows = []
    for label, words in KEYWORDS.items():
        for i in range(per_label):
            key = words[i % len(words)]
            filler = [FILLER[(i + j) % len(FILLER)] for j in range(3)]
            rows.append({"text": f"{filler[0]} {key} {filler[1]} {filler[2]}", "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], columns: tuple[str, str] = ("text", "label")) -> Path:
    """Write rows as CSV with the given text and label column names."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row["text"], row["label"]])
    return path


def english_vocab() -> list[str]:
    """A WordPiece vocabulary covering the English test sentences."""
    words = sorted({w for ws in KEYWORDS.values() for w in ws} | set(FILLER))
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s", "##ing"]


def save_tiny_english_model(
    folder: Path,
    labels: list[str] | None = None,
    *,
    id2label: bool = True,
    problem_type: str | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny untrained BERT with a fast tokenizer to ``folder``.

    Args:
        folder: Destination.
        labels: Class names; defaults to the keyword labels.
        id2label: Write the names into the config (False leaves LABEL_0, ...).
        problem_type: E.g. ``"multi_label_classification"``.
        seed: Weight initialisation seed.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    labels = labels or sorted(KEYWORDS)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(english_vocab()) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), model_max_length=32)
    kwargs = {"id2label": dict(enumerate(labels)), "label2id": {x: i for i, x in enumerate(labels)}} if id2label else {}
    config = BertConfig(
        vocab_size=len(english_vocab()),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=len(labels),
        problem_type=problem_type,
        **kwargs,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_livedoor(root: Path, articles: dict[str, list[tuple[str, str]]]) -> Path:
    """Write a livedoor-corpus-layout folder: text/<category>/<category>-<id>.txt plus the extra files."""
    text = root / "text"
    text.mkdir(parents=True)
    for name in ("LICENSE.txt", "README.txt", "CHANGES.txt"):
        (text / name).write_text("not an article\n", encoding="utf-8")
    for category, items in articles.items():
        folder = text / category
        folder.mkdir()
        (folder / "LICENSE.txt").write_text("license\n", encoding="utf-8")
        for i, (title, body) in enumerate(items):
            (folder / f"{category}-{1000 + i}.txt").write_text(
                f"http://news.example/article/{category}/{i}/\n2012-01-0{1 + i % 9}T10:00:00+0900\n{title}\n{body}\n",
                encoding="utf-8",
            )
    return root


@contextlib.contextmanager
def sqlite_store(root: Path) -> Iterator[str]:
    """A real sqlite tracking store in ``root`` with its own artifact folder, current while open; yields the URI."""
    import mlflow
    import pytest

    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment_id = mlflow.MlflowClient(uri).create_experiment(
            "tests", artifact_location=(root / "artifacts").as_uri()
        )
        mlflow.set_experiment(experiment_id=experiment_id)
        try:
            yield uri
        finally:
            while mlflow.active_run():
                mlflow.end_run()
            mlflow.set_tracking_uri(None)


def save_tiny_v1_japanese_model(folder: Path, texts: list[str], labels: list[str]) -> Path:
    """A tiny model shaped like cl-tohoku's v1 Japanese BERTs: MeCab words from IPAdic, WordPiece, no dictionary named.

    The vocabulary is every IPAdic word of ``texts`` (no sub-word pieces), and ``tokenizer_config.json``
    has no ``mecab_kwargs``, as the v1 checkpoints (``bert-base-japanese``) have it. Loaded with another
    dictionary, words that IPAdic keeps whole are split and become ``[UNK]``.
    """
    import json

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertJapaneseTokenizer
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = MecabTokenizer(do_lower_case=False, mecab_dic="ipadic")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w for t in texts for w in words.tokenize(t)})]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertJapaneseTokenizer(
        str(folder / "vocab.txt"),
        word_tokenizer_type="mecab",
        mecab_kwargs={"mecab_dic": "ipadic"},
        model_max_length=64,
    )
    tokenizer.save_pretrained(folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text("utf-8"))
    config.pop("mecab_kwargs", None)  # the v1 checkpoints name no dictionary
    config_file.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    )
    model.save_pretrained(folder)
    return folder


def save_tiny_gpt2_model(folder: Path, labels: list[str] | None = None, *, pad_token: bool = False) -> Path:
    """Save a tiny untrained GPT-2 classifier whose word-level tokenizer has an end-of-sequence token and no pad token.

    Args:
        folder: Destination.
        labels: Class names; defaults to the keyword labels.
        pad_token: Also give the tokenizer a pad token.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    labels = labels or sorted(KEYWORDS)
    folder.mkdir(parents=True, exist_ok=True)
    words = ["<unk>", "<eos>", *(["<pad>"] if pad_token else []), *english_vocab()[5:]]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"pad_token": "<pad>"} if pad_token else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>", model_max_length=32, **extra
    )
    config = GPT2Config(
        vocab_size=len(words),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
        eos_token_id=1,
        bos_token_id=1,
    )
    torch.manual_seed(0)
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def local_spark(shuffle_partitions: int = 4) -> Iterator:
    """A ``local[2]`` Spark session bound to 127.0.0.1, no UI, quiet logs; stopped on exit.

    Args:
        shuffle_partitions: ``spark.sql.shuffle.partitions``.
    """
    from mlflow_explain.spark import spark_session

    settings = {
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
    }
    session = spark_session("local[2]", settings)
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# --- the hand-weighted keyword model: a BERT whose answer is known by construction ----------------

KEYWORD_MODEL_FILLER = ["the", "a", "new", "today", "report", "says", "big", "week", "with", "after", "and", "of"]
KEYWORD_MODEL_FILLER += ["to", "in", "on", "for", "at", "by", "from", "more", "striker", "league", "match", "coach"]
KEYWORD_MODEL_FILLER += ["orbit", "planet"]
KEYWORD_MODEL_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *KEYWORD_MODEL_FILLER,
    *["launch", "recipe", "oven", "bake", "garlic", "goal", "rocket", "soup"],
]
"""Vocabulary of :func:`keyword_tokenizer`, shared by the random BERTs of :func:`tiny_bert`."""

KEYWORD_MODEL_LABELS = ["football", "space", "cooking"]
PLANTED_KEYWORDS = {"goal": 0, "rocket": 1, "soup": 2}
"""The tokens that decide :func:`keyword_bert`'s label, and the index of that label."""


def keyword_tokenizer(folder: Path):
    """A lower-casing WordPiece tokenizer over :data:`KEYWORD_MODEL_VOCAB`, its vocabulary file in ``folder``."""
    from transformers import BertTokenizerFast

    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(KEYWORD_MODEL_VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(vocab_file), model_max_length=64)


def tiny_bert(problem_type: str | None = None, seed: int = 0, **overrides):
    """A random two-layer BERT (hidden size 16) over :data:`KEYWORD_MODEL_VOCAB` whose outputs are far from
    uniform, in eval mode."""
    import torch
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
        vocab_size=len(KEYWORD_MODEL_VOCAB),
        num_labels=len(KEYWORD_MODEL_LABELS),
        id2label=dict(enumerate(KEYWORD_MODEL_LABELS)),
        label2id={label: i for i, label in enumerate(KEYWORD_MODEL_LABELS)},
        problem_type=problem_type,
        **settings,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


def keyword_bert():
    """A BERT whose weights are set so that only the keyword tokens matter.

    Only the keywords (:data:`PLANTED_KEYWORDS`) have a word embedding (a large value in the dimension of
    their label); every other token, [PAD] and [MASK] included, has a zero one, so replacing a non-keyword
    token by [PAD] or [MASK] changes nothing at all, and a sentence without a keyword is predicted uniformly.
    A constant position embedding keeps the embedding LayerNorm smooth. The single attention head attends
    uniformly (zero queries and keys) and copies the normalised embeddings (identity values), the
    feed-forward block adds nothing, and the pooler and classifier read the label dimensions. A keyword
    therefore decides the prediction, and every attribution method must give all the credit to it:
    non-keyword tokens score exactly 0.
    """
    import torch

    model = tiny_bert(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    n_labels, hidden = len(KEYWORD_MODEL_LABELS), 8
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if "LayerNorm.weight" in name:
                parameter.fill_(1.0)
        bert = model.bert
        for token, label in PLANTED_KEYWORDS.items():
            bert.embeddings.word_embeddings.weight[KEYWORD_MODEL_VOCAB.index(token), label] = 5.0
        bert.embeddings.position_embeddings.weight[:] = torch.tensor([0.0, 0, 0, 1, -1, 1, -1, 0])
        layer = bert.encoder.layer[0]
        layer.attention.self.value.weight.copy_(torch.eye(hidden))
        layer.attention.output.dense.weight.copy_(torch.eye(hidden))
        bert.pooler.dense.weight.copy_(torch.eye(hidden))
        model.classifier.weight.copy_(4.0 * torch.eye(n_labels, hidden))
    return model.eval()
