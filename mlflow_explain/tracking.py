"""Everything that writes explanations, models and metrics to MLflow.

This is the only module (with the callback and the CLI) that calls ``mlflow``. Every artifact
is first written to a local folder and then logged; if the tracking store fails, the folder is
kept and its path is given in the error, so explanations already computed are never lost.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlflow_explain import artifacts
from mlflow_explain.config import ExplainConfig
from mlflow_explain.errors import MlflowExplainError, ModelError, TrackingError
from mlflow_explain.explanation import Explanation, summary_metrics
from mlflow_explain.sampling import sentence_key

__all__ = [
    "PIP_REQUIREMENTS",
    "active_or_new_run",
    "check_comparison_dir",
    "check_tracking_store",
    "end_active_run",
    "is_mlflow_uri",
    "job_run",
    "load_logged_model",
    "log_explanations",
    "log_metrics",
    "log_model",
    "log_new_params",
    "log_run_files",
    "log_run_images",
    "log_run_metrics",
    "log_run_table",
    "log_training_history",
    "log_written_explanations",
    "retry_budget",
    "run_experiment_id",
    "sentence_image_keys",
    "set_tags",
    "share_explanation_view",
    "tag_run",
    "tracking_errors",
    "with_strips",
    "write_explanations",
    "write_step_tables",
    "write_strips",
]

logger = logging.getLogger(__name__)

PIP_REQUIREMENTS = [
    "mlflow",
    "transformers",
    "torch",
    "tokenizers",
    "fugashi",
    "unidic-lite",
    "ipadic",
]
"""Requirements of the logged classifier (MLflow's automatic inference fails offline)."""

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/", "s3://", "gs://", "wasbs://", "dbfs:/")


def write_explanations(
    explanations: Sequence[Explanation],
    folder: str | Path,
    *,
    title: str = "Token attributions",
    subtitle: str | None = None,
    top_k: int = 10,
    quality: Sequence | None = None,
) -> dict[str, Path]:
    """Render explanations into ``folder``: tables, HTML pages, token strips and plots.

    Every file is written under a temporary name and renamed into place, so a reader never
    sees half a file.

    Args:
        explanations: The explained sentences.
        folder: Destination folder (created if needed).
        title: Title of the HTML page.
        subtitle: Line under the title (run name, parameters).
        top_k: Tokens per class in the summary plot. Defaults to 10.
        quality: Per-sentence :class:`~mlflow_explain.quality.SentenceQuality` figures, written
            as the ``quality.json`` table and into the per-sentence table when given.

    Returns:
        Map from artifact name (a path relative to ``folder``) to the written path.
    """
    import pandas as pd

    from mlflow_explain.quality import QUALITY_COLUMNS, quality_records
    from mlflow_explain.render import attribution_table, render_html, sample_strips, sentence_table, spreadsheet_safe

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = attribution_table(explanations)
    written = {
        artifacts.TABLE_FILE: _atomic_write(folder / artifacts.TABLE_FILE, _table_json(table)),
        artifacts.TABLE_CSV: _atomic_write(folder / artifacts.TABLE_CSV, spreadsheet_safe(table).to_csv(index=False)),
        artifacts.SENTENCES_FILE: _atomic_write(
            folder / artifacts.SENTENCES_FILE, _table_json(sentence_table(explanations, quality))
        ),
        artifacts.HTML_FILE: _atomic_write(
            folder / artifacts.HTML_FILE, render_html(explanations, title=title, subtitle=subtitle)
        ),
        artifacts.WORDS_HTML_FILE: _atomic_write(
            folder / artifacts.WORDS_HTML_FILE,
            render_html(explanations, title=f"{title} (words)", subtitle=subtitle, level="word"),
        ),
    }
    if quality is not None:
        frame = pd.DataFrame(quality_records(quality), columns=list(QUALITY_COLUMNS))
        written[artifacts.QUALITY_FILE] = _atomic_write(folder / artifacts.QUALITY_FILE, _table_json(frame))
    written |= write_strips(explanations, folder)
    summary = sample_strips(explanations, keys=[sentence_key(e.text) for e in explanations])
    written[artifacts.SUMMARY_IMAGE] = _save_image(summary, folder / artifacts.SUMMARY_IMAGE)
    return written | _write_plots(explanations, folder, top_k)


def write_strips(explanations: Sequence[Explanation], folder: str | Path) -> dict[str, Path]:
    """Draw each sentence's token strip into ``folder/strips/<key>.png``.

    Args:
        explanations: The explained sentences (those without attributions are skipped).
        folder: Destination folder.

    Returns:
        Map from ``strips/<key>.png`` to the written path.
    """
    from mlflow_explain.render import token_strip

    (Path(folder) / artifacts.STRIPS_DIR).mkdir(parents=True, exist_ok=True)
    written = {}
    for explanation in explanations:
        if explanation.attributions:
            key = sentence_key(explanation.text)
            name = _strip_name(key)
            written[name] = _save_image(token_strip(explanation, key=key), Path(folder) / name)
    return written


def write_step_tables(
    explanations: Sequence[Explanation],
    folder: str | Path,
    *,
    step: int,
    epoch: float,
    quality: Sequence | None = None,
):
    """Write one training step's attribution and per-sentence tables, with ``step`` and ``epoch`` columns.

    Args:
        explanations: The step's explanations.
        folder: Destination folder.
        step: The global training step.
        epoch: The epoch at that step.
        quality: The step's per-sentence quality figures, if computed.

    Returns:
        ``(paths, sentences)``: the two written files (``attributions.json``, ``sentences.json``, in
        ``log_table``'s format) and the per-sentence DataFrame.
    """
    from mlflow_explain.render import attribution_table, sentence_table

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        artifacts.TABLE_FILE: attribution_table(explanations),
        artifacts.SENTENCES_FILE: sentence_table(explanations, quality),
    }
    for table in tables.values():
        table.insert(0, "epoch", float(epoch))
        table.insert(0, "step", int(step))
    paths = [_atomic_write(folder / name, _table_json(table)) for name, table in tables.items()]
    return paths, tables[artifacts.SENTENCES_FILE]


