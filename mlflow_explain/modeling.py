"""Build, load, train, evaluate and run the classifier.

The embedded default model (``tiny-bert-ja``) is a small BERT built from a ``BertConfig`` with a
Japanese MeCab + WordPiece tokenizer whose vocabulary is learned from the training split. Any
other name is a Hub id or a local folder of a sequence-classification model.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlflow_explain import distributed
from mlflow_explain.attribution.base import EncodedText, output_activation
from mlflow_explain.config import DEFAULT_MODEL, TrainConfig
from mlflow_explain.data import TextDataset
from mlflow_explain.errors import ModelError

__all__ = [
    "MULTI_LABEL",
    "TrainResult",
    "align_labels",
    "build_embedded_model",
    "encode_texts",
    "evaluate",
    "load_pretrained",
    "max_input_length",
    "predict_proba",
    "problem_type",
    "train",
]

logger = logging.getLogger(__name__)

TINY_BERT = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}
"""Shape of the embedded default model: about 0.9M parameters with a 4000-piece vocabulary."""


@dataclass(frozen=True)
class TrainResult:
    """What training produced.

    Args:
        metrics: Final evaluation metrics (``accuracy``, ``macro_f1``, ``loss``).
        history: Trainer's log history (loss per logging step, evaluation per epoch).
        train_seconds: Wall time of training.
    """

    metrics: dict[str, float]
    history: list[dict]
    train_seconds: float


def embedded_model_card(dataset: TextDataset, config: TrainConfig, metrics: dict[str, float] | None = None):
    """The Hugging Face model card of the embedded model, to log with it.

    Without a card MLflow looks the model up on the Hub (it has no name there) and warns twice.

    Args:
        dataset: The data it was trained on.
        config: Its training settings.
        metrics: Evaluation figures to state (``accuracy``, ``macro_f1``), if known.

    Returns:
        A ``huggingface_hub.ModelCard``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license="apache-2.0",
        language="ja",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["mlflow-explain", "bert"],
    )
    shape = ", ".join(f"{k} {v}" for k, v in TINY_BERT.items() if not k.endswith("dropout_prob"))
    epochs = config.for_data(len(dataset.train)).resolved_epochs
    scores = "".join(f"\n- evaluation {name.replace('_', ' ')}: {value:.3f}" for name, value in (metrics or {}).items())
    content = f"""---
{data.to_yaml()}
---

# {DEFAULT_MODEL}

The embedded default model of mlflow-explain: a BERT
({shape}) with a MeCab (unidic-lite) + WordPiece tokenizer learned from its training texts, trained
from scratch for {epochs:g} epochs on {len(dataset.train)} headlines of the data set
`{dataset.source}` ({len(dataset.eval)} held out for evaluation).

- labels: {", ".join(dataset.labels)}
- seed: {config.seed}{scores}

It exists so that `mlflow run .` works offline; fine-tune a pretrained Japanese BERT for real use.
"""
    return ModelCard(content)


MULTI_LABEL = "multi_label_classification"
"""``problem_type`` of a multi-label classifier: a sigmoid per label, trained with binary cross-entropy."""


def problem_type(multi_label: bool) -> str | None:
    """The ``problem_type`` to train a classifier with: :data:`MULTI_LABEL`, or ``None`` for one label per text
    (transformers then picks cross-entropy over a softmax, as it always did)."""
    return MULTI_LABEL if multi_label else None


def build_embedded_model(dataset: TextDataset, config: TrainConfig, workdir: str | Path):
    """Build the embedded tiny Japanese BERT and its tokenizer, untrained.

    A multi-label data set (:attr:`TextDataset.multi_label`) gets a multi-label head (:data:`MULTI_LABEL`).

    Args:
        dataset: The data; its training texts give the vocabulary and its labels the classes.
        config: Training settings (``max_length`` and ``seed`` are used).
        workdir: Folder for the tokenizer's vocabulary file.

    Returns:
        ``(model, tokenizer)``.
    """
    from transformers import BertConfig, BertForSequenceClassification, set_seed

    from mlflow_explain.tokenization import build_japanese_tokenizer

    tokenizer = build_japanese_tokenizer(_vocabulary_texts(dataset, config.seed), Path(workdir) / "tokenizer")
    set_seed(config.seed)
    bert_config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max(config.max_length, 32),
        num_labels=len(dataset.labels),
        id2label=dict(enumerate(dataset.labels)),
        label2id=dataset.label2id,
        pad_token_id=tokenizer.pad_token_id,
        problem_type=problem_type(dataset.multi_label),
        **TINY_BERT,
    )
    tokenizer.model_max_length = bert_config.max_position_embeddings
    return BertForSequenceClassification(bert_config), tokenizer


