"""The two jobs behind the CLI and MLproject entry points: ``main`` and ``explain``.

Each job runs inside one MLflow run (the one ``mlflow run`` started, or a new one): it logs the
parameters first, then does the work, so a failure leaves a run marked FAILED with what was
known at that point.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow_explain import artifacts, distributed, tracking
from mlflow_explain.attribution import get_attribution_method
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig, config_params
from mlflow_explain.data import TextDataset, load_dataset
from mlflow_explain.errors import TrackingError
from mlflow_explain.modeling import (
    align_labels,
    build_embedded_model,
    embedded_model_card,
    evaluate,
    load_pretrained,
    max_input_length,
    train,
)
from mlflow_explain.pipeline import explain_sample
from mlflow_explain.render.files import write_explanations
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
        explainer_uri: URI of the logged explainer pyfunc model, when the job logged one.
        view_url: The MLflow UI's chart view prepared for the explanations of the run's experiment
            (:func:`~mlflow_explain.tracking.share_explanation_view`).
    """

    run_id: str
    metrics: dict[str, float]
    model_uri: str | None = None
    explainer_uri: str | None = None
    view_url: str | None = None


def run_main(data: DataConfig, training: TrainConfig, explaining: ExplainConfig) -> JobResult | None:
    """Train (or fine-tune) the classifier, then explain a fixed sample; log all of it.

    The explanations are computed before anything else is logged after training, and written to
    a local folder first, so a tracking store that fails late keeps them; the trained model is then
    saved to a local folder too (the error names both folders).

    Args:
        data: Which data set to use.
        training: Which model and how to train it.
        explaining: How to explain.

    Under a launcher (``torchrun``, ``accelerate launch``) every process trains with DDP and only the
    main one logs and explains (:mod:`mlflow_explain.distributed`).

    Returns:
        The run ID, metrics and logged model URI; ``None`` in the other processes of a launch.

    Raises:
        MlflowExplainError: On bad data, models, settings or an unreachable tracking store.
    """
    _check_settings(explaining)
    if not distributed.is_main_process():
        _train_share(data, training)
        return None
    tracking.check_tracking_store()
    dataset = load_dataset(data)
    training = training.for_data(len(dataset.train))
    with tracking.job_run() as run, tempfile.TemporaryDirectory(prefix="mlflow-explain-train-") as workdir:
        with tracking.tracking_errors():
            _log_params(dataset, data, training, explaining)
        if training.is_embedded:
            model, tokenizer = build_embedded_model(dataset, training, workdir)
        else:
            model, tokenizer = load_pretrained(training.model, dataset.labels, multi_label=dataset.multi_label)
        _log_tokenizer(tokenizer)
        callbacks = []
        if training.explain_every > 0:
            from mlflow_explain.callback import ExplainCallback

            callbacks.append(ExplainCallback(tokenizer, dataset, explaining, every=training.explain_every))
        result = train(
            model,
            tokenizer,
            dataset,
            training,
            Path(workdir) / "trainer",
            callbacks=callbacks,
            threshold=explaining.threshold,
        )
        _log_distributed(distributed.weight_checksums(model))
        try:
            return _explain_and_log_trained(model, tokenizer, result, data, training, explaining, dataset, run)
        except TrackingError as err:  # the store went away: keep what cost the most to make
            raise TrackingError(f"{err} The trained model is kept in {_keep_model(model, tokenizer)}.") from err


def _explain_and_log_trained(model, tokenizer, result, data, training, explaining, dataset, run) -> JobResult:
    """The part of ``main`` after training: explain (into a local folder first), then log everything."""
    metrics = {f"eval_{k}": v for k, v in result.metrics.items()}
    metrics["train_seconds"] = result.train_seconds
    _log_evaluation(metrics, explaining.threshold)
    explained = _explain(model, tokenizer, dataset, explaining, training.max_length, run)
    with tracking.tracking_errors(f"the explanations are kept in {explained.folder}"):
        tracking.log_training_history(result.history)
        tracking.log_metrics(metrics)
        card = embedded_model_card(dataset, training, result.metrics) if training.is_embedded else None
        model_uri = tracking.log_model(model, tokenizer, model_card=card)
        explainer_uri = _log_explainer(model, tokenizer, data, explaining, training.max_length, explained)
    metrics |= _log_explained(explained, explaining)
    view_url = tracking.share_explanation_view(run.info.experiment_id, _image_keys(explained))
    return JobResult(
        run_id=run.info.run_id, metrics=metrics, model_uri=model_uri, explainer_uri=explainer_uri, view_url=view_url
    )