def _write_plots(explanations: Sequence[Explanation], folder: Path, top_k: int) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    from mlflow_explain.render import token_importance_figure, top_tokens_figure

    (folder / artifacts.PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    figures = [
        (f"{artifacts.PLOTS_DIR}/sentence_{e.sentence_id:03d}.png", token_importance_figure(e)) for e in explanations
    ]
    figures.append((f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}", top_tokens_figure(explanations, top_k=top_k)))
    written = {}
    for name, figure in figures:
        try:
            with _atomic_path(folder / name) as tmp:
                figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
            written[name] = folder / name
        finally:
            plt.close(figure)
    return written


def log_explanations(
    explanations: Sequence[Explanation],
    *,
    step: int | None = None,
    artifact_dir: str = artifacts.ARTIFACT_DIR,
    title: str = "Token attributions",
    subtitle: str | None = None,
    top_k: int = 10,
    extra_metrics: Mapping[str, float] | None = None,
    keep_dir: str | Path | None = None,
) -> dict[str, float]:
    """Log explanations to the active MLflow run: tables, HTML, strips, plots, images and metrics.

    Args:
        explanations: The explained sentences.
        step: Step of the image and metric series (e.g. the global training step).
        artifact_dir: Artifact folder in the run. Defaults to ``"explanations"``.
        title: Title of the HTML page.
        subtitle: Line under the title.
        top_k: Tokens per class in the summary plot. Defaults to 10.
        extra_metrics: More metrics to log with the summary (e.g. explanation time).
        keep_dir: Folder to render into; defaults to a new temporary folder, removed after a
            successful upload.

    Returns:
        The metrics that were logged.

    Raises:
        TrackingError: If MLflow refuses a write; the rendered files stay in a local folder
            whose path the message gives.
    """
    folder = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="mlflow-explain-"))
    written = write_explanations(explanations, folder, title=title, subtitle=subtitle, top_k=top_k)
    metrics = log_written_explanations(
        written, explanations, step=step, artifact_dir=artifact_dir, extra_metrics=extra_metrics
    )
    if not keep_dir:
        shutil.rmtree(folder, ignore_errors=True)
    return metrics


_TABLES = (artifacts.TABLE_FILE, artifacts.QUALITY_FILE, artifacts.SENTENCES_FILE)


