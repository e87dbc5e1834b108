"""Benchmark the explainer model in-process against ``mlflow.pyfunc.spark_udf`` on a local Spark session.

Run by hand (a few minutes on a 2-core CPU; needs the ``spark`` extra and Java 17)::

    python benchmarks/bench_spark.py
    python benchmarks/bench_spark.py --rows 4000 --n-steps 20 --master "local[2]"

Both sides explain the same CSV file (the embedded headlines, repeated with a numbered suffix up
to ``--rows`` distinct sentences) with the same explainer model (``tiny-bert-ja`` built on the
embedded data; attribution cost does not depend on training, so it is left untrained), method
``lig``, the predicted label:

- **in-process**: ``mlflow.pyfunc.load_model(uri).predict(frame)`` on the whole file in one call,
  with torch on one thread and on as many threads as Spark has cores;
- **Spark**: :func:`mlflow_explain.spark.explain_file` (CSV in, ``spark_udf``, Parquet out); PySpark
  runs each Python worker with ``OMP_NUM_THREADS`` set to ``spark.task.cpus`` (1).

The thread count matters on a small CPU: torch's intra-op threads spin, and on a 2-core machine
that runs anything else they slow each other down many times over. The load average at the start
is printed with the figures.

Spark's fixed cost is measured in two parts: starting the session, and a first job over a few
rows (each Python worker imports torch, transformers and MLflow and loads the model once). The
throughput figure is a second, full job on warm workers; "cold" adds the fixed cost to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import pandas as pd


def build_file(folder: Path, rows: int) -> Path:
    """The embedded headlines, numbered so that every row is distinct, written as CSV."""
    from mlflow_explain.config import DataConfig
    from mlflow_explain.data import load_dataset

    dataset = load_dataset(DataConfig())
    examples = [*dataset.train, *dataset.eval]
    texts = [f"{examples[i % len(examples)].text} その{i // len(examples) + 1}" for i in range(rows)]
    labels = [examples[i % len(examples)].label for i in range(rows)]
    path = folder / "headlines.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path


def log_explainer(folder: Path, n_steps: int) -> str:
    """Log the explainer of an untrained ``tiny-bert-ja`` to a sqlite store in ``folder``; return its URI."""
    import mlflow

    from mlflow_explain.config import DataConfig, TrainConfig
    from mlflow_explain.data import load_dataset
    from mlflow_explain.modeling import build_embedded_model
    from mlflow_explain.tracking import EXPLAINER_ARTIFACT, log_explainer_model

    model, tokenizer = build_embedded_model(load_dataset(DataConfig()), TrainConfig(), folder / "work")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    mlflow.set_experiment(
        experiment_id=client.create_experiment("bench-spark", artifact_location=(folder / "artifacts").as_uri())
    )
    with mlflow.start_run() as run:
        log_explainer_model(model, tokenizer, n_steps=n_steps)
    return f"runs:/{run.info.run_id}/{EXPLAINER_ARTIFACT}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="Sentences in the file. Defaults to 2000.")
    parser.add_argument("--n-steps", type=int, default=50, help="Integrated Gradients steps. Defaults to 50.")
    parser.add_argument("--master", default="local[2]", help="Spark master. Defaults to local[2].")
    parser.add_argument("--warmup-rows", type=int, default=16, help="Rows of the first Spark job. Defaults to 16.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import mlflow
    import torch

    from mlflow_explain.spark import FileJob, explain_file, spark_session

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        folder = Path(tmp)
        source = build_file(folder, args.rows)
        warmup = folder / "warmup.csv"
        pd.read_csv(source).head(args.warmup_rows).to_csv(warmup, index=False)
        uri = log_explainer(folder, args.n_steps)

        frame = pd.read_csv(source)
        explainer = mlflow.pyfunc.load_model(uri)
        explainer.predict(frame.head(4))  # first-call costs (thread pools, caches) out of the timing
        load = os.getloadavg()[0]
        in_process = {}
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            explainer.predict(frame)
            in_process[threads] = time.perf_counter() - started
        torch.set_num_threads(os.cpu_count() or 1)

        started = time.perf_counter()
        conf = {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
        spark = spark_session(args.master, conf)
        spark.sparkContext.setLogLevel("ERROR")
        start_seconds = time.perf_counter() - started
        try:
            started = time.perf_counter()
            explain_file(spark, FileJob(str(warmup), str(folder / "warmup.parquet"), uri))
            first_job = time.perf_counter() - started
            summary = explain_file(spark, FileJob(str(source), str(folder / "explained.parquet"), uri))
            cores = spark.sparkContext.defaultParallelism
        finally:
            spark.stop()

    spark_rate = summary.n_explained / summary.explain_seconds
    fixed = start_seconds + first_job
    cold = fixed + summary.explain_seconds
    print(f"{args.rows} sentences, lig, n_steps={args.n_steps}, target=predicted, {args.master} ({cores} cores)")
    print(f"load average at the start: {load:.2f}")
    print(f"{'':<38}{'seconds':>9}{'sentences/s':>13}")
    for threads, seconds in in_process.items():
        print(f"{f'in-process, {threads} torch thread(s)':<38}{seconds:>9.1f}{args.rows / seconds:>13.1f}")
    print(f"{'Spark, warm workers (explain_file)':<38}{summary.explain_seconds:>9.1f}{spark_rate:>13.1f}")
    print(f"{'Spark, cold (fixed cost + warm run)':<38}{cold:>9.1f}{summary.n_explained / cold:>13.1f}")
    print(f"Spark fixed cost {fixed:.1f} s: session start {start_seconds:.1f} s, first job ({args.warmup_rows} rows)")
    print(f"{first_job:.1f} s (workers import torch and MLflow and load the model)")
    best = args.rows / min(in_process.values())
    if spark_rate > best:
        print(f"Spark (cold) pays off above about {fixed / (1 / best - 1 / spark_rate):.0f} sentences")
    else:
        print("Spark is not faster than the best in-process run on this machine")


if __name__ == "__main__":
    main()