def _train_share(data: DataConfig, training: TrainConfig) -> None:
    """Another process of a distributed launch than the main one: train its share of each batch, log nothing."""
    dataset = load_dataset(data)
    with tempfile.TemporaryDirectory(prefix="mlflow-explain-train-") as workdir:
        if training.is_embedded:
            model, tokenizer = build_embedded_model(dataset, training, workdir)
        else:
            model, tokenizer = load_pretrained(training.model, dataset.labels, multi_label=dataset.multi_label)
        train(model, tokenizer, dataset, training, Path(workdir) / "trainer")
        distributed.weight_checksums(model)  # the main process gathers every copy's


def _log_distributed(checksums: list[float]) -> None:
    """Under a launcher: the number of processes, and how far their trained weights differ (0: identical)."""
    if len(checksums) < 2:
        return
    spread = max(checksums) - min(checksums)
    if spread:
        logger.warning("the processes' trained weights differ (parameter sums %s)", checksums)
    with tracking.tracking_errors():
        tracking.log_new_params({"world_size": len(checksums)})
        tracking.log_metrics({"ddp_weight_spread": spread})


def _log_evaluation(metrics: dict[str, float], threshold: float) -> None:
    """Say the headline evaluation figures: accuracy and macro-F1, or (multi-label) micro/macro-F1 and exact match."""
    if "eval_micro_f1" in metrics:
        logger.info(
            "evaluation at threshold %.2f: micro-F1 %.3f, macro-F1 %.3f, exact match %.3f",
            threshold,
            metrics["eval_micro_f1"],
            metrics["eval_macro_f1"],
            metrics["eval_subset_accuracy"],
        )
    else:
        logger.info("evaluation: accuracy %.3f, macro-F1 %.3f", metrics["eval_accuracy"], metrics["eval_macro_f1"])


def _keep_model(model, tokenizer) -> Path:
    """Save the trained classifier and tokenizer to a new local folder that outlives the job."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-explain-model-"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _check_settings(explaining: ExplainConfig) -> None:
    """Refuse settings that only the registry can check (the method name) before any work starts."""
    get_attribution_method(explaining.method)


def run_explain(
    model: str,
    data: DataConfig,
    explaining: ExplainConfig,
    max_length: int | None = None,
    log_explainer: bool = False,
) -> JobResult:
    """Load a trained classifier and explain a fixed sample of its evaluation data.

    Args:
        model: An MLflow model URI (``runs:/<id>/model``, ``models:/<name>/<version>``), a local
            model folder or a Hub id.
        data: The data whose evaluation split is sampled.
        explaining: How to explain.
        max_length: Longest input in tokens; defaults to the model's maximum.
        log_explainer: Also log the explainer pyfunc model (``runs:/<run_id>/explainer``) for
            serving and Spark. Defaults to False.

    Returns:
        The run ID and metrics, and the explainer's URI when it was logged.

    Raises:
        MlflowExplainError: On bad data, a model that does not fit the data, or tracking errors.
    """
    _check_settings(explaining)
    tracking.check_tracking_store()
    dataset = load_dataset(data)
    with tracking.job_run() as run:
        with tracking.tracking_errors():
            _log_params(dataset, data, explaining, model=model, max_length=max_length or "")
        if tracking.is_mlflow_uri(model):
            classifier, tokenizer = tracking.load_logged_model(model)
        else:
            classifier, tokenizer = load_pretrained(model)
        align_labels(classifier, dataset.labels, multi_label=dataset.multi_label)
        _log_tokenizer(tokenizer)
        limit = max_input_length(classifier, tokenizer, max_length)
        figures = evaluate(classifier, tokenizer, dataset, limit, explaining.threshold)
        metrics = {f"eval_{k}": v for k, v in figures.items()}
        _log_evaluation(metrics, explaining.threshold)
        explained = _explain(classifier, tokenizer, dataset, explaining, max_length, run)
        with tracking.tracking_errors(f"the explanations are kept in {explained.folder}"):
            tracking.log_metrics(metrics)
            explainer_uri = None
            if log_explainer:
                explainer_uri = _log_explainer(classifier, tokenizer, data, explaining, max_length, explained)
        metrics |= _log_explained(explained, explaining)
        view_url = tracking.share_explanation_view(run.info.experiment_id, _image_keys(explained))
        return JobResult(run_id=run.info.run_id, metrics=metrics, explainer_uri=explainer_uri, view_url=view_url)


@dataclass(frozen=True)
class _Explained:
    sample: list
    explanations: list
    written: dict[str, Path]
    metrics: dict[str, float]
    """:attr:`~mlflow_explain.pipeline.ExplainResult.metrics`: timings, counts and quality means."""
    unknown_share: float

    @property
    def folder(self) -> Path:
        return self.written[artifacts.HTML_FILE].parent


def _explain(model, tokenizer, dataset: TextDataset, explaining: ExplainConfig, max_length, run) -> _Explained:
    """Explain the sample and render the artifacts into a local folder at once (kept until logged)."""
    sample = sample_examples(dataset.eval, explaining.n_explain, explaining.sample_seed)
    if len(sample) < explaining.n_explain:
        logger.warning(
            "n_explain=%d but the evaluation split has %d sentences; explaining all of them.",
            explaining.n_explain,
            len(sample),
        )
    result = explain_sample(model, tokenizer, sample, explaining, max_length=max_length)
    explanations, qualities = result.explanations, result.qualities
    if qualities is not None:
        logger.info(
            "quality: comprehensiveness %.3f (random %.3f), sufficiency %.3f (random %.3f)",
            result.metrics["quality_comprehensiveness"],
            result.metrics["quality_comprehensiveness_random"],
            result.metrics["quality_sufficiency"],
            result.metrics["quality_sufficiency_random"],
        )
    subtitle = (
        f"run {run.info.run_name} ({run.info.run_id[:8]}) · method {explaining.method} · "
        f"n_steps {explaining.n_steps} · target {explaining.target} · {len(sample)} sentences"
    )
    folder = Path(tempfile.mkdtemp(prefix="mlflow-explain-"))
    written = write_explanations(explanations, folder, subtitle=subtitle, top_k=explaining.top_k, quality=qualities)
    return _Explained(sample, explanations, written, result.metrics, _unknown_share(explanations, tokenizer))


def _log_explainer(model, tokenizer, data: DataConfig, explaining: ExplainConfig, max_length: int, explained) -> str:
    """Log the explainer pyfunc model with the job's columns and settings; the first sentence is its example."""
    return tracking.log_explainer_model(
        model,
        tokenizer,
        text_column=data.text_column,
        label_column=data.label_column,
        max_length=max_length,
        config=explaining,
        example_texts=[explained.sample[0].text],
    )


