"""What the completeness tolerance costs: refined Integrated Gradients against a fixed 50 steps.

Run by hand (about 1.5 minutes on a 2-core CPU)::

    python benchmarks/bench_tolerance.py [--repeats 3] [--tolerance 0.01] [--max-steps 512]

Trains the embedded default model (``tiny-bert-ja``, 30 epochs) and explains the default job's sample
(18 evaluation sentences, all nine labels, ``lig``) twice per repeat, interleaved: at a fixed
``n_steps=50`` (``tolerance=None``) and starting at 50 with the tolerance (pairs above it integrated
again with doubled steps, up to ``--max-steps``). Prints each side's median time, their ratio (goal:
at most 2x), how many sentence-label pairs were refined and to how many steps, and the largest
``|delta|`` of each side (goal with the tolerance: at most 0.01).
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

from mlflow_explain import ExplainConfig
from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import build_embedded_model, train
from mlflow_explain.sampling import sample_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--max-steps", type=int, default=512)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    dataset = load_dataset(DataConfig())
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = build_embedded_model(dataset, TrainConfig(), Path(tmp))
        train(model, tokenizer, dataset, TrainConfig(), Path(tmp) / "trainer", report_to="none")
    model.eval()
    config = ExplainConfig(tolerance=args.tolerance, max_steps=args.max_steps)
    sides = {"fixed 50 steps": replace(config, tolerance=None), f"tolerance {args.tolerance:g}": config}
    sample = sample_examples(dataset.eval, config.n_explain, config.sample_seed)
    explain_examples(model, tokenizer, sample[:2], config, progress=False)  # warm up
    seconds = {name: [] for name in sides}
    last = {}
    for _ in range(args.repeats):
        for name, settings in sides.items():
            started = time.perf_counter()
            last[name] = explain_examples(model, tokenizer, sample, settings, progress=False)
            seconds[name].append(time.perf_counter() - started)
    for name, explanations in last.items():
        pairs = [a for e in explanations for a in e.attributions]
        worst = max(abs(a.convergence_delta) for a in pairs)
        steps = Counter(a.n_steps for a in pairs)
        above = sum(abs(a.convergence_delta) > args.tolerance for a in pairs)
        times = seconds[name]
        print(
            f"{name:16} median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
            f"max |delta| {worst:.2e}; pairs above {args.tolerance:g}: {above} of {len(pairs)}; "
            f"steps used: {dict(sorted(steps.items()))}"
        )
    fixed, tolerant = (statistics.median(v) for v in seconds.values())
    print(f"ratio tolerance / fixed: {tolerant / fixed:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