def log_written_explanations(
    written: Mapping[str, Path],
    explanations: Sequence[Explanation],
    *,
    step: int | None = None,
    artifact_dir: str = artifacts.ARTIFACT_DIR,
    extra_metrics: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Log the files that :func:`write_explanations` rendered, with the images and metrics.

    Jobs render right after explaining, so the files are on disk before anything can fail, and
    log them later with this function. The tables go through ``mlflow.log_table`` (the per-sentence
    table with each sentence's token strip in its ``image`` column); the summary picture and a copy
    of the HTML page go to the run's artifact root as well; each sentence's strip is also logged as
    the image series :data:`~mlflow_explain.artifacts.IMAGE_KEY_SENTENCE`.

    Args:
        written: What :func:`write_explanations` returned.
        explanations: The explanations it rendered (for the image series and the metrics).
        step: Step of the image and metric series (e.g. the global training step).
        artifact_dir: Artifact folder in the run. Defaults to ``"explanations"``.
        extra_metrics: More metrics to log with the summary (e.g. explanation time).

    Returns:
        The metrics that were logged.

    Raises:
        TrackingError: If MLflow refuses a write; the message gives the folder that holds the files.
    """
    import mlflow

    folder = written[artifacts.HTML_FILE].parent
    metrics = {**summary_metrics(explanations), **(extra_metrics or {})}
    try:
        for name, path in written.items():
            if name == artifacts.SENTENCES_FILE:
                mlflow.log_table(with_strips(_read_table(path), written), artifact_file=f"{artifact_dir}/{name}")
            elif name in _TABLES:
                # log_table registers the table so that mlflow.load_table joins it across runs.
                mlflow.log_table(_read_table(path), artifact_file=f"{artifact_dir}/{name}")
            elif name != artifacts.SUMMARY_IMAGE and not name.startswith(f"{artifacts.STRIPS_DIR}/"):
                # (strips live in the table and the image series, the summary picture at the root only)
                mlflow.log_artifact(str(path), artifact_path=f"{artifact_dir}/{Path(name).parent}".rstrip("/."))
        for name in artifacts.ROOT_FILES:
            mlflow.log_artifact(str(written[name]))
        _log_images(written, explanations, step)
        mlflow.log_metrics(metrics, step=step)
    except Exception as err:  # MLflow raises MlflowException, requests and OS errors alike
        raise TrackingError(
            f"could not log explanations to MLflow ({type(err).__name__}: {err}). "
            f"The explanations are kept in {folder}."
        ) from err
    return metrics


def with_strips(table, written: Mapping[str, Path]):
    """The per-sentence table with its ``image`` column: each row's token strip as an ``mlflow.Image``.

    Args:
        table: A :func:`~mlflow_explain.render.sentence_table` frame (its ``key`` column names the strips).
        written: The rendered files, holding ``strips/<key>.png`` for each row.

    Returns:
        A copy of ``table`` with the :data:`~mlflow_explain.artifacts.SENTENCE_IMAGE_COLUMN` column.
    """
    import mlflow
    from PIL import Image

    def image(key: str):
        with Image.open(written[_strip_name(key)]) as strip:
            return mlflow.Image(strip.convert("RGB"))

    table = table.copy()
    table[artifacts.SENTENCE_IMAGE_COLUMN] = [image(key) for key in table["key"]]
    return table


def _log_images(written: Mapping[str, Path], explanations: Sequence[Explanation], step: int | None) -> None:
    import mlflow
    from PIL import Image

    for explanation, name in zip(
        [e for e in explanations if e.attributions], sentence_image_keys(explanations), strict=True
    ):
        with Image.open(written[_strip_name(sentence_key(explanation.text))]) as image:
            mlflow.log_image(image.convert("RGB"), key=name, step=step or 0)
    summary = written.get(f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}")
    if summary is not None:
        with Image.open(summary) as image:
            mlflow.log_image(image.convert("RGB"), key=artifacts.IMAGE_KEY_SUMMARY, step=step or 0)


def sentence_image_keys(explanations: Sequence[Explanation], template: str = artifacts.IMAGE_KEY_SENTENCE) -> list[str]:
    """The image series keys of explained sentences (``template`` names the folder).

    Args:
        explanations: The explained sentences.
        template: :data:`~mlflow_explain.artifacts.IMAGE_KEY_SENTENCE` or its training variant.

    Returns:
        One key per sentence with attributions, in sample order.
    """
    return [
        template.format(sentence_id=e.sentence_id, key=sentence_key(e.text)) for e in explanations if e.attributions
    ]


def share_explanation_view(experiment_id: str, image_keys: Sequence[str]) -> str:
    """Add the sentences' image cards to the experiment's prepared chart view; return its address.

    The view (:mod:`mlflow_explain.ui_view`) is the experiment tag ``mlflow.sharedViewState.mlflow-explain``;
    keys already in it are kept, so it shows the sentences of every run that logged to the experiment.
    A failure to write it is logged as a warning: everything else is logged by then.

    Args:
        experiment_id: The experiment.
        image_keys: Image series keys to show (:func:`sentence_image_keys`).

    Returns:
        The UI address of the view: the tracking server's when the tracking URI is HTTP(S), else
        ``mlflow ui``'s default address (``http://127.0.0.1:5000``).
    """
    import mlflow
    import requests
    from mlflow.exceptions import MlflowException

    from mlflow_explain import ui_view

    client = mlflow.MlflowClient()
    try:
        existing = client.get_experiment(experiment_id).tags.get(ui_view.TAG)
        client.set_experiment_tag(
            experiment_id, ui_view.TAG, ui_view.view_state([*ui_view.image_keys_of(existing), *image_keys])
        )
    except (MlflowException, requests.RequestException, OSError) as err:
        logger.warning("could not save the prepared chart view of experiment %s: %s", experiment_id, err)
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return base + ui_view.view_path(experiment_id)


def _strip_name(key: str) -> str:
    return f"{artifacts.STRIPS_DIR}/{key}.png"


def _save_image(image, path: Path) -> Path:
    with _atomic_path(path) as tmp:
        image.save(tmp, format="png")
    return path


def log_training_history(history: Sequence[Mapping]) -> None:
    """Log Trainer's log history (loss and evaluation per epoch) as metric series.

    Args:
        history: ``trainer.state.log_history``.
    """
    import mlflow

    for entry in history:
        step = int(entry.get("step", 0))
        values = {
            key if key.startswith(("eval_", "train_")) else f"train_{key}": float(value)
            for key, value in entry.items()
            if key not in ("step", "epoch") and isinstance(value, int | float) and not key.endswith("_per_second")
        }
        if values:
            mlflow.log_metrics(values, step=step)


def log_model(model, tokenizer, artifact_path: str = artifacts.MODEL_ARTIFACT, model_card=None) -> str:
    """Log the classifier and tokenizer as an MLflow transformers model.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        artifact_path: Model name in the run. Defaults to ``"model"``.
        model_card: A ``huggingface_hub.ModelCard`` to log with it; by default MLflow fetches the
            model's card from the Hub.

    Returns:
        The logged model's URI.
    """
    import mlflow

    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name=artifact_path,
        task="text-classification",
        pip_requirements=PIP_REQUIREMENTS,
        model_card=model_card,
    )
    return info.model_uri


def is_mlflow_uri(model: str) -> bool:
    """Whether ``model`` names an MLflow model (``runs:/``, ``models:/``, ...) rather than a folder or Hub id."""
    return model.startswith(MLFLOW_SCHEMES)


def load_logged_model(uri: str):
    """Load the classifier and tokenizer of an MLflow transformers model.

    Args:
        uri: ``runs:/<run_id>/model``, ``models:/<name>/<version>`` or another MLflow model URI.

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModelError: If there is no such model or it is not a transformers model.
    """
    import mlflow

    try:
        components = mlflow.transformers.load_model(uri, return_type="components")
    except Exception as err:  # MlflowException, OSError, ... all mean "cannot load this"
        raise ModelError(
            f"cannot load MLflow model {uri!r}: {err}. Check the run ID and artifact path "
            f"(the main job logs the classifier at runs:/<run_id>/{artifacts.MODEL_ARTIFACT})."
        ) from err
    return components["model"], components["tokenizer"]


def check_tracking_store(timeout: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking server cannot be reached.

    Only HTTP(S) tracking URIs are checked (``GET <uri>/health``); local stores (sqlite, files)
    are created on demand.

    Args:
        timeout: Seconds to wait for the server. Defaults to 5.

    Raises:
        TrackingError: If the server does not answer or answers with an error.
    """
    import mlflow
    import requests

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as err:
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({type(err).__name__}: {err}). "
            "Start it (mlflow server --host 127.0.0.1 --port 5000) or set MLFLOW_TRACKING_URI to a reachable store."
        ) from err


TRACKING_RETRIES = 3
"""Retries of a failed call to a tracking server (MLflow's default is 7, with waits that add up to minutes)."""

TRACKING_BACKOFF = 1
"""Backoff factor of those retries, in seconds: waits of about 0, 2 and 4 s."""

TRACKING_TIMEOUT = 20
"""Seconds one attempt waits for the tracking server's answer (MLflow's default is 120)."""


@contextmanager
def retry_budget(
    retries: int = TRACKING_RETRIES,
    backoff: int = TRACKING_BACKOFF,
    timeout: int = TRACKING_TIMEOUT,
    force: bool = False,
) -> Iterator[None]:
    """Bound how long MLflow's HTTP client retries inside the block; settings the user made win.

    A server that refuses connections fails a call within about 10 s, one that hangs within
    ``(retries + 1) * timeout`` plus the waits. The ``MLFLOW_HTTP_REQUEST_*`` environment variables,
    when set, are kept (unless ``force``).

    Args:
        retries: Retries per call. Defaults to :data:`TRACKING_RETRIES`.
        backoff: Backoff factor in seconds. Defaults to :data:`TRACKING_BACKOFF`.
        timeout: Seconds per attempt. Defaults to :data:`TRACKING_TIMEOUT`.
        force: Override the user's settings too (for a last quick call). Defaults to False.

    Yields:
        Nothing.
    """
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": retries,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": backoff,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": timeout,
    }
    saved = {name: os.environ.get(name) for name in settings}
    for name, value in settings.items():
        if force or saved[name] is None:
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def tracking_errors(context: str | None = None) -> Iterator[None]:
    """Turn MLflow and HTTP failures inside the block into one clear :class:`TrackingError`.

    Args:
        context: What the user should know when it fails (e.g. where the explanations are kept).

    Yields:
        Nothing.

    Raises:
        TrackingError: Wrapping the MLflow, HTTP or OS error.
    """
    import mlflow
    import requests

    try:
        yield
    except (mlflow.exceptions.MlflowException, requests.RequestException, OSError) as err:
        suffix = f" {context[0].upper()}{context[1:]}." if context else ""
        raise TrackingError(
            f"the MLflow tracking store at {mlflow.get_tracking_uri()} failed ({type(err).__name__}: {err}).{suffix}"
        ) from err


