"""The tracking layer: everything that writes to MLflow (and reads back what it wrote).

No other module of the package starts a run or calls ``mlflow.log_*``; the jobs, the Trainer callback,
the CLI and the Spark job orchestrate and call these functions. Split by what they log:

- :mod:`~mlflow_explain.tracking.runs`: a job's run, params, metrics, tags; files, tables and images
  into a given run (the callback's); the retry budget and error wrapping that every call shares.
- :mod:`~mlflow_explain.tracking.explanations`: a rendered explanation folder, its tables, image series,
  metrics and the experiment's prepared chart view.
- :mod:`~mlflow_explain.tracking.models`: the classifier and the explainer pyfunc model, and the summary
  of a file explained on Spark.
- :mod:`~mlflow_explain.tracking.comparisons`: the runs' tables to compare, and the comparison run.

The files are rendered first, by :mod:`mlflow_explain.render.files` (no MLflow there); its writers
are re-exported here for callers that import them from this package.
"""

from __future__ import annotations

from mlflow_explain.render.files import (
    check_comparison_dir,
    write_comparison,
    write_explanations,
    write_step_tables,
    write_strips,
)
from mlflow_explain.tracking.comparisons import (
    COMPARISON_PARAMS,
    comparison_run_name,
    load_run_tables,
    load_step_table,
    log_comparison,
)
from mlflow_explain.tracking.explanations import (
    log_explanations,
    log_written_explanations,
    sentence_image_keys,
    share_explanation_view,
    with_strips,
)
from mlflow_explain.tracking.models import (
    EXPLAINER_ARTIFACT,
    EXPLAINER_METADATA_KEY,
    OUTPUT_TAG,
    PIP_REQUIREMENTS,
    explainer_pip_requirements,
    is_mlflow_uri,
    load_logged_model,
    log_explainer_model,
    log_file_summary,
    log_model,
)
from mlflow_explain.tracking.runs import (
    TRACKING_BACKOFF,
    TRACKING_RETRIES,
    TRACKING_TIMEOUT,
    active_or_new_run,
    check_tracking_store,
    end_active_run,
    job_run,
    log_metrics,
    log_new_params,
    log_run_files,
    log_run_images,
    log_run_metrics,
    log_run_table,
    log_training_history,
    retry_budget,
    run_experiment_id,
    set_tags,
    tag_run,
    tracking_errors,
)

__all__ = [
    "COMPARISON_PARAMS",
    "EXPLAINER_ARTIFACT",
    "EXPLAINER_METADATA_KEY",
    "OUTPUT_TAG",
    "PIP_REQUIREMENTS",
    "TRACKING_BACKOFF",
    "TRACKING_RETRIES",
    "TRACKING_TIMEOUT",
    "active_or_new_run",
    "check_comparison_dir",
    "check_tracking_store",
    "comparison_run_name",
    "end_active_run",
    "explainer_pip_requirements",
    "is_mlflow_uri",
    "job_run",
    "load_logged_model",
    "load_run_tables",
    "load_step_table",
    "log_comparison",
    "log_explainer_model",
    "log_explanations",
    "log_file_summary",
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
    "write_comparison",
    "write_explanations",
    "write_step_tables",
    "write_strips",
]
