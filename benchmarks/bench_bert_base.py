"""The engine against transformers-interpret on a BERT-base-shaped model, in one run.

Run by hand (about 6 minutes on a 2-core Intel Xeon with the defaults, 13 on an AMD EPYC)::

    python benchmarks/bench_bert_base.py
    python benchmarks/bench_bert_base.py --sentences 3 --repeats 3 --threads 1
    python benchmarks/bench_bert_base.py --head-scale 40     # confident predictions (saturated softmax)

The model is ``BertForSequenceClassification`` built from a config with BERT-base's shape (12
layers, hidden size 768, 12 heads, feed-forward 3072, a 32,000-token vocabulary, 9 labels), with
random weights (``--head-scale`` multiplies the classifier's weights, so that its probabilities
saturate as a trained model's do). The sentences are the first ``--sentences`` of the embedded
evaluation sample, tokenized by the embedded default's tokenizer (their token ids lie inside the
vocabulary). The sides, timed round-robin so that every side sees the same load, ``--repeats``
times each:

- ``TI``: transformers-interpret's ``SequenceClassificationExplainer`` (through the ``interpret-lig``
  backend, which calls it once per label with Gauss-Legendre at ``--n-steps``), at its defaults;
- ``lig @ n``: the engine at the same ``n_steps``, no tolerance (equal steps);
- ``lig @ tol``: the engine with its defaults (``n_steps`` of :class:`~mlflow_explain.ExplainConfig`,
  the paths of the pairs above the completeness tolerance ``--tolerance`` cut into pieces where the error is).

each towards all nine labels and towards the predicted label. It prints, per side, the median and
the min–max of the seconds per sentence, the largest completeness error ``|delta|`` and how many
sentence-label pairs met the tolerance, then the speed ratios against TI (median of the per-repeat
ratios, min–max); goals: >= 3x at equal steps, >= 5x at the tolerance, all nine labels.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers

from mlflow_explain.attribution import RawAttribution, get_attribution_method
from mlflow_explain.attribution._engine import SentenceInputs, probabilities
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.explainer import CHUNK
from mlflow_explain.modeling import encode_texts
from mlflow_explain.sampling import sample_examples
from mlflow_explain.tokenization import build_japanese_tokenizer

BERT_BASE = {
    "vocab_size": 32000,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_labels": 9,
}
"""BERT-base's shape with the article's nine labels (``cl-tohoku/bert-base-japanese`` has this shape)."""

GOALS = {"equal steps": 3.0, "tolerance": 5.0}


@dataclass(eq=False)
class Side:
    """One way of explaining, with its timed runs."""

    name: str
    method: str
    config: ExplainConfig
    predicted_only: bool
    seconds: list[float] = field(default_factory=list)
    results: list[RawAttribution] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(args.threads)
    model, tokenizer, encoded = _setup(args)
    predicted = _predicted(model, tokenizer, encoded)
    sides = _sides(args)
    print(
        f"# BERT-base shape ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, random weights, "
        f"head scale {args.head_scale:g}), {len(encoded)} sentences of {min(len(e.input_ids) for e in encoded)}-"
        f"{max(len(e.input_ids) for e in encoded)} tokens, {torch.get_num_threads()} torch threads, "
        f"{args.repeats} repeats; median predicted probability {np.median(predicted[1]):.2f}"
    )
    for side in sides:  # warm up (first-call costs) on one sentence
        _attribute(side, model, tokenizer, encoded[:1], predicted[0][:1])
    for _ in range(args.repeats):
        for side in sides:
            started = time.perf_counter()
            side.results = _attribute(side, model, tokenizer, encoded, predicted[0])
            side.seconds.append((time.perf_counter() - started) / len(encoded))
            print(f"#   {side.name}: {side.seconds[-1]:.2f} s/sentence", flush=True)
    _report(sides, args)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=3, help="sentences of the embedded evaluation sample (3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of every side (3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    parser.add_argument(
        "--n-steps", type=int, default=50, help="transformers-interpret's steps, and lig's at equal steps"
    )
    parser.add_argument("--tolerance", type=float, default=ExplainConfig().tolerance, help="completeness tolerance")
    parser.add_argument("--head-scale", type=float, default=1.0, help="multiply the classifier's weights (1)")
    parser.add_argument("--skip-ti", action="store_true", help="time the engine only (no ratios)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _setup(args: argparse.Namespace):
    dataset = load_dataset(DataConfig())
    examples = sample_examples(dataset.eval, ExplainConfig().n_explain, ExplainConfig().sample_seed)[: args.sentences]
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = build_japanese_tokenizer([e.text for e in dataset.train], Path(folder))
    transformers.set_seed(args.seed)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**BERT_BASE)).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(args.head_scale)
    encoded = encode_texts(tokenizer, [e.text for e in examples], TrainConfig().max_length)
    return model, tokenizer, encoded


def _predicted(model, tokenizer, encoded) -> tuple[list[int], list[float]]:
    inputs = SentenceInputs(model, tokenizer, encoded)
    probs = probabilities(model, [inputs.input_row(i) for i in range(len(inputs))], inputs.pad_id, "softmax", None)
    return probs.argmax(dim=1).tolist(), probs.max(dim=1).values.tolist()


def _sides(args: argparse.Namespace) -> list[Side]:
    fixed = ExplainConfig(n_steps=args.n_steps, tolerance=None)
    default = ExplainConfig(tolerance=args.tolerance)
    sides = []
    for predicted_only in (False, True):
        labels = "predicted" if predicted_only else "all labels"
        if not args.skip_ti:
            sides.append(Side(f"TI @ {args.n_steps}, {labels}", "interpret-lig", fixed, predicted_only))
        sides.append(Side(f"lig @ {args.n_steps}, {labels}", "lig", fixed, predicted_only))
        sides.append(Side(f"lig @ tol {args.tolerance:g}, {labels}", "lig", default, predicted_only))
    return sides


def _attribute(side: Side, model, tokenizer, encoded, predicted: Sequence[int]) -> list[RawAttribution]:
    backend = get_attribution_method(side.method)
    n_labels = int(model.config.num_labels)
    targets = [[p] for p in predicted] if side.predicted_only else [list(range(n_labels))] * len(encoded)
    results = []
    for start in range(0, len(encoded), CHUNK):  # as the explainer calls it
        chunk = slice(start, start + CHUNK)
        results += backend.attribute(model, tokenizer, encoded[chunk], targets[chunk], side.config)
    return results


def _report(sides: Sequence[Side], args: argparse.Namespace) -> None:
    print(f"\n{'side':<32}{'s/sentence':>11}{'min-max':>16}{'max |delta|':>13}{'pairs <= tol':>14}{'steps used':>14}")
    for side in sides:
        deltas = np.abs(np.concatenate([r.deltas for r in side.results if r.deltas is not None] or [[np.nan]]))
        steps = [r.steps for r in side.results if r.steps is not None]
        met = f"{int((deltas <= args.tolerance).sum())}/{len(deltas)}" if side.method == "lig" else "-"
        worst = f"{np.nanmax(deltas):.1e}" if np.isfinite(deltas).any() else "-"
        used = f"{np.concatenate(steps).min()}-{np.concatenate(steps).max()}" if steps else f"{side.config.n_steps}"
        print(
            f"{side.name:<32}{statistics.median(side.seconds):>11.2f}"
            f"{f'{min(side.seconds):.2f}-{max(side.seconds):.2f}':>16}{worst:>13}{met:>14}{used:>14}"
        )
    print()
    by_name = {side.name: side for side in sides}
    for labels in ("all labels", "predicted"):
        reference = by_name.get(f"TI @ {args.n_steps}, {labels}")
        if reference is None:
            continue
        for what, name in (
            ("equal steps", f"lig @ {args.n_steps}, {labels}"),
            ("tolerance", f"lig @ tol {args.tolerance:g}, {labels}"),
        ):
            ratios = [ti / ours for ti, ours in zip(reference.seconds, by_name[name].seconds, strict=True)]
            goal = GOALS[what] if labels == "all labels" else None
            verdict = (
                ""
                if goal is None
                else f" (goal >= {goal:g}x: {'met' if statistics.median(ratios) >= goal else 'NOT met'})"
            )
            print(
                f"speed vs TI, {labels}, {what}: {statistics.median(ratios):.1f}x "
                f"(repeats {min(ratios):.1f}-{max(ratios):.1f}x){verdict}"
            )


if __name__ == "__main__":
    main()