# --- runs, params, metrics and tags of the jobs ------------------------------------------------


@contextmanager
def job_run() -> Iterator:
    """Start (or resume, under ``mlflow run``) a job's run; end it FINISHED, or FAILED on any error.

    Tracking calls retry within :func:`retry_budget`. Ending a run against
    a tracking store that has gone away must not hide the error that stopped the job: the run is
    marked FAILED with one quick try, and when that fails too the error says so (the run then shows
    as RUNNING until someone ends it).
    """
    import mlflow

    with retry_budget():
        with tracking_errors("cannot start an MLflow run; check MLFLOW_TRACKING_URI"):
            run = mlflow.start_run()
        try:
            yield run
        except BaseException as err:
            unmarked = _end_failed(run)
            if unmarked and isinstance(err, MlflowExplainError):
                raise type(err)(f"{err} {unmarked}") from err
            raise
        with tracking_errors(f"could not mark run {run.info.run_id} as FINISHED"):
            mlflow.end_run()


def _end_failed(run) -> str | None:
    """Mark the active run FAILED with one quick try; returns what to tell the user when that failed."""
    import mlflow

    try:
        with retry_budget(retries=0, timeout=10, force=True):
            mlflow.end_run(status="FAILED")
    except Exception as err:  # the store is gone: the original error matters more
        # end_run pops the run before it calls the store, so no run is left active.
        logger.warning("could not mark run %s as FAILED: %s", run.info.run_id, err)
        return (
            f"Run {run.info.run_id} could not be marked FAILED ({type(err).__name__}) and shows as RUNNING; "
            f"end it with MlflowClient().set_terminated({run.info.run_id!r}, 'FAILED') once the store is back."
        )
    return None


