"""Multi-label classification: BCE training, evaluation at the threshold, explanations towards label sets and
the pages, tables and pictures that show them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import english_rows, multi_label_rows, save_tiny_english_model, write_csv, write_label_sets

from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.errors import ModelError
from mlflow_explain.modeling import (
    MULTI_LABEL,
    align_labels,
    build_embedded_model,
    encode_texts,
    evaluate,
    load_pretrained,
    predict_proba,
    train,
)

TOPICS = ("cooking", "football", "space")


@pytest.fixture(scope="module")
def tags(tmp_path_factory):
    """The small multi-label data set, as a CSV of '|'-separated label sets, loaded."""
    path = write_label_sets(tmp_path_factory.mktemp("tags") / "tags.csv", multi_label_rows(per_set=8))
    return load_dataset(DataConfig(data=str(path)))


# --- training and evaluation ---------------------------------------------------------------------


def test_the_embedded_model_gets_a_multi_label_head_for_label_sets(tags, tmp_path):
    model, _ = build_embedded_model(tags, TrainConfig(max_length=32), tmp_path)
    assert model.config.problem_type == MULTI_LABEL and model.config.num_labels == 3
    single = load_dataset(DataConfig(data=str(write_csv(tmp_path / "news.csv", english_rows()))))
    model, _ = build_embedded_model(single, TrainConfig(max_length=32), tmp_path / "single")
    assert model.config.problem_type is None  # transformers' cross-entropy, as before


def test_training_minimises_binary_cross_entropy_on_the_label_sets(tags, tmp_path):
    """One epoch; the Trainer's last evaluation loss is BCE of the logits against each text's 0/1 label targets."""
    config = TrainConfig(epochs=1, max_length=32)
    model, tokenizer = build_embedded_model(tags, config, tmp_path)
    result = train(model, tokenizer, tags, config, tmp_path / "trainer")

    encoded = encode_texts(tokenizer, [e.text for e in tags.eval], 32)
    probabilities = torch.tensor(predict_proba(model, tokenizer, encoded), dtype=torch.float64)
    targets = torch.tensor([[float(label in e.labels) for label in TOPICS] for e in tags.eval], dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy(probabilities, targets).item()
    (last,) = [h for h in result.history if "eval_loss" in h][-1:]
    assert last["eval_loss"] == pytest.approx(bce, abs=1e-4)
    assert model.config.problem_type == MULTI_LABEL
    assert {"micro_f1", "macro_f1", "subset_accuracy", "f1_space", "precision_cooking"} <= set(result.metrics)


def test_evaluation_decides_at_the_threshold(tags, tmp_path):
    model, tokenizer = load_pretrained(
        str(save_tiny_english_model(tmp_path / "m", problem_type=MULTI_LABEL)), list(TOPICS), multi_label=True
    )
    probabilities = predict_proba(model, tokenizer, encode_texts(tokenizer, [e.text for e in tags.eval], 32))
    low, high = float(probabilities.min()) - 1e-3, float(probabilities.max()) + 1e-3
    everything = evaluate(model, tokenizer, tags, 32, threshold=low)  # every label predicted for every text
    mean_size = np.mean([len(e.labels) for e in tags.eval])
    assert everything["micro_f1"] == pytest.approx(2 * mean_size / (mean_size + 3))  # recall 1, precision size/3
    assert everything["subset_accuracy"] == 0.0 and everything["recall_space"] == 1.0
    top_only = evaluate(model, tokenizer, tags, 32, threshold=high)  # the most probable label of each text
    top = probabilities.argmax(axis=1)
    assert top_only["subset_accuracy"] == pytest.approx(
        np.mean([e.labels == (TOPICS[t],) for e, t in zip(tags.eval, top, strict=True)])
    )


def test_fine_tuning_sets_the_problem_type_from_the_data(tmp_path):
    folder = save_tiny_english_model(tmp_path / "m")
    multi, _ = load_pretrained(str(folder), list(TOPICS), multi_label=True)
    assert multi.config.problem_type == MULTI_LABEL
    saved_multi = save_tiny_english_model(tmp_path / "ml", problem_type=MULTI_LABEL)
    single, _ = load_pretrained(str(saved_multi), list(TOPICS))  # one label per text: a softmax head again
    assert single.config.problem_type is None


def test_label_sets_need_a_multi_label_model(tmp_path):
    single, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "m")))
    with pytest.raises(ModelError, match=r"the data holds label sets \(multi-label\) but the model is a single-label"):
        align_labels(single, list(TOPICS), multi_label=True)
    multi, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "ml", problem_type=MULTI_LABEL)))
    align_labels(multi, list(TOPICS), multi_label=True)
    align_labels(multi, list(TOPICS))  # one label per text is a set of one


@pytest.mark.slow
def test_a_tiny_bert_learns_the_label_sets_above_chance(tags, tmp_path):
    config = TrainConfig(epochs=20, max_length=32)
    model, tokenizer = build_embedded_model(tags, config, tmp_path)
    metrics = train(model, tokenizer, tags, config, tmp_path / "trainer").metrics
    # Chance: predicting all three labels gives micro-F1 2 * 1.5 / (1.5 + 3) = 0.67 and no exact match;
    # guessing one of the six label sets matches 1 in 6.
    assert metrics["micro_f1"] > 0.75 and metrics["macro_f1"] > 0.75
    assert metrics["subset_accuracy"] > 0.3