VOCAB_TEXTS = 20_000
"""Most training texts the embedded model's vocabulary is learned from (a seeded sample beyond that:
4,000 pieces are settled long before, and MeCab takes about 0.1 ms per text)."""


def _vocabulary_texts(dataset: TextDataset, seed: int) -> list[str]:
    texts = [e.text for e in dataset.train]
    if len(texts) <= VOCAB_TEXTS:
        return texts
    logger.info("learning the vocabulary from %d of the %d training texts (seed %d)", VOCAB_TEXTS, len(texts), seed)
    return random.Random(seed).sample(texts, VOCAB_TEXTS)


def load_pretrained(model: str, labels: Sequence[str] | None = None, *, multi_label: bool = False):
    """Load a tokenizer and sequence-classification model from a local folder or the Hub.

    With ``labels``, the classification head gets one output per label and the label names go
    into the config's ``id2label`` / ``label2id`` (a head of another size, or none, is initialised,
    as for fine-tuning), and its ``problem_type`` is set by ``multi_label``. Without, the model is loaded as
    saved and must have its classification head:
    a bare encoder (``BertModel.save_pretrained``) would be explained with random weights, so it is
    refused. A Japanese MeCab tokenizer whose config names no dictionary gets IPAdic, the one it was
    trained with (:func:`~mlflow_explain.tokenization.tokenizer_load_kwargs`). A tokenizer without a
    pad token (GPT-2 style) pads with its end-of-sequence token, with a warning.

    Args:
        model: A local folder or a Hugging Face Hub id.
        labels: Label names for fine-tuning, or ``None`` to keep the saved head.
        multi_label: With ``labels``, fine-tune a multi-label head (:data:`MULTI_LABEL`). Defaults to False.

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModelError: If the model cannot be loaded, has no classification head (without ``labels``)
            or its tokenizer cannot pad.
    """
    source, where = _model_source(model)
    tokenizer = _load_part("tokenizer", model, source, where, lambda: _load_tokenizer(source))
    loaded, info = _load_part("weights", model, source, where, lambda: _load_classifier(source, labels, multi_label))
    head = [key for key in info.get("missing_keys", ()) if not key.startswith(f"{loaded.base_model_prefix}.")]
    if head and labels is None:
        raise ModelError(
            f"{model}: the saved model has no classification head (missing {', '.join(sorted(head))}); it is a bare "
            "encoder, and explaining it would explain random weights. Fine-tune it first (mlflow-explain main "
            f"--model {model}) or pass a model saved with AutoModelForSequenceClassification."
        )
    _ensure_pad_token(loaded, tokenizer, model)
    return loaded, tokenizer