def log_new_params(params: Mapping[str, object]) -> None:
    """Log params not yet in the active run (``mlflow run`` logs its entry point's parameters itself).

    A parameter that the run already holds with another value (``epochs=auto``) is logged
    again as ``<name>_resolved`` with the value actually used.

    Args:
        params: Param name to value.
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


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log metrics to the active run.

    Args:
        metrics: Metric name to value.
    """
    import mlflow

    mlflow.log_metrics(dict(metrics))


def set_tags(tags: Mapping[str, str]) -> None:
    """Set tags on the active run.

    Args:
        tags: Tag name to value.
    """
    import mlflow

    mlflow.set_tags(dict(tags))


# --- writing into a given run (the Trainer callback logs into the run that Trainer reports to) -----


def active_or_new_run() -> tuple[str, bool]:
    """The active run's ID, or a new run's when none is active.

    Returns:
        ``(run_id, started)``: ``started`` is True when this call started the run (end it with
        :func:`end_active_run`).
    """
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        return active.info.run_id, False
    return mlflow.start_run().info.run_id, True


def end_active_run() -> None:
    """End the active run as FINISHED."""
    import mlflow

    mlflow.end_run()


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run.

    Args:
        run_id: The run.
        tags: Tag name to value.
    """
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_run_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log metrics to a run in one call, at one timestamp.

    Args:
        run_id: The run.
        metrics: Metric name to value.
        step: The training step. Defaults to 0.
    """
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=entries)


def log_run_files(run_id: str, paths: Sequence[str | Path], artifact_path: str | None = None) -> None:
    """Log local files into a run's artifacts.

    Args:
        run_id: The run.
        paths: The files.
        artifact_path: Folder in the run; the root by default.
    """
    import mlflow

    client = mlflow.MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def log_run_images(run_id: str, images: Mapping[str, object], step: int) -> None:
    """Log images into a run's image series (the chart view's image cards).

    Args:
        run_id: The run.
        images: Series key to image (PIL image or array).
        step: The training step.
    """
    import mlflow

    client = mlflow.MlflowClient()
    for key, image in images.items():
        client.log_image(run_id, image, key=key, step=step)


def log_run_table(run_id: str, frame, artifact_file: str) -> None:
    """Log a DataFrame as a run's table (``mlflow.load_table`` reads it; the UI's evaluation view shows it).

    Args:
        run_id: The run.
        frame: The table.
        artifact_file: Its path in the run.
    """
    import mlflow

    mlflow.MlflowClient().log_table(run_id, frame, artifact_file)


def run_experiment_id(run_id: str) -> str:
    """The experiment a run belongs to.

    Args:
        run_id: The run.

    Returns:
        The experiment ID.
    """
    import mlflow

    return mlflow.MlflowClient().get_run(run_id).info.experiment_id


def _table_json(frame) -> str:
    return json.dumps(
        {
            "columns": list(frame.columns),
            "data": json.loads(frame.to_json(orient="values", force_ascii=False)),
        },
        ensure_ascii=False,
    )


def _read_table(path: Path):
    import pandas as pd

    payload = json.loads(path.read_text("utf-8"))
    return pd.DataFrame(payload["data"], columns=payload["columns"])


def _atomic_write(path: Path, text: str) -> Path:
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it into place on success, remove it on error.

    A reader (or an upload) sees the old complete file or the new complete one, never half of
    one, and a failed write leaves no temporary file behind.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# Comparison across runs and steps (``mlflow-explain compare``): load tables, log the result.
# ----------------------------------------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402  (this section keeps its imports to itself)

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_explain.compare import Comparison, Version

__all__ += ["comparison_run_name", "load_run_tables", "load_step_table", "log_comparison", "write_comparison"]

COMPARISON_PARAMS = ("model", "method", "n_steps", "epochs", "target", "seed", "data")
"""Run parameters shown next to each compared run (``<name>_resolved`` wins over ``<name>``)."""


