"""The two jobs behind the CLI and MLproject entry points: ``main`` and ``explain``.

Each job runs inside one MLflow run (the one ``mlflow run`` started, or a new one): it logs the
parameters first, then does the work, so a failure leaves a run marked FAILED with what was
known at that point.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow_explain import artifacts, tracking
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.data import TextDataset, load_dataset
from mlflow_explain.errors import TrackingError
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import (
    align_labels,
    build_embedded_model,
    evaluate,
    load_pretrained,
    max_input_length,
    train,
)
from mlflow_explain.sampling import sample_examples, sample_hash

__all__ = ["JobResult", "run_explain", "run_main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    """What a job logged.

    Args:
        run_id: The MLflow run.
        metrics: Headline metrics (evaluation and explanation figures).
        model_uri: URI of the logged classifier, when the job logged one.
    """

    run_id: str
    metrics: dict[str, float]
    model_uri: str | None = None


def run_main(data: DataConfig, training: TrainConfig, explaining: ExplainConfig) -> JobResult:
    """Train (or fine-tune) the classifier, log it, then explain a fixed sample and log that.

    Args:
        data: Which data set to use.
        training: Which model and how to train it.
        explaining: How to explain.

    Returns:
        The run ID, metrics and logged model URI.

    Raises:
        MlflowExplainError: On bad data, models, settings or an unreachable tracking store.
    """
    import mlflow

    dataset = load_dataset(data)
    with _start_run() as run, tempfile.TemporaryDirectory(prefix="mlflow-explain-train-") as workdir:
        _log_params(data, explaining, dataset)
        _log_new_params(
            {
                "model": training.model,
                "epochs": training.resolved_epochs,
                "learning_rate": training.resolved_learning_rate,
                "batch_size": training.batch_size,
                "max_length": training.max_length,
                "train_seed": training.seed,
            }
        )
        if training.is_embedded:
            model, tokenizer = build_embedded_model(dataset, training, workdir)
        else:
            model, tokenizer = load_pretrained(training.model, dataset.labels)
        result = train(model, tokenizer, dataset, training, Path(workdir) / "trainer")
        tracking.log_training_history(result.history)
        metrics = {f"eval_{k}": v for k, v in result.metrics.items()}
        metrics["train_seconds"] = result.train_seconds
        mlflow.log_metrics(metrics)
        logger.info("evaluation: accuracy %.3f, macro-F1 %.3f", metrics["eval_accuracy"], metrics["eval_macro_f1"])
        model_uri = tracking.log_model(model, tokenizer)
        metrics |= _explain_and_log(model, tokenizer, dataset, explaining, training.max_length, run)
        return JobResult(run_id=run.info.run_id, metrics=metrics, model_uri=model_uri)


def run_explain(model: str, data: DataConfig, explaining: ExplainConfig, max_length: int | None = None) -> JobResult:
    """Load a trained classifier and explain a fixed sample of its evaluation data.

    Args:
        model: An MLflow model URI (``runs:/<id>/model``, ``models:/<name>/<version>``), a local
            model folder or a Hub id.
        data: The data whose evaluation split is sampled.
        explaining: How to explain.
        max_length: Longest input in tokens; defaults to the model's maximum.

    Returns:
        The run ID and metrics.

    Raises:
        MlflowExplainError: On bad data, a model that does not fit the data, or tracking errors.
    """
    import mlflow

    dataset = load_dataset(data)
    with _start_run() as run:
        _log_params(data, explaining, dataset)
        _log_new_params({"model": model})
        if tracking.is_mlflow_uri(model):
            classifier, tokenizer = tracking.load_logged_model(model)
        else:
            classifier, tokenizer = load_pretrained(model)
        align_labels(classifier, dataset.labels)
        metrics = {
            f"eval_{k}": v
            for k, v in evaluate(
                classifier, tokenizer, dataset, max_input_length(classifier, tokenizer, max_length)
            ).items()
        }
        mlflow.log_metrics(metrics)
        metrics |= _explain_and_log(classifier, tokenizer, dataset, explaining, max_length, run)
        return JobResult(run_id=run.info.run_id, metrics=metrics)


def _explain_and_log(model, tokenizer, dataset: TextDataset, explaining: ExplainConfig, max_length, run) -> dict:
    import mlflow

    sample = sample_examples(dataset.eval, explaining.n_explain, explaining.seed)
    if len(sample) < explaining.n_explain:
        logger.warning(
            "n_explain=%d but the evaluation split has %d sentences; explaining all of them.",
            explaining.n_explain,
            len(sample),
        )
    mlflow.set_tags({artifacts.SAMPLE_HASH_TAG: sample_hash(sample), artifacts.METHOD_TAG: explaining.method})
    started = time.perf_counter()
    explanations = explain_examples(model, tokenizer, sample, explaining, max_length=max_length)
    seconds = time.perf_counter() - started
    subtitle = (
        f"run {run.info.run_name} ({run.info.run_id[:8]}) · method {explaining.method} · "
        f"n_steps {explaining.n_steps} · target {explaining.target} · {len(sample)} sentences"
    )
    return tracking.log_explanations(
        explanations,
        subtitle=subtitle,
        top_k=explaining.top_k,
        extra_metrics={
            "explain_seconds": seconds,
            "explain_seconds_per_sentence": seconds / max(len(sample), 1),
            "n_explained": float(len(sample)),
        },
    )


def _start_run():
    import mlflow

    try:
        return mlflow.start_run()
    except Exception as err:  # connection errors surface as MlflowException or requests errors
        raise TrackingError(
            f"cannot start an MLflow run at {mlflow.get_tracking_uri()} ({type(err).__name__}: {err}). "
            "Check MLFLOW_TRACKING_URI and that the tracking server is up."
        ) from err


def _log_params(data: DataConfig, explaining: ExplainConfig, dataset: TextDataset) -> None:
    _log_new_params(
        {
            "data": data.data,
            "text_column": data.text_column,
            "label_column": data.label_column,
            "eval_data": data.eval_data or "",
            "text_field": data.text_field,
            "data_seed": data.seed,
            "n_train": len(dataset.train),
            "n_eval": len(dataset.eval),
            "labels": ",".join(dataset.labels),
            "n_explain": explaining.n_explain,
            "n_steps": explaining.n_steps,
            "method": explaining.method,
            "target": explaining.target,
            "internal_batch_size": explaining.internal_batch_size or "",
            "seed": explaining.seed,
        }
    )


def _log_new_params(params: dict) -> None:
    """Log params not yet in the run (``mlflow run`` logs its entry point's parameters itself).

    A parameter that the run already holds with another value (``epochs=auto``) is logged
    again as ``<name>_resolved`` with the value actually used.
    """
    import mlflow

    run = mlflow.active_run()
    existing = mlflow.MlflowClient().get_run(run.info.run_id).data.params
    new = {}
    for key, value in params.items():
        if key not in existing:
            new[key] = value
        elif existing[key] != str(value) and not _same_number(existing[key], value):
            new[f"{key}_resolved"] = value  # e.g. epochs "auto" given, 30.0 used
    if new:
        mlflow.log_params(new)


def _same_number(text: str, value) -> bool:
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return False
