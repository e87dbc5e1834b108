"""Runs, params, metrics, tags and files of the jobs and the Trainer callback, within a retry budget.

Everything that starts, ends or writes to an MLflow run goes through :mod:`mlflow_explain.tracking`;
this module holds the run-level calls: the jobs' run lifecycle (:func:`job_run`), the retry budget
and error wrapping every tracking call shares, and the writes into a given run that the callback makes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlflow_explain.errors import MlflowExplainError, TrackingError

__all__ = [
    "IMAGE_KEY_PATTERN",
    "TRACKING_BACKOFF",
    "TRACKING_RETRIES",
    "TRACKING_TIMEOUT",
    "active_or_new_run",
    "check_tracking_store",
    "end_active_run",
    "job_run",
    "log_metrics",
    "log_new_params",
    "log_run_files",
    "log_run_images",
    "log_run_metrics",
    "log_run_table",
    "log_training_history",
    "retry_budget",
    "run_experiment_id",
    "set_tags",
    "tag_run",
    "tracking_errors",
]

logger = logging.getLogger(__name__)

TRACKING_RETRIES = 3
"""Retries of a failed call to a tracking server (MLflow's default is 7, with waits that add up to minutes)."""

TRACKING_BACKOFF = 1
"""Backoff factor of those retries, in seconds: waits of about 0, 2 and 4 s."""

TRACKING_TIMEOUT = 20
"""Seconds one attempt waits for the tracking server's answer (MLflow's default is 120)."""


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


HISTORY_BATCH = 1000
"""Metrics per ``log_batch`` call of :func:`log_training_history` (MLflow's limit)."""


def log_training_history(history: Sequence[Mapping]) -> None:
    """Log Trainer's log history (loss and evaluation per epoch) as metric series, in batched calls.

    Args:
        history: ``trainer.state.log_history``.
    """
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(
            key if key.startswith(("eval_", "train_")) else f"train_{key}", float(value), now, int(entry.get("step", 0))
        )
        for entry in history
        for key, value in entry.items()
        if key not in ("step", "epoch") and isinstance(value, int | float) and not key.endswith("_per_second")
    ]
    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), HISTORY_BATCH):  # MLflow takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=metrics[start : start + HISTORY_BATCH])


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


IMAGE_KEY_PATTERN = re.compile(r"^[a-zA-Z0-9_\-./ ]+$")
"""The characters ``MlflowClient.log_image`` accepts in an image series key."""


def log_run_images(run_id: str, images: Mapping[str, object], step: int) -> None:
    """Log images into a run's image series (the chart view's image cards), in one upload.

    The files are the ones ``MlflowClient.log_image(run_id, image, key=key, step=step)`` writes (under
    ``images/``, a PNG named by key, step, timestamp and a random id, and its WebP thumbnail of at most
    256 pixels beside it, ``+compressed``; the tests compare the names with MLflow's own), with the run's
    ``mlflow.loggedImages`` tag, but encoded fast (PNG compression level 1, WebP method 0: 4 ms a
    256-pixel picture where ``log_image`` takes 14 ms) and uploaded as one folder with one tag write,
    where ``log_image`` makes two uploads and a tag write per picture.

    Args:
        run_id: The run.
        images: Series key to image (PIL image, or an array PIL can read).
        step: The training step.

    Raises:
        ValueError: If a key has characters an image series key may not have.
    """
    import tempfile
    import uuid

    import mlflow
    from mlflow.tracking.multimedia import compress_image_size
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES
    from mlflow.utils.time import get_current_time_millis
    from PIL import Image

    if not images:
        return
    for key in images:
        if not IMAGE_KEY_PATTERN.match(key):
            raise ValueError(f"image key {key!r} may only hold letters, digits, '_', '-', '.', ' ' and '/'.")
    timestamp = get_current_time_millis()
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory(prefix="mlflow-explain-images-") as folder:
        for key, image in images.items():
            picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
            name = f"{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uuid.uuid4()}"
            picture.save(Path(folder, f"{name}.png"), compress_level=1)
            compress_image_size(picture).save(Path(folder, f"{name}+compressed.webp"), method=0)
        client.log_artifacts(run_id, folder, "images")
    client.set_tag(run_id, MLFLOW_LOGGED_IMAGES, True)


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
