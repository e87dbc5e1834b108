"""Everything that writes explanations, models and metrics to MLflow.

This is the only module (with the callback and the CLI) that calls ``mlflow``. Every artifact
is first written to a local folder and then logged; if the tracking store fails, the folder is
kept and its path is given in the error, so explanations already computed are never lost.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow_explain import artifacts
from mlflow_explain.errors import ModelError, TrackingError
from mlflow_explain.explanation import Explanation, summary_metrics

__all__ = [
    "PIP_REQUIREMENTS",
    "is_mlflow_uri",
    "load_logged_model",
    "log_explanations",
    "log_model",
    "log_training_history",
    "write_explanations",
]

logger = logging.getLogger(__name__)

PIP_REQUIREMENTS = [
    "mlflow",
    "transformers",
    "torch",
    "tokenizers",
    "fugashi",
    "unidic-lite",
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
) -> dict[str, Path]:
    """Render explanations into ``folder``: tables, HTML pages and plots.

    Every file is written under a temporary name and renamed into place, so a reader never
    sees half a file.

    Args:
        explanations: The explained sentences.
        folder: Destination folder (created if needed).
        title: Title of the HTML page.
        subtitle: Line under the title (run name, parameters).
        top_k: Tokens per class in the summary plot. Defaults to 10.

    Returns:
        Map from artifact name to the written path.
    """
    import matplotlib.pyplot as plt

    from mlflow_explain.render import (
        attribution_table,
        render_html,
        sentence_table,
        token_importance_figure,
        top_tokens_figure,
    )

    folder = Path(folder)
    (folder / artifacts.PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    table = attribution_table(explanations)
    written = {
        artifacts.TABLE_FILE: _atomic_write(folder / artifacts.TABLE_FILE, _table_json(table)),
        artifacts.TABLE_CSV: _atomic_write(folder / artifacts.TABLE_CSV, table.to_csv(index=False)),
        artifacts.SENTENCES_FILE: _atomic_write(
            folder / artifacts.SENTENCES_FILE, _table_json(sentence_table(explanations))
        ),
        artifacts.HTML_FILE: _atomic_write(
            folder / artifacts.HTML_FILE, render_html(explanations, title=title, subtitle=subtitle)
        ),
        artifacts.WORDS_HTML_FILE: _atomic_write(
            folder / artifacts.WORDS_HTML_FILE,
            render_html(explanations, title=f"{title} (words)", subtitle=subtitle, level="word"),
        ),
    }
    figures = [
        (f"{artifacts.PLOTS_DIR}/sentence_{e.sentence_id:03d}.png", token_importance_figure(e)) for e in explanations
    ]
    figures.append((f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}", top_tokens_figure(explanations, top_k=top_k)))
    for name, figure in figures:
        try:
            path = folder / name
            tmp = path.with_name(f".{path.name}.tmp")
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
            tmp.replace(path)
            written[name] = path
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
    """Log explanations to the active MLflow run: table, CSV, HTML, plots, images and metrics.

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
    import mlflow

    folder = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="mlflow-explain-"))
    written = write_explanations(explanations, folder, title=title, subtitle=subtitle, top_k=top_k)
    metrics = {**summary_metrics(explanations), **(extra_metrics or {})}
    try:
        for name, path in written.items():
            if name == artifacts.TABLE_FILE:
                # log_table registers the table so that mlflow.load_table joins it across runs.
                mlflow.log_table(_read_table(path), artifact_file=f"{artifact_dir}/{name}")
            else:
                mlflow.log_artifact(str(path), artifact_path=f"{artifact_dir}/{Path(name).parent}".rstrip("/."))
        _log_images(written, explanations, step)
        mlflow.log_metrics(metrics, step=step)
    except Exception as err:  # MLflow raises MlflowException, requests and OS errors alike
        raise TrackingError(
            f"could not log explanations to MLflow ({type(err).__name__}: {err}). "
            f"The explanations are kept in {folder}."
        ) from err
    if not keep_dir:
        shutil.rmtree(folder, ignore_errors=True)
    return metrics


def _log_images(written: Mapping[str, Path], explanations: Sequence[Explanation], step: int | None) -> None:
    import mlflow
    from PIL import Image

    for explanation in explanations:
        name = f"{artifacts.PLOTS_DIR}/sentence_{explanation.sentence_id:03d}.png"
        with Image.open(written[name]) as image:
            mlflow.log_image(
                image.convert("RGB"),
                key=artifacts.IMAGE_KEY_SENTENCE.format(sentence_id=explanation.sentence_id),
                step=step or 0,
            )
    with Image.open(written[f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}"]) as image:
        mlflow.log_image(image.convert("RGB"), key=artifacts.IMAGE_KEY_SUMMARY, step=step or 0)


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


def log_model(model, tokenizer, artifact_path: str = artifacts.MODEL_ARTIFACT) -> str:
    """Log the classifier and tokenizer as an MLflow transformers model.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        artifact_path: Model name in the run. Defaults to ``"model"``.

    Returns:
        The logged model's URI.
    """
    import mlflow

    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name=artifact_path,
        task="text-classification",
        pip_requirements=PIP_REQUIREMENTS,
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
