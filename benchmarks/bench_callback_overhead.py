"""What the Trainer callback adds to training, with its default settings, on two model shapes.

Run by hand::

    python benchmarks/bench_callback_overhead.py                      # embedded model, 3 repeats (~5 min)
    python benchmarks/bench_callback_overhead.py --model bert-base --repeats 1 --epochs 1   # ~6 min

Trains the same model from the same seed with and without :class:`~mlflow_explain.ExplainCallback`
(default settings: ``TRAINING_CONFIG``, ``every=1``, ``images_every=1``; 18 probe sentences from the
embedded evaluation sample, the predicted and the true label), the two sides alternating in every repeat, into a
temporary sqlite store. ``--model embedded`` is the default job's ``tiny-bert-ja`` (30 epochs);
``--model bert-base`` is a ``BertForSequenceClassification`` of BERT-base's shape built from a config
(12 layers, hidden size 768, 32,000-token vocabulary, random weights) on the embedded data repeated
``--repeat-data`` times, so that an epoch takes a minute or more on a 2-core CPU. It prints each side's
training time (median, min-max), the time added (median of the per-repeat ratios, min-max), the epoch
time, and the callback's own figures: the explaining time per evaluation (on the training thread) and
the logging time per step (``probe_log_seconds``, on the background thread).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import transformers
from bench_bert_base import BERT_BASE as BERT_BASE_SHAPE  # run from this folder: python benchmarks/...
from mlflow import MlflowClient

from mlflow_explain import ExplainCallback
from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.modeling import build_embedded_model, train

BERT_BASE = {k: v for k, v in BERT_BASE_SHAPE.items() if k != "num_labels"}  # the data's labels decide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("embedded", "bert-base"), default="embedded")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=None, help="default: 30 (embedded), 1 (bert-base)")
    parser.add_argument("--repeat-data", type=int, default=2, help="copies of the training data for bert-base (2)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    dataset = load_dataset(DataConfig())
    if args.model == "bert-base":
        dataset = replace(dataset, train=dataset.train * args.repeat_data)
    epochs = args.epochs or (30.0 if args.model == "embedded" else 1.0)
    training = TrainConfig(epochs=epochs, learning_rate=1e-3 if args.model == "embedded" else 3e-5)
    seconds: dict[str, list[float]] = {"without": [], "with callback": []}
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", (tmp / "artifacts").as_uri()))
        for repeat in range(args.repeats):
            for side in seconds:
                workdir = tmp / f"{side}-{repeat}"
                took, run_id = _train(args.model, dataset, training, workdir, side != "without")
                seconds[side].append(took)
                print(f"# repeat {repeat + 1}, {side}: {took:.1f} s", flush=True)
                if run_id is not None:
                    figures.append(_callback_figures(run_id))
    _report(args, training, seconds, figures)


def _train(shape: str, dataset, training: TrainConfig, workdir: Path, with_callback: bool) -> tuple[float, str | None]:
    model, tokenizer = build_embedded_model(dataset, training, workdir)
    if shape == "bert-base":
        transformers.set_seed(training.seed)
        model = transformers.BertForSequenceClassification(
            transformers.BertConfig(**(model.config.to_dict() | BERT_BASE))
        )
    callbacks = [ExplainCallback(tokenizer, dataset)] if with_callback else []
    started = time.perf_counter()
    with mlflow.start_run() as run:
        train(model, tokenizer, dataset, training, workdir / "trainer", callbacks=callbacks)
    return time.perf_counter() - started, run.info.run_id if with_callback else None


def _callback_figures(run_id: str) -> tuple[float, float, int]:
    client = MlflowClient()
    explain = [m.value for m in client.get_metric_history(run_id, "probe_explain_seconds")]
    logging_ = [m.value for m in client.get_metric_history(run_id, "probe_log_seconds")]
    return statistics.median(explain), statistics.median(logging_), len(explain)


def _report(args, training: TrainConfig, seconds: dict[str, list[float]], figures) -> None:
    plain, with_callback = seconds["without"], seconds["with callback"]
    added = [b / a - 1 for a, b in zip(plain, with_callback, strict=True)]
    print(f"\n## {args.model}, {training.epochs:g} epochs, {args.repeats} repeats, ExplainCallback defaults")
    for side, times in seconds.items():
        print(f"{side:16} median {statistics.median(times):7.1f} s ({min(times):.1f}-{max(times):.1f})")
    print(
        f"time added: median {statistics.median(added):+.0%} (repeats {min(added):+.0%} to {max(added):+.0%}); "
        f"one epoch without the callback: {statistics.median(plain) / training.epochs:.1f} s"
    )
    explain, logging_, count = (statistics.median(f[i] for f in figures) for i in range(3))
    print(
        f"per explained step ({count:.0f} per training): explaining {explain:.2f} s on the training thread, "
        f"logging {logging_:.2f} s in the background"
    )


if __name__ == "__main__":
    main()
