"""Explanations into an MLflow run: the rendered folder, the per-sentence table with its strips,
the image series, the summary metrics and the experiment's prepared chart view.

Every artifact is first written to a local folder (:mod:`mlflow_explain.render.files`) and then
logged; if the tracking store fails, the folder is kept and its path is given in the error, so
explanations already computed are never lost.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow_explain import artifacts
from mlflow_explain.errors import TrackingError
from mlflow_explain.explanation import Explanation, summary_metrics
from mlflow_explain.render.files import read_table, write_explanations
from mlflow_explain.sampling import sentence_key
from mlflow_explain.tracking.runs import log_run_images

__all__ = [
    "log_explanations",
    "log_written_explanations",
    "sentence_image_keys",
    "share_explanation_view",
    "with_strips",
]

logger = logging.getLogger(__name__)


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
                mlflow.log_table(with_strips(read_table(path), written), artifact_file=f"{artifact_dir}/{name}")
            elif name in _TABLES:
                # log_table registers the table so that mlflow.load_table joins it across runs.
                mlflow.log_table(read_table(path), artifact_file=f"{artifact_dir}/{name}")
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

    table = table.copy()
    table[artifacts.SENTENCE_IMAGE_COLUMN] = [
        mlflow.Image(_rgb(written[artifacts.STRIP_FILE.format(key=key)])) for key in table["key"]
    ]
    return table


def _log_images(written: Mapping[str, Path], explanations: Sequence[Explanation], step: int | None) -> None:
    import mlflow

    images = {}
    for explanation, name in zip(
        [e for e in explanations if e.attributions], sentence_image_keys(explanations), strict=True
    ):
        images[name] = _rgb(written[artifacts.STRIP_FILE.format(key=sentence_key(explanation.text))])
    summary = written.get(f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}")
    if summary is not None:
        images[artifacts.IMAGE_KEY_SUMMARY] = _rgb(summary)
    log_run_images(mlflow.active_run().info.run_id, images, step=step or 0)


def _rgb(path: Path):
    """A written PNG file as an RGB Pillow image, read whole (the file is closed)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


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
