"""Evaluation figures of a classifier: single-label accuracy and macro-F1, multi-label F1 at a threshold.

Plain functions on label names and probability arrays: no model, no I/O. A multi-label model predicts
each label whose probability is at or above the decision threshold, and its most probable label when
none is (:func:`decide`): every text has at least one true label, so it gets at least one predicted
label, and the explanations (the ``predicted`` target) show the labels these figures count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["decide", "label_metric_names", "multi_label_metrics", "predicted_ids", "single_label_metrics"]


def decide(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """A multi-label model's decisions: each label at or above ``threshold``, and the most probable one.

    Args:
        probabilities: Sigmoid probabilities, shape ``(n_texts, n_labels)``.
        threshold: The decision threshold.

    Returns:
        A boolean array of the same shape; every row has at least one ``True``.

    Example:
        >>> decide(np.array([[0.9, 0.6, 0.1], [0.2, 0.4, 0.3]]), 0.5).astype(int).tolist()
        [[1, 1, 0], [0, 1, 0]]
    """
    chosen = np.asarray(probabilities) >= threshold
    chosen[np.arange(len(chosen)), np.argmax(probabilities, axis=1)] = True
    return chosen


def predicted_ids(probabilities: np.ndarray, threshold: float | None) -> list[int]:
    """The predicted label indices of one text, most probable first.

    Args:
        probabilities: The text's label probabilities.
        threshold: A multi-label model's decision threshold (:func:`decide`); ``None`` for a single-label
            model, which predicts its most probable label.

    Returns:
        One index (single-label), or one or more (multi-label).
    """
    order = [int(i) for i in np.argsort(-np.asarray(probabilities), kind="stable")]
    if threshold is None:
        return order[:1]
    return [order[0], *(i for i in order[1:] if probabilities[i] >= threshold)]


def single_label_metrics(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over ``labels`` (a label never true nor predicted scores 0).

    Args:
        truth: True label of each text.
        predicted: Predicted label of each text.
        labels: The data set's labels.

    Returns:
        ``{"accuracy": ..., "macro_f1": ...}``.
    """
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", labels=list(labels), zero_division=0)),
    }


def multi_label_metrics(truth: np.ndarray, chosen: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Micro- and macro-F1, exact-match accuracy and each label's precision, recall and F1.

    A ratio whose denominator is 0 (a label never predicted, or never true) counts as 0, as scikit-learn's
    ``zero_division=0`` does; macro-F1 is the mean of the labels' F1.

    Args:
        truth: True labels, a boolean array ``(n_texts, n_labels)``.
        chosen: Predicted labels (:func:`decide`), the same shape.
        labels: Name of each column.

    Returns:
        ``micro_f1``, ``macro_f1``, ``subset_accuracy`` (share of texts whose predicted set is exactly the
        true one) and ``precision_<label>``, ``recall_<label>``, ``f1_<label>`` per label, named by
        :func:`label_metric_names`.

    Example:
        >>> truth = np.array([[1, 0], [1, 1]], dtype=bool)
        >>> figures = multi_label_metrics(truth, np.array([[1, 1], [1, 0]], dtype=bool), ["a", "b"])
        >>> figures["micro_f1"], figures["macro_f1"], figures["subset_accuracy"], figures["f1_b"]
        (0.6666666666666666, 0.5, 0.0, 0.0)
    """
    truth, chosen = np.asarray(truth, dtype=bool), np.asarray(chosen, dtype=bool)
    tp = (truth & chosen).sum(axis=0)
    fp = (~truth & chosen).sum(axis=0)
    fn = (truth & ~chosen).sum(axis=0)
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    figures = {
        "micro_f1": float(_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "subset_accuracy": float((truth == chosen).all(axis=1).mean()) if len(truth) else 0.0,
    }
    for i, name in enumerate(label_metric_names(labels)):
        figures |= {
            f"precision_{name}": float(precision[i]),
            f"recall_{name}": float(recall[i]),
            f"f1_{name}": float(f1[i]),
        }
    return figures


def _ratio(numerator, denominator):
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def label_metric_names(labels: Sequence[str]) -> list[str]:
    """Each label as a piece of a metric name: characters MLflow refuses in names become ``_``.

    MLflow takes letters (Japanese too), digits, ``_ - . :`` and spaces; ``/`` would nest the name. A
    label whose name would clash with an earlier one gets its class index (``c_2``).

    Args:
        labels: The labels.

    Returns:
        One name per label, all different.

    Example:
        >>> label_metric_names(["c++", "c--", "c__", "スポーツ"])
        ['c__', 'c--', 'c___2', 'スポーツ']
    """
    names: list[str] = []
    for i, label in enumerate(labels):
        name = re.sub(r"[^\w.\- :]", "_", str(label))
        names.append(f"{name}_{i}" if name in names else name)
    return names
