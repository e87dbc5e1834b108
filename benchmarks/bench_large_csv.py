"""The main job's data path on a 50 MB CSV: loading, the vocabulary, and the full evaluation pass.

Run by hand (about 2 minutes on a 2-core CPU)::

    python benchmarks/bench_large_csv.py [--megabytes 50] [--threads 1]

Writes a CSV of about ``--megabytes`` MB (the embedded headlines, each made unique with a suffix,
nine labels; about 526,000 rows at 50 MB), then times, in one process:

1. ``load_dataset`` (read, clean, stratified split; goal: under 30 s);
2. ``build_embedded_model`` (the vocabulary is learned from a sample of ``VOCAB_TEXTS`` training texts);
3. ``evaluate`` of the untrained embedded model on the whole evaluation split (batched by length, with
   a progress bar).

Prints each time, the rows per second of the evaluation and the peak resident memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import tempfile
import time
from importlib import resources
from pathlib import Path


def write_csv(path: Path, megabytes: float) -> int:
    """Write unique headlines with labels until the file holds ``megabytes`` MB; returns the row count."""
    text = resources.files("mlflow_explain").joinpath("resources/headlines.jsonl").read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    rng, n = random.Random(0), 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        while f.tell() < megabytes * 1e6:
            row = rng.choice(rows)
            writer.writerow([f"{row['text']} 第{n}報", row["label"]])
            n += 1
    return n


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from mlflow_explain.config import DataConfig, TrainConfig
    from mlflow_explain.data import load_dataset
    from mlflow_explain.modeling import build_embedded_model, evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        n_rows = write_csv(path, args.megabytes)
        print(f"{path.stat().st_size / 1e6:.1f} MB, {n_rows} rows")

        started = time.perf_counter()
        dataset = load_dataset(DataConfig(data=str(path)))
        print(
            f"load_dataset: {time.perf_counter() - started:.1f} s "
            f"({len(dataset.train)} train, {len(dataset.eval)} eval), peak {peak_mb():.0f} MB"
        )

        started = time.perf_counter()
        model, tokenizer = build_embedded_model(dataset, TrainConfig(), Path(tmp) / "work")
        print(f"build_embedded_model (vocabulary): {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        metrics = evaluate(model, tokenizer, dataset, 128)
        seconds = time.perf_counter() - started
        print(
            f"evaluate on all {len(dataset.eval)} evaluation texts: {seconds:.1f} s "
            f"({len(dataset.eval) / seconds:.0f} texts/s, accuracy {metrics['accuracy']:.3f} untrained), "
            f"peak {peak_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