def load_run_tables(run_ids: Sequence[str]) -> tuple[list[Version], list[pd.DataFrame]]:
    """Load the attribution tables of runs for :func:`mlflow_explain.compare.compare_runs`.

    Args:
        run_ids: The runs, reference first; each may be in any experiment of the tracking store.

    Returns:
        ``(versions, tables)``: each run's name, key parameters and sample hash, and its table.

    Raises:
        ComparisonError: A run does not exist or has no attribution table.

    Example:
        >>> comparison = compare_runs(*load_run_tables(["3f2a...", "9b1c..."]))  # doctest: +SKIP
    """
    loaded = [_load_table(run_id, f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}") for run_id in run_ids]
    return [version for version, _ in loaded], [table for _, table in loaded]


def load_step_table(run_id: str) -> tuple[Version, pd.DataFrame, dict[int, dict[str, float]]]:
    """Load the Trainer callback's steps of a run for :func:`mlflow_explain.compare.compare_steps`.

    Reads the per-step files (``explanations/training/steps/step_<step>/attributions.json``) or, for
    runs logged before that layout, the one growing table ``explanations/training/attributions.json``.

    Args:
        run_id: A run trained with :class:`mlflow_explain.callback.ExplainCallback`.

    Returns:
        ``(version, table, step_metrics)``: the run's description, its attribution rows of every
        step (with ``step`` and ``epoch``), and each step's quality metrics (``quality_*``, from the
        run's ``probe_quality_*`` metric series).

    Raises:
        ComparisonError: The run does not exist or has no step table.
    """
    import mlflow
    import pandas as pd

    version, run = _describe_run(run_id)
    client = mlflow.MlflowClient()
    folders = [f.path for f in client.list_artifacts(run_id, artifacts.STEPS_DIR) if f.is_dir]
    if folders:
        with tempfile.TemporaryDirectory(prefix="mlflow-explain-steps-") as tmp:
            tables = [
                _read_table(Path(client.download_artifacts(run_id, f"{folder}/{artifacts.TABLE_FILE}", tmp)))
                for folder in sorted(folders)
            ]
        table = pd.concat(tables, ignore_index=True)
    else:
        _, table = _load_table(run_id, artifacts.LEGACY_STEP_TABLE, version=version, run=run)
    step_metrics: dict[int, dict[str, float]] = {}
    for name in sorted(run.data.metrics):
        if name.startswith("probe_quality_"):
            for point in client.get_metric_history(run_id, name):
                step_metrics.setdefault(int(point.step), {})[name.removeprefix("probe_")] = float(point.value)
    return version, table, step_metrics


def check_comparison_dir(folder: str | Path, overwrite: bool = False) -> None:
    """Refuse a ``compare --output-dir`` that would overwrite files unasked, before any work.

    A new folder, or one that holds none of :data:`~mlflow_explain.artifacts.COMPARISON_FILES`, is
    fine (other files in it are left alone). With ``overwrite`` those files are replaced; nothing
    else in the folder is ever touched.

    Args:
        folder: The folder.
        overwrite: Replace an earlier comparison's files.

    Raises:
        ConfigError: If ``folder`` is a file, or holds comparison files and ``overwrite`` is off.
    """
    from mlflow_explain.errors import ConfigError

    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output-dir {folder} is a file, not a folder; give a new or existing folder.")
    clashing = [name for name in artifacts.COMPARISON_FILES if (path / name).exists()]
    if clashing and not overwrite:
        raise ConfigError(
            f"--output-dir {folder} already holds {', '.join(clashing)} from an earlier comparison; give another "
            "folder, or --overwrite to replace those files (nothing else in the folder is touched)."
        )


def write_comparison(comparison: Comparison, folder: str | Path, *, n_sentences: int = 3) -> dict[str, Path]:
    """Render a comparison into ``folder``: the HTML page, the difference plot and the agreement table.

    Args:
        comparison: The comparison.
        folder: Destination folder (created if needed).
        n_sentences: Sentences in the difference plot. Defaults to 3.

    Returns:
        Map from artifact name (:data:`~mlflow_explain.artifacts.COMPARISON_HTML`, ...) to the written path.
    """
    from mlflow_explain.render import attribution_difference_figure, render_comparison_html

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        artifacts.COMPARISON_HTML: _atomic_write(
            folder / artifacts.COMPARISON_HTML, render_comparison_html(comparison)
        ),
        artifacts.AGREEMENT_TABLE: _atomic_write(folder / artifacts.AGREEMENT_TABLE, _table_json(comparison.agreement)),
    }
    figure = attribution_difference_figure(comparison, n_sentences=n_sentences)
    import matplotlib.pyplot as plt  # after the figure: the renderer picks the backend

    try:
        path = folder / artifacts.COMPARISON_PLOT
        tmp = path.with_name(f".{path.name}.tmp")
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        written[artifacts.COMPARISON_PLOT] = tmp.replace(path)
    finally:
        plt.close(figure)
    return written