def _model_source(model: str) -> tuple[str, str]:
    """Where ``model`` points: ``(folder path, "folder")`` or ``(Hub id, "Hub id")``; a missing path is refused."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), "folder"
    if path.exists():
        raise ModelError(f"{model}: is a file, not a model folder; pass the folder that holds config.json.")
    looks_like_path = model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
    if looks_like_path or not model.strip():
        raise ModelError(f"{model}: no such model folder. Check the path given as the model.")
    return model, "Hub id"


def _load_part(part: str, model: str, source: str, where: str, load):
    """Run a loader; turn its errors (missing files, corrupt weights, no Hub) into one :class:`ModelError`."""
    from safetensors import SafetensorError

    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, SafetensorError) as err:
        if where == "folder":
            hint = (
                "The weights file is damaged: save or copy the model again."
                if part == "weights" and isinstance(err, (SafetensorError, RuntimeError, EOFError))
                else "Check that the folder holds config.json, the weights and the tokenizer files."
            )
        else:
            hint = (
                f"No folder {model!r} exists, and the Hugging Face Hub cannot be reached or has no such model: "
                "download it and pass its folder."
            )
        detail = " ".join(str(err).split())[:300]
        raise ModelError(f"cannot load the {part} of model {model!r} ({where}): {detail}. {hint}") from err


def _load_tokenizer(source: str):
    from transformers import AutoTokenizer

    from mlflow_explain.tokenization import tokenizer_load_kwargs

    return AutoTokenizer.from_pretrained(source, **tokenizer_load_kwargs(source))


def _load_classifier(source: str, labels: Sequence[str] | None, multi_label: bool):
    from transformers import AutoModelForSequenceClassification

    kwargs = {}
    if labels is not None:
        kwargs = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "problem_type": problem_type(multi_label),
            "ignore_mismatched_sizes": True,
        }
    # transformers prints a table of missing and unexpected weights; load_pretrained says what it means instead.
    # (A filter, not a level: at ERROR level transformers logs every weight as "not sharded".)
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(_no_load_report)
    try:
        loaded, info = AutoModelForSequenceClassification.from_pretrained(source, output_loading_info=True, **kwargs)
    finally:
        report.removeFilter(_no_load_report)
    if labels is not None and (info.get("missing_keys") or info.get("mismatched_keys")):
        logger.info("a new classification head with %d outputs is initialised for fine-tuning", len(labels))
    return loaded, info


def _no_load_report(record: logging.LogRecord) -> bool:
    return record.filename != "loading_report.py"


def _ensure_pad_token(model, tokenizer, name: str) -> None:
    """Give a tokenizer without a pad token (GPT-2 style) its end-of-sequence token for padding, or refuse."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(
                f"{name}: the tokenizer has neither a pad token nor an end-of-sequence token, so texts of different "
                "lengths cannot be batched. Add one (tokenizer.add_special_tokens({'pad_token': '[PAD]'}), then "
                "model.resize_token_embeddings(len(tokenizer))) and save the model again."
            )
        tokenizer.pad_token = tokenizer.eos_token
        logger.warning(
            "%s: the tokenizer has no pad token; padding with its end-of-sequence token %r.", name, tokenizer.eos_token
        )
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def align_labels(model, labels: Sequence[str], *, multi_label: bool = False) -> None:
    """Check that a loaded model can explain data with ``labels``, naming its classes if needed.

    A model whose config has only generic names (``LABEL_0``, ...) and as many outputs as there
    are labels gets the data's label names. Data with label sets needs a multi-label model; a
    multi-label model also explains data with one label per text (each a set of one).

    Args:
        model: The loaded classifier; its config may be updated in place.
        labels: The data set's label names, sorted.
        multi_label: Whether the data holds label sets. Defaults to False.

    Raises:
        ModelError: If the model's outputs and the data's labels do not fit together.
    """
    if multi_label and output_activation(model) != "sigmoid":
        raise ModelError(
            "the data holds label sets (multi-label) but the model is a single-label classifier (a softmax over its "
            f"labels; problem_type {model.config.problem_type!r}); fine-tune one on this data with `main`, which "
            f"trains a multi-label head, or load a model saved with problem_type {MULTI_LABEL!r}."
        )
    n_out = int(model.config.num_labels)
    names = [str(model.config.id2label.get(i, f"LABEL_{i}")) for i in range(n_out)] if model.config.id2label else []
    generic = not names or all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if generic:
        if n_out != len(labels):
            raise ModelError(
                f"the model has {n_out} outputs but the data has {len(labels)} labels "
                f"({', '.join(labels)}); use data with the model's classes or fine-tune with `main`."
            )
        logger.warning("The model's config names no labels; using the data's: %s", ", ".join(labels))
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: i for i, label in enumerate(labels)}
        return
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ModelError(
            f"the data has labels the model does not know: {', '.join(map(repr, unknown))}; "
            f"the model's labels are {', '.join(map(repr, names))}."
        )


