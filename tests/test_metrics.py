"""Evaluation figures: multi-label decisions at a threshold, micro/macro F1 by hand, per-label names."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

import mlflow_explain.metrics as metrics_module
from mlflow_explain.metrics import (
    decide,
    label_metric_names,
    multi_label_metrics,
    predicted_ids,
    single_label_metrics,
)

LABELS = ["a", "b", "c"]
TRUTH = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=bool)  # {a,b} {a} {c} {b,c}
CHOSEN = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)  # {a} {a,b} {c} {b}


def test_micro_and_macro_f1_and_exact_match_of_a_fixed_prediction_by_hand():
    figures = multi_label_metrics(TRUTH, CHOSEN, LABELS)
    # a: tp 2 fp 0 fn 0 -> F1 1; b: tp 1 fp 1 fn 1 -> F1 1/2; c: tp 1 fp 0 fn 1 -> P 1, R 1/2, F1 2/3
    assert figures["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))  # tp 4, fp 1, fn 2: 8/11
    assert figures["macro_f1"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert figures["subset_accuracy"] == 0.25  # only {c} is predicted exactly
    assert figures["precision_c"] == 1.0 and figures["recall_c"] == 0.5 and figures["f1_c"] == pytest.approx(2 / 3)
    assert (figures["precision_b"], figures["recall_b"], figures["f1_b"]) == (0.5, 0.5, 0.5)
    assert set(figures) == {"micro_f1", "macro_f1", "subset_accuracy"} | {
        f"{kind}_{label}" for kind in ("precision", "recall", "f1") for label in LABELS
    }


def test_the_figures_are_scikit_learns():
    rng = np.random.default_rng(0)
    truth, chosen = rng.random((40, 5)) > 0.6, rng.random((40, 5)) > 0.5
    truth[:, 4] = chosen[:, 4] = False  # a label never true nor predicted counts 0, as zero_division=0 does
    figures = multi_label_metrics(truth, chosen, list("vwxyz"))
    assert figures["micro_f1"] == pytest.approx(f1_score(truth, chosen, average="micro", zero_division=0))
    assert figures["macro_f1"] == pytest.approx(f1_score(truth, chosen, average="macro", zero_division=0))
    per_label = zip(
        "vwxyz",
        precision_score(truth, chosen, average=None, zero_division=0),
        recall_score(truth, chosen, average=None, zero_division=0),
        f1_score(truth, chosen, average=None, zero_division=0),
        strict=True,
    )
    for label, precision, recall, f1 in per_label:
        assert (figures[f"precision_{label}"], figures[f"recall_{label}"]) == pytest.approx((precision, recall))
        assert figures[f"f1_{label}"] == pytest.approx(f1)


def test_a_label_at_the_threshold_is_predicted_and_every_text_gets_its_top_label():
    probabilities = np.array([[0.5, 0.49, 0.7], [0.1, 0.3, 0.2], [0.9, 0.8, 0.95]])
    assert decide(probabilities, 0.5).astype(int).tolist() == [[1, 0, 1], [0, 1, 0], [1, 1, 1]]
    assert decide(probabilities, 0.85).astype(int).tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert predicted_ids(probabilities[0], 0.5) == [2, 0]  # most probable first
    assert predicted_ids(probabilities[1], 0.5) == [1]
    assert predicted_ids(probabilities[0], None) == [2]  # single-label: the top one
    for row, threshold in [(p, t) for p in probabilities for t in (0.3, 0.5, 0.9)]:
        assert sorted(predicted_ids(row, threshold)) == np.flatnonzero(decide(row[None], threshold)[0]).tolist()


def test_single_label_figures_are_accuracy_and_macro_f1_over_the_data_sets_labels():
    figures = single_label_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert figures == {"accuracy": pytest.approx(2 / 3), "macro_f1": pytest.approx((2 / 3 + 2 / 3 + 0) / 3)}


def test_label_names_become_metric_names_mlflow_takes():
    from mlflow.utils.validation import _validate_metric_name

    names = label_metric_names(["sports", "c++", "a/b", "映画", "sci-fi & fantasy", "c__"])
    assert names == ["sports", "c__", "a_b", "映画", "sci-fi _ fantasy", "c___5"]
    for name in names:
        _validate_metric_name(f"eval_f1_{name}")


def test_docstring_examples_run():
    assert doctest.testmod(metrics_module).failed == 0