def log_comparison(comparison: Comparison, *, local_dir: str | Path | None = None) -> str:
    """Log a comparison to a new MLflow run (or the run ``mlflow run`` started).

    The run is tagged :data:`~mlflow_explain.artifacts.COMPARED_RUNS_TAG` with the compared run IDs,
    holds the page, the difference plot and the agreement table (``mlflow.log_table``) under
    :data:`~mlflow_explain.artifacts.COMPARISON_DIR`, and :attr:`Comparison.metrics` as metrics. A steps
    comparison also logs ``<figure>_vs_reference`` and ``<figure>_vs_previous`` as series over the steps.

    Args:
        comparison: The comparison.
        local_dir: Also keep the files in this folder; by default they are rendered into a temporary
            folder, removed after a successful upload.

    Returns:
        The comparison run's ID.

    Raises:
        TrackingError: If MLflow refuses a write; the rendered files stay in a local folder whose path
            the message gives.
    """
    import mlflow

    folder = Path(local_dir) if local_dir else Path(tempfile.mkdtemp(prefix="mlflow-explain-compare-"))
    written = write_comparison(comparison, folder)
    try:
        with mlflow.start_run() as run:
            mlflow.MlflowClient().update_run(run.info.run_id, name=comparison_run_name(comparison))
            mlflow.set_tag(artifacts.COMPARED_RUNS_TAG, ",".join(comparison.run_ids))
            existing = mlflow.MlflowClient().get_run(run.info.run_id).data.params
            params = {
                "comparison": comparison.kind,
                "top_k": comparison.top_k,
                "force": comparison.forced,
                "reference": comparison.versions[0].name,
            }
            mlflow.log_params({k: v for k, v in params.items() if k not in existing})
            for name, path in written.items():
                if name == artifacts.AGREEMENT_TABLE:
                    mlflow.log_table(_read_table(path), artifact_file=f"{artifacts.COMPARISON_DIR}/{name}")
                else:
                    mlflow.log_artifact(str(path), artifact_path=artifacts.COMPARISON_DIR)
            mlflow.log_metrics(comparison.metrics)
            if comparison.kind == "steps":
                for row in comparison.summary.itertuples():
                    step = comparison.versions[row.version_b].step
                    mlflow.log_metrics(
                        {f"{figure}_vs_{row.relation}": float(getattr(row, figure)) for figure in _STEP_SERIES},
                        step=step,
                    )
    except Exception as err:  # MLflow raises MlflowException, requests and OS errors alike
        raise TrackingError(
            f"could not log the comparison to MLflow ({type(err).__name__}: {err}). The comparison is kept in {folder}."
        ) from err
    if not local_dir:
        shutil.rmtree(folder, ignore_errors=True)
    return run.info.run_id


_STEP_SERIES = ("spearman_mean", "top_k_overlap_mean", "prediction_changed_share")


def comparison_run_name(comparison: Comparison, limit: int = 120) -> str:
    """A readable name for a comparison run: ``compare: run-a vs run-b`` or ``compare steps: run-a``.

    Args:
        comparison: The comparison.
        limit: Longest name; more runs than fit are counted (``… (+3 more)``). Defaults to 120.

    Returns:
        The name.
    """
    names = list(dict.fromkeys(v.run_name or v.name for v in comparison.versions))
    if comparison.kind == "steps":
        return f"compare steps: {names[0]}"[:limit]
    name = "compare: " + " vs ".join(names)
    shown = len(names)
    while len(name) > limit and shown > 2:
        shown -= 1
        name = "compare: " + " vs ".join(names[:shown]) + f" (+{len(names) - shown} more)"
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _describe_run(run_id: str):
    """The run as a compared :class:`~mlflow_explain.compare.Version`, and the run itself."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlflow_explain.compare import Version
    from mlflow_explain.errors import ComparisonError

    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException as err:
        raise ComparisonError(
            f"run {run_id!r} does not exist in the tracking store {mlflow.get_tracking_uri()}. Check the run ID "
            "(MLflow UI, or the ID the main/explain job printed) and MLFLOW_TRACKING_URI"
        ) from err
    version = Version(
        name=f"{run.info.run_name} ({run_id[:8]})",
        run_id=run_id,
        params={
            key: run.data.params.get(f"{key}_resolved", run.data.params[key])
            for key in COMPARISON_PARAMS
            if key in run.data.params
        },
        sample_hash=run.data.tags.get(artifacts.SAMPLE_HASH_TAG),
        metrics={
            k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("quality_") and k != "quality_seconds"
        },
        run_name=run.info.run_name or run_id[:8],
    )
    return version, run


def _load_table(run_id: str, artifact_file: str, *, version=None, run=None) -> tuple[Version, pd.DataFrame]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlflow_explain.errors import ComparisonError

    if version is None or run is None:
        version, run = _describe_run(run_id)
    try:
        table = mlflow.MlflowClient().load_table(run.info.experiment_id, artifact_file, run_ids=[run_id])
    except MlflowException as err:
        if artifact_file.startswith(artifacts.TRAINING_DIR):
            hint = (
                "it was not trained with mlflow_explain's Trainer callback (ExplainCallback), or no evaluation "
                "ran yet; to compare separate runs, leave out --steps"
            )
        else:
            hint = (
                "compare runs logged by `mlflow-explain main` or `explain` (a run trained with the Trainer "
                "callback compares its steps with --steps)"
            )
        raise ComparisonError(f"run {version.name} has no attribution table {artifact_file}: {hint}") from err
    return version, table


# ----------------------------------------------------------------------------------------------
# The explainer as an MLflow pyfunc model (served over REST, run on Spark), and the summary of a
# file explained on Spark (``mlflow-explain explain-file``).
# ----------------------------------------------------------------------------------------------

__all__ += ["EXPLAINER_ARTIFACT", "OUTPUT_TAG", "explainer_pip_requirements", "log_explainer_model", "log_file_summary"]

EXPLAINER_ARTIFACT = "explainer"
"""Artifact path of the logged explainer model (``runs:/<run_id>/explainer``)."""

EXPLAINER_METADATA_KEY = "mlflow_explain"
"""Key of the explainer's settings in its MLmodel ``metadata`` (the Spark job reads the column names there)."""

