"""Comparison across runs and steps (``mlflow-explain compare``): load the runs' tables, log the result."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_explain import artifacts
from mlflow_explain.errors import TrackingError
from mlflow_explain.render.files import read_table, write_comparison

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_explain.compare import Comparison, Version

__all__ = ["COMPARISON_PARAMS", "comparison_run_name", "load_run_tables", "load_step_table", "log_comparison"]

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
                read_table(Path(client.download_artifacts(run_id, f"{folder}/{artifacts.TABLE_FILE}", tmp)))
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
                    mlflow.log_table(read_table(path), artifact_file=f"{artifacts.COMPARISON_DIR}/{name}")
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