UNKNOWN_WARNING = 0.05
"""Share of ``[UNK]`` among the explained tokens above which the job warns."""


def _unknown_share(explanations, tokenizer) -> float:
    """Share of the explained tokens (structural ones left out) that are the unknown token; warns when high."""
    tokens = [t.token for e in explanations if e.attributions for t in e.attributions[0].tokens if not t.is_special]
    share = tokens.count(tokenizer.unk_token) / len(tokens) if tokens and tokenizer.unk_token else 0.0
    if share > UNKNOWN_WARNING:
        logger.warning(
            "%.0f%% of the explained tokens are %s: the tokenizer may not be the one the model was trained with "
            "(a Japanese model's MeCab dictionary: param tokenizer_dictionary), or the texts hold characters its "
            "vocabulary lacks. Their attributions are real but say little about the words.",
            100 * share,
            tokenizer.unk_token,
        )
    return share


def _log_tokenizer(tokenizer) -> None:
    """Log which MeCab dictionary a Japanese tokenizer cuts words with (``none`` for other tokenizers)."""
    from mlflow_explain.tokenization import tokenizer_dictionary

    with tracking.tracking_errors():
        tracking.log_new_params({"tokenizer_dictionary": tokenizer_dictionary(tokenizer) or "none"})


def _image_keys(explained: _Explained) -> list[str]:
    """The run's image series for the prepared chart view: each sentence's strip and the class summary."""
    return [*tracking.sentence_image_keys(explained.explanations), artifacts.IMAGE_KEY_SUMMARY]


def _log_explained(explained: _Explained, explaining: ExplainConfig) -> dict[str, float]:
    with tracking.tracking_errors(f"the explanations are kept in {explained.folder}"):
        tracking.set_tags(
            {artifacts.SAMPLE_HASH_TAG: sample_hash(explained.sample), artifacts.METHOD_TAG: explaining.method}
        )
    metrics = tracking.log_written_explanations(
        explained.written,
        explained.explanations,
        extra_metrics={**explained.metrics, "unk_share": explained.unknown_share},
    )
    shutil.rmtree(explained.folder, ignore_errors=True)
    return metrics


def _log_params(dataset: TextDataset, *configs, **extra) -> None:
    """Log every field of the settings (:func:`~mlflow_explain.config.config_params`), what the data turned out to
    be (sizes, labels, the encoding read, whether it holds label sets) and ``extra``."""
    tracking.log_new_params(
        {
            **config_params(*configs),
            "encoding": dataset.encoding,
            "multi_label": str(dataset.multi_label).lower(),
            "n_train": len(dataset.train),
            "n_eval": len(dataset.eval),
            "labels": ",".join(dataset.labels),
            **extra,
        }
    )
