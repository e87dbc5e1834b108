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


def english_dataset(per_label: int = 8):
    """:func:`english_rows` as a data set: every second row trains, every fourth from the second evaluates."""
    from mlflow_explain.data import Example, TextDataset

    rows = english_rows(per_label=per_label)
    return TextDataset(
        train=tuple(Example(r["text"], r["label"]) for r in rows[::2]),
        eval=tuple(Example(r["text"], r["label"]) for r in rows[1::4]),
        labels=tuple(sorted(KEYWORDS)),
        source="test",
    )


def write_csv(path: Path, rows: list[dict], columns: tuple[str, str] = ("text", "label")) -> Path:
    """Write rows as CSV with the given text and label column names."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row["text"], row["label"]])
    return path


def multi_label_rows(per_set: int = 6) -> list[dict]:
    """Short English sentences tagged with every topic whose keyword they hold, deterministic.

    Each of the three one-topic sets and three two-topic sets gets ``per_set`` sentences; a row is
    ``{"text": ..., "labels": [...]}`` with the labels in the order their keywords appear.
    """
    import itertools

    topics = sorted(KEYWORDS)
    rows = []
    for labels in [(t,) for t in topics] + list(itertools.combinations(topics, 2)):
        for i in range(per_set):
            keys = [KEYWORDS[topic][(i + k) % len(KEYWORDS[topic])] for k, topic in enumerate(labels)]
            filler = [FILLER[(i + j) % len(FILLER)] for j in range(2)]
            rows.append({"text": f"{filler[0]} {' '.join(keys)} {filler[1]}", "labels": list(labels)})
    return rows


def write_label_sets(path: Path, rows: list[dict], separator: str = "|") -> Path:
    """Write :func:`multi_label_rows` as JSONL (label lists) or CSV / TSV (labels joined by ``separator``)."""
    import json

    if path.suffix == ".jsonl":
        lines = [json.dumps({"text": r["text"], "label": r["labels"]}) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerow(("text", "label"))
        writer.writerows((r["text"], separator.join(r["labels"])) for r in rows)
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


# --- one tiny random classifier per model family: tests/attribution/test_families.py ---------------

FAMILY_TEXTS = [
    "the goal",
    "a big rocket launch today",
    "new soup recipe with garlic after the week",
    "the coach says the league match of the week is on today",
]
"""English sentences the families' tokenizers are trained on (and the tests explain)."""

JAPANESE_TEXTS = ["試合でゴールを決めた", "ロケットの打ち上げが今日成功した", "新しいスープのレシピでニンニクを使う"]
"""Japanese sentences of the Japanese BERTs' vocabularies."""

MODEL_FAMILIES = (
    "bert",
    "bert-japanese-v1",
    "bert-japanese-v3",
    "roberta",
    "xlm-roberta",
    "deberta-v2",
    "modernbert",
    "electra",
    "distilbert",
    "llama",
    "qwen2",
)
"""The families :func:`family_classifier` builds."""

_FAMILY_SHAPE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "initializer_range": 0.2,
}