OUTPUT_TAG = "mlflow_explain.output"
"""Tag of an ``explain-file`` run: the Parquet table it wrote."""


def explainer_pip_requirements() -> list[str]:
    """Requirements of the logged explainer: this package's own dependencies, as installed.

    The explainer runs this package's code, so the environment that serves it or runs it on Spark
    needs ``mlflow-explain`` installed too (a wheel on the cluster; ``--env-manager local`` here).

    Returns:
        The requirement strings of the installed ``mlflow-explain`` distribution, extras left out.
    """
    from importlib.metadata import requires

    return [r for r in requires("mlflow-explain") or [] if "extra ==" not in r]


def log_explainer_model(
    model,
    tokenizer,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    max_length: int | None = None,
    n_steps: int | None = None,
    artifact_path: str = EXPLAINER_ARTIFACT,
    example_texts: Sequence[str] = (),
    config: ExplainConfig | None = None,
) -> str:
    """Log the explainer pyfunc model (:class:`~mlflow_explain.pyfunc.ExplainerModel`) to the active run.

    The classifier and tokenizer are saved with ``save_pretrained`` into the model's ``classifier``
    artifact, so the explainer is self-contained: ``mlflow models serve -m runs:/<id>/explainer``
    and ``mlflow.pyfunc.spark_udf(spark, "runs:/<id>/explainer")`` need nothing else.

    Args:
        model: The classifier (its config names the labels).
        tokenizer: Its tokenizer.
        text_column: Input column holding the text. Defaults to ``"text"``.
        label_column: Optional input column holding the true label. Defaults to ``"label"``.
        max_length: Longest input in tokens. Defaults to the classifier's maximum.
        n_steps: Default of the ``n_steps`` param. Defaults to ``config.n_steps``.
        artifact_path: Model name in the run. Defaults to ``"explainer"``.
        example_texts: Texts logged as the model's input example (shown as a sample request in the
            MLflow UI; MLflow checks that the logged model explains it). Defaults to none.
        config: The run's explanation settings: the explainer serves its ``method`` and ``n_steps``
            by default and keeps its integration rule, tolerance, ``max_steps``, ``n_samples`` and
            ``internal_batch_size``. Defaults to :class:`~mlflow_explain.config.ExplainConfig`'s defaults.

    Returns:
        The logged model's URI.

    Example:
        >>> uri = log_explainer_model(model, tokenizer, text_column="sentence")  # doctest: +SKIP
        >>> mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"sentence": ["..."]}))  # doctest: +SKIP
    """
    import mlflow
    import pandas as pd

    from mlflow_explain.pyfunc import CLASSIFIER_ARTIFACT, ExplainerModel

    config = config or ExplainConfig()
    explainer = ExplainerModel(
        text_column,
        label_column,
        max_length,
        method=config.method,
        n_steps=config.n_steps if n_steps is None else n_steps,
        config=config,
    )
    with tempfile.TemporaryDirectory(prefix="mlflow-explain-explainer-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        info = mlflow.pyfunc.log_model(
            name=artifact_path,
            python_model=explainer,
            artifacts={CLASSIFIER_ARTIFACT: folder},
            signature=explainer.signature(),
            input_example=pd.DataFrame({text_column: list(example_texts)}) if example_texts else None,
            pip_requirements=explainer_pip_requirements(),
            metadata={EXPLAINER_METADATA_KEY: {"text_column": text_column, "label_column": label_column}},
        )
    return info.model_uri


def log_file_summary(metrics: Mapping[str, float], output: str) -> None:
    """Log what an ``explain-file`` job did to the active run: its figures and where the table went.

    Args:
        metrics: Counts, timings and quality figures.
        output: Where the Parquet table was written (tag :data:`OUTPUT_TAG`).
    """
    import mlflow

    mlflow.log_metrics(dict(metrics))
    mlflow.set_tag(OUTPUT_TAG, output)