def max_input_length(model, tokenizer, limit: int | None = None) -> int:
    """The longest input, in tokens, that the model and tokenizer accept.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        limit: An extra upper bound (such as ``TrainConfig.max_length``).

    Returns:
        The smallest of the model's position embeddings, the tokenizer's maximum and ``limit``.
    """
    bounds = [getattr(model.config, "max_position_embeddings", None), limit]
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if tokenizer_max and tokenizer_max < 1_000_000:
        bounds.append(tokenizer_max)
    return int(min(b for b in bounds if b)) if any(bounds) else 512


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[EncodedText]:
    """Tokenize texts, truncating each to ``max_length`` tokens (special tokens included).

    Args:
        tokenizer: The model's tokenizer.
        texts: Texts to encode.
        max_length: Longest encoding kept.

    Returns:
        One :class:`EncodedText` per text, flagged when it was truncated. Only structural tokens
        (``[CLS]``, ``[SEP]``, ``[PAD]``, ...) are marked special: ``[UNK]`` stands for text the
        vocabulary lacks, so it is attributed, masked and shown like any other token. A control
        token's name typed inside a text (``[SEP]``, ``[MASK]``) is tokenized as the text it is
        (``split_special_tokens``), never turned into the control token.
    """
    special_ids = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    encoded = []
    for text in texts:
        full = tokenizer(text, truncation=False, verbose=False, split_special_tokens=True)["input_ids"]
        ids = full
        if len(full) > max_length:  # tokenize again: the tokenizer knows which special tokens to keep
            ids = tokenizer(text, truncation=True, max_length=max_length, split_special_tokens=True)["input_ids"]
        encoded.append(
            EncodedText(
                text=text,
                input_ids=tuple(ids),
                tokens=tuple(tokenizer.convert_ids_to_tokens(ids)),
                special=tuple(i in special_ids for i in ids),
                truncated=len(full) > len(ids),
                n_tokens=len(full),
            )
        )
    return encoded


PROGRESS_TEXTS = 2_000
"""From this many texts on, :func:`predict_proba` shows a progress bar."""

PROGRESS_CHUNK = 512
"""Texts :func:`predict_proba` predicts between two updates of its progress bar."""


@torch.no_grad()
def predict_proba(
    model, tokenizer, encoded: Sequence[EncodedText], batch_size: int = 64, progress: bool | None = None
) -> np.ndarray:
    """Label probabilities for encoded texts (softmax, or sigmoid for multi-label models).

    Texts are batched by length (fewer pad tokens to compute) and run through the attribution
    engine's forward pass (:func:`mlflow_explain.attribution.probabilities`: its exact
    shortcuts, such as the ``[CLS]``-only last layer and oneDNN's linear layers, included); the rows
    come back in input order.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer (for the pad id).
        encoded: Encoded texts.
        batch_size: Texts per forward pass. Defaults to 64.
        progress: Show a progress bar; ``None`` shows one from :data:`PROGRESS_TEXTS` texts on.

    Returns:
        Array of shape ``(len(encoded), num_labels)``.
    """
    from tqdm.auto import tqdm

    from mlflow_explain.attribution import Row, probabilities

    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    activation = output_activation(model)
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    chunk = max(batch_size, PROGRESS_CHUNK)
    bar = tqdm(
        total=len(encoded),
        desc="predicting",
        unit="text",
        disable=not (len(encoded) >= PROGRESS_TEXTS if progress is None else progress),
    )
    try:
        for start in range(0, len(encoded), chunk):
            rows = [Row(torch.tensor(e.input_ids, dtype=torch.long)) for e in encoded[start : start + chunk]]
            out[start : start + len(rows)] = probabilities(model, rows, pad, activation, batch_size).numpy()
            bar.update(len(rows))
    finally:
        bar.close()
        model.train(was_training)
    return out


