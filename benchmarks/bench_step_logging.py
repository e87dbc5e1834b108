"""What the Trainer callback's logging costs per evaluation, and how fast the MLflow UI opens the tables.

Run by hand (about 3 minutes on a 2-core CPU)::

    python benchmarks/bench_step_logging.py            # 30 epochs, a real `mlflow server` on 127.0.0.1
    python benchmarks/bench_step_logging.py --no-ui    # without the browser part

1. The main job (``run_main``: embedded data and model, 30 epochs, default explanation settings) with
   ``explain_every=1`` against a real tracking server: the callback logs each evaluation's files, metrics
   and 18 token strips, and records what that took as the metric ``probe_log_seconds``. The script prints
   it for the 1st, 10th and 30th evaluation and the ratio of the 30th to the 1st (goal: within 20 %).
2. With Chromium (``/usr/bin/chromium``, driven by Playwright): the seconds from opening the runs page's
   artifact-evaluation view on the run's per-sentence table (``explanations/sentences.json``, images
   included) and on the 30-evaluation history (``explanations/training/sentences.json``) until the first
   row shows, median of ``--repeats``.

The server's store lives in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mlflow_server import start_mlflow_server

from mlflow_explain import artifacts
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig


def log_seconds(run_id: str) -> list[tuple[int, float]]:
    """``(step, seconds)`` of every logged evaluation, in step order."""
    import mlflow

    history = mlflow.MlflowClient().get_metric_history(run_id, "probe_log_seconds")
    return sorted((int(m.step), float(m.value)) for m in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="page loads per table (median)")
    parser.add_argument("--no-ui", action="store_true", help="skip the browser part")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")

    import mlflow

    from mlflow_explain.jobs import run_main

    with tempfile.TemporaryDirectory() as tmp, start_mlflow_server(Path(tmp)) as server:
        mlflow.set_tracking_uri(server.url)
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        experiment_id = mlflow.MlflowClient().create_experiment("bench-step-logging")
        mlflow.set_experiment(experiment_id=experiment_id)
        started = time.perf_counter()
        result = run_main(DataConfig(), TrainConfig(epochs=args.epochs, explain_every=1), ExplainConfig())
        print(f"main job with explain_every=1, {args.epochs:g} epochs: {time.perf_counter() - started:.1f} s")

        steps = log_seconds(result.run_id)
        evaluations = steps[1:]  # steps[0] is the baseline before training
        print(f"baseline (step 0) logging: {steps[0][1]:.3f} s")
        for number in (1, 10, 30):
            if number <= len(evaluations):
                step, seconds = evaluations[number - 1]
                print(f"evaluation {number:2d} (step {step:4d}) logging: {seconds:.3f} s")
        if len(evaluations) >= 30:
            first, thirtieth = evaluations[0][1], evaluations[29][1]
            print(f"30th / 1st: {thirtieth / first:.2f} (goal <= 1.20)")
        values = [s for _, s in evaluations]
        print(
            f"all evaluations: median {statistics.median(values):.3f} s, min {min(values):.3f}, max {max(values):.3f}"
        )

        if not args.no_ui:
            from ui_timing import time_artifact_view  # benchmarks/ui_timing.py

            for table in (
                f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}",
                f"{artifacts.TRAINING_DIR}/{artifacts.SENTENCES_FILE}",
            ):
                seconds = time_artifact_view(server.url, experiment_id, [result.run_id], table, repeats=args.repeats)
                print(f"UI artifact-evaluation view, {table}: " + ", ".join(f"{s:.1f}" for s in seconds) + " s")


if __name__ == "__main__":
    main()