def _trained_tokenizer(kind: str, special: list[str], template: str | None, **names: str):
    """A fast tokenizer trained on :data:`FAMILY_TEXTS`: byte-level BPE (``"bpe"``, RoBERTa, ModernBERT, Llama,
    Qwen2) or a Metaspace Unigram model (``"unigram"``, SentencePiece-like: XLM-R, DeBERTa-v3).

    Args:
        kind: ``"bpe"`` or ``"unigram"``.
        special: Special tokens, first in the vocabulary.
        template: Post-processing of a single text (``"<s> $A </s>"``), or ``None`` to add no token.
        names: The tokenizer's special-token roles (``pad_token="<pad>"``, ...).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=330, special_tokens=special, initial_alphabet=alphabet, show_progress=False
        )
    else:
        backend = Tokenizer(models.Unigram())
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=120, special_tokens=special, unk_token=names.get("unk_token"), show_progress=False
        )
    backend.train_from_iterator(FAMILY_TEXTS, trainer=trainer)
    if template:
        used = [(token, backend.token_to_id(token)) for token in special if token in template.split()]
        backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=used)
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=64, **names)


def family_classifier(family: str, folder: Path, seed: int = 0, *, zero_pad: bool = False):
    """A tiny random three-label classifier of a model family and a tokenizer for it, built offline, in eval mode.

    Two layers, hidden size 32, four heads (DistilBERT and the v1 Japanese BERT: see their builders), a
    large initialiser range so that outputs are far from uniform. Tokenizers: BERT, ELECTRA and DistilBERT
    the WordPiece :func:`keyword_tokenizer`; the Japanese BERTs MeCab + WordPiece (IPAdic through
    :func:`save_tiny_v1_japanese_model` and ``load_pretrained``; unidic-lite through the embedded default's
    :func:`~mlflow_explain.tokenization.build_japanese_tokenizer`); the others :func:`_trained_tokenizer`
    with their own special tokens. The decoder classifiers (Llama, Qwen2) have a pad token in their
    tokenizer and config and pool the last non-pad token; the Llama tokenizer adds ``<s>``, Qwen2's none.

    A model built from a config has a zero pad embedding (``nn.Embedding``'s ``padding_idx``). A checkpoint's
    pad token is a trained token (Qwen2's ``<|endoftext|>``, Llama's end-of-sequence token when it pads) or,
    added later, initialised by ``resize_token_embeddings`` to the embeddings' mean; so by default its row
    is drawn like the others.

    Args:
        family: One of :data:`MODEL_FAMILIES`.
        folder: Where vocabulary files (and the v1 model) are written.
        seed: Weight initialisation seed.
        zero_pad: Keep the zero pad embedding of a model built from a config (the v1 Japanese BERT's
            builder always keeps it).

    Returns:
        ``(model, tokenizer)``.
    """
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    head = {
        "num_labels": len(KEYWORD_MODEL_LABELS),
        "id2label": dict(enumerate(KEYWORD_MODEL_LABELS)),
        "label2id": {label: i for i, label in enumerate(KEYWORD_MODEL_LABELS)},
    }
    if family == "bert-japanese-v1":
        from mlflow_explain.modeling import load_pretrained

        model, tokenizer = load_pretrained(
            str(save_tiny_v1_japanese_model(folder / "model", JAPANESE_TEXTS, KEYWORD_MODEL_LABELS))
        )
        return model.eval(), tokenizer
    bert_tokens = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    roberta_tokens = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    roberta_tokens |= {"cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    if family in ("bert", "electra", "distilbert"):
        tokenizer = keyword_tokenizer(folder)
    elif family == "bert-japanese-v3":
        from mlflow_explain.tokenization import build_japanese_tokenizer

        tokenizer = build_japanese_tokenizer(JAPANESE_TEXTS, folder, vocab_size=200)
    elif family in ("roberta", "xlm-roberta"):
        kind = "bpe" if family == "roberta" else "unigram"
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tokenizer = _trained_tokenizer(kind, special, "<s> $A </s>", **roberta_tokens)
    elif family in ("deberta-v2", "modernbert"):
        kind = "unigram" if family == "deberta-v2" else "bpe"
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = _trained_tokenizer(kind, special, "[CLS] $A [SEP]", mask_token="[MASK]", **bert_tokens)
    elif family == "llama":
        names = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
        tokenizer = _trained_tokenizer("bpe", ["<unk>", "<s>", "</s>", "<pad>"], "<s> $A", **names)
    elif family == "qwen2":
        special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tokenizer = _trained_tokenizer("bpe", special, None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    else:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(MODEL_FAMILIES)}")
    vocab = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, **head}
    decoder = {**_FAMILY_SHAPE, "num_key_value_heads": 2, **vocab}
    configs = {
        "bert": lambda: transformers.BertConfig(**_FAMILY_SHAPE, **vocab),
        "bert-japanese-v3": lambda: transformers.BertConfig(**_FAMILY_SHAPE, **vocab),
        "electra": lambda: transformers.ElectraConfig(embedding_size=16, **_FAMILY_SHAPE, **vocab),
        "distilbert": lambda: transformers.DistilBertConfig(
            dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, initializer_range=0.2, **vocab
        ),
        "roberta": lambda: transformers.RobertaConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_FAMILY_SHAPE, **vocab
        ),
        "xlm-roberta": lambda: transformers.XLMRobertaConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_FAMILY_SHAPE, **vocab
        ),
        # DeBERTa-v3's settings: relative attention both ways, no absolute positions in the input.
        "deberta-v2": lambda: transformers.DebertaV2Config(
            relative_attention=True,
            position_biased_input=False,
            pos_att_type=["p2c", "c2p"],
            max_relative_positions=-1,
            position_buckets=16,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            **_FAMILY_SHAPE,
            **vocab,
        ),
        # A sliding window of 8 tokens in the second layer, which the longer sentences exceed.
        "modernbert": lambda: transformers.ModernBertConfig(
            local_attention=8,
            global_attn_every_n_layers=2,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            **_FAMILY_SHAPE,
            **vocab,
        ),
        "llama": lambda: transformers.LlamaConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **decoder
        ),
        "qwen2": lambda: transformers.Qwen2Config(eos_token_id=tokenizer.eos_token_id, **decoder),
    }
    config = configs[family]()
    torch.manual_seed(seed)
    model = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    if not zero_pad:
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            weight[tokenizer.pad_token_id] = torch.randn(weight.shape[1]) * config.initializer_range
    return model, tokenizer