def evaluate(model, tokenizer, dataset: TextDataset, max_length: int, threshold: float = 0.5) -> dict[str, float]:
    """The model's figures on the evaluation split.

    Args:
        model: The classifier, with the data's labels in its config.
        tokenizer: Its tokenizer.
        dataset: The data set.
        max_length: Longest input in tokens.
        threshold: Decision threshold of a multi-label model (:func:`~mlflow_explain.metrics.decide`). Defaults
            to 0.5.

    Returns:
        ``{"accuracy": ..., "macro_f1": ...}`` for a single-label model;
        :func:`~mlflow_explain.metrics.multi_label_metrics` over the data set's labels for a multi-label one.
    """
    from mlflow_explain.metrics import decide, multi_label_metrics, single_label_metrics

    probs = predict_proba(model, tokenizer, encode_texts(tokenizer, [e.text for e in dataset.eval], max_length))
    id2label = {int(i): str(name) for i, name in model.config.id2label.items()}
    if output_activation(model) != "sigmoid":
        predicted = [id2label[int(i)] for i in probs.argmax(axis=1)]
        return single_label_metrics([e.label for e in dataset.eval], predicted, dataset.labels)
    label2id = {name: i for i, name in id2label.items()}
    columns = [label2id[label] for label in dataset.labels]
    truth = np.array([[label in e.label_set for label in dataset.labels] for e in dataset.eval], dtype=bool)
    return multi_label_metrics(truth, decide(probs, threshold)[:, columns], dataset.labels)


EPOCH_EVAL_TEXTS = 5_000
"""Most evaluation texts the per-epoch evaluation during training runs on (a seeded sample beyond that);
the final evaluation (:func:`evaluate`) always uses the whole split."""


def _epoch_eval_examples(dataset: TextDataset, seed: int) -> Sequence:
    if len(dataset.eval) <= EPOCH_EVAL_TEXTS:
        return dataset.eval
    logger.info(
        "evaluating each epoch on %d of the %d evaluation texts (seed %d); the final evaluation uses all of them",
        EPOCH_EVAL_TEXTS,
        len(dataset.eval),
        seed,
    )
    return random.Random(seed).sample(list(dataset.eval), EPOCH_EVAL_TEXTS)


class _EncodedDataset(torch.utils.data.Dataset):
    """Encoded texts with their targets: the class index, or (``multi_label``) a 0/1 float per label for BCE."""

    def __init__(self, tokenizer, examples, label2id: dict[str, int], max_length: int, multi_label: bool):
        texts = [e.text for e in examples]
        # Text that spells a control token ("[SEP]") is text, as in encode_texts.
        self.encodings = tokenizer(texts, truncation=True, max_length=max_length, split_special_tokens=True)
        if multi_label:
            self.labels = [[float(label in e.label_set) for label in label2id] for e in examples]
        else:
            self.labels = [label2id[e.label] for e in examples]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


def train(
    model,
    tokenizer,
    dataset: TextDataset,
    config: TrainConfig,
    output_dir: str | Path,
    callbacks: Sequence = (),
    report_to: str = "none",
    threshold: float = 0.5,
) -> TrainResult:
    """Fine-tune (or train from scratch) with ``transformers.Trainer``, evaluating every epoch.

    A multi-label model (``problem_type`` :data:`MULTI_LABEL`) learns each label set as one 0/1 target per label,
    with binary cross-entropy on the logits.

    Args:
        model: The classifier, with the data's labels in its config.
        tokenizer: Its tokenizer.
        dataset: Training and evaluation data.
        config: Epochs, batch size, learning rate, seed.
        output_dir: Trainer's working folder (no checkpoints are saved there).
        callbacks: Extra ``TrainerCallback`` objects, e.g. :class:`mlflow_explain.ExplainCallback`.
        report_to: Trainer's ``report_to``. Defaults to ``"none"``.
        threshold: Decision threshold of the final evaluation of a multi-label model. Defaults to 0.5.

    Returns:
        The final evaluation metrics (:func:`evaluate`), the log history and the training time.
    """
    import time

    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    config = config.for_data(len(dataset.train))
    label2id = {str(k): int(v) for k, v in sorted(model.config.label2id.items(), key=lambda item: item[1])}
    multi_label = output_activation(model) == "sigmoid"
    max_length = max_input_length(model, tokenizer, config.max_length)
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.resolved_epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=config.resolved_learning_rate,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to=report_to,
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        **distributed.training_arguments(),  # DDP under torchrun or accelerate launch
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_EncodedDataset(tokenizer, dataset.train, label2id, max_length, multi_label),
        eval_dataset=_EncodedDataset(
            tokenizer, _epoch_eval_examples(dataset, config.seed), label2id, max_length, multi_label
        ),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=list(callbacks),
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = evaluate(model, tokenizer, dataset, max_length, threshold)
    return TrainResult(metrics=metrics, history=list(trainer.state.log_history), train_seconds=seconds)
