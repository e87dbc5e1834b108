"""Where Integrated Gradients should start so that the completeness tolerance costs least.

Run by hand (about 2.5 minutes on a 2-core CPU)::

    python benchmarks/bench_tolerance.py [--repeats 3] [--tolerance 0.01] [--starts 4,8,16,32,50]

Trains the embedded default model (``tiny-bert-ja``, as the default job does: 16 epochs; ``--epochs``
for another count) and explains the default job's sample
(18 evaluation sentences, all nine labels, ``lig``) once per side and repeat, interleaved: at a fixed
``n_steps=50`` (``tolerance=None``), and with the tolerance starting at each of ``--starts`` steps
(the paths of the pairs above it cut into pieces where the error is, up to ``--max-steps`` points).
Per side it prints the median time (min-max) and its ratio to the fixed 50 steps, the work (the
points of the sentence-label pairs' final pieces, summed), the largest ``|delta|``, and how far the raw scores (in
probability units, as the tolerance) are from a ``--reference-steps`` integration: the largest error
and the pairs off by more than the tolerance. A met tolerance bounds the sum of a pair's scores, not
each score, so the last column is what decides the start: the default is the cheapest start with none.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mlflow_explain import ExplainConfig
from mlflow_explain.attribution.gradients import integrated_gradients
from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import build_embedded_model, encode_texts, max_input_length, train
from mlflow_explain.sampling import sample_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--max-steps", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch threads while explaining (1)")
    parser.add_argument("--reference-steps", type=int, default=1024, help="steps of the reference scores (1024)")
    parser.add_argument("--starts", default="4,8,16,32,50", help="comma-separated starting n_steps")
    parser.add_argument("--epochs", type=float, default=None, help="training epochs (default: the default job's)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    dataset = load_dataset(DataConfig())
    with tempfile.TemporaryDirectory() as tmp:
        training = TrainConfig(epochs=args.epochs).for_data(len(dataset.train))
        print(f"# the embedded model, {training.epochs:g} epochs", flush=True)
        model, tokenizer = build_embedded_model(dataset, training, Path(tmp))
        train(model, tokenizer, dataset, training, Path(tmp) / "trainer", report_to="none")
    model.eval()
    torch.set_num_threads(args.threads)
    config = ExplainConfig(tolerance=args.tolerance, max_steps=args.max_steps)
    sides = {"fixed 50 steps": replace(config, n_steps=50, tolerance=None)}
    for start in (int(n) for n in args.starts.split(",")):
        sides[f"tol {args.tolerance:g} from {start}"] = replace(config, n_steps=start)
    sample = sample_examples(dataset.eval, config.n_explain, config.sample_seed)
    errors = _score_errors(model, tokenizer, sample, sides, args.reference_steps)
    explain_examples(model, tokenizer, sample[:2], config, progress=False)  # warm up
    seconds = {name: [] for name in sides}
    last = {}
    for _ in range(args.repeats):
        for name, settings in sides.items():
            started = time.perf_counter()
            last[name] = explain_examples(model, tokenizer, sample, settings, progress=False)
            seconds[name].append(time.perf_counter() - started)
    fixed = statistics.median(seconds["fixed 50 steps"])
    for name, explanations in last.items():
        pairs = [a for e in explanations for a in e.attributions]
        steps = Counter(a.n_steps for a in pairs)
        times, (largest, off) = seconds[name], errors[name]
        print(
            f"{name:20} median {statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f}), "
            f"x{statistics.median(times) / fixed:.2f} of fixed 50; work {sum(n * c for n, c in steps.items())} "
            f"pair-steps; max |delta| {max(abs(a.convergence_delta) for a in pairs):.2e}; "
            f"max |score error| {largest:.1e}, pairs off by > {args.tolerance:g}: {off} of {len(pairs)}; "
            f"steps used: {dict(sorted(steps.items()))}"
        )


def _score_errors(model, tokenizer, sample, sides, reference_steps: int) -> dict[str, tuple[float, int]]:
    """Per side, the largest raw-score error against a ``reference_steps`` integration, and the pairs off by more
    than the tolerance (0.01 for the fixed side)."""
    encoded = encode_texts(tokenizer, [e.text for e in sample], max_input_length(model, tokenizer))
    targets = [list(range(int(model.config.num_labels)))] * len(encoded)
    reference = integrated_gradients(model, tokenizer, encoded, targets, n_steps=reference_steps)
    errors = {}
    for name, settings in sides.items():
        raw = integrated_gradients(
            model,
            tokenizer,
            encoded,
            targets,
            n_steps=settings.n_steps,
            tolerance=settings.tolerance,
            max_steps=settings.max_steps,
        )
        error = np.concatenate([np.abs(a.scores - b.scores).max(axis=1) for a, b in zip(raw, reference, strict=True)])
        errors[name] = (float(error.max()), int((error > (settings.tolerance or 0.01)).sum()))
    return errors


if __name__ == "__main__":
    main()
