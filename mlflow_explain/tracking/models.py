"""Models into and out of MLflow: the classifier as a transformers model, the explainer as a pyfunc
model (served over REST, run on Spark), and the summary of a file explained on Spark."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence

from mlflow_explain import artifacts
from mlflow_explain.config import ExplainConfig
from mlflow_explain.errors import ModelError

__all__ = [
    "EXPLAINER_ARTIFACT",
    "EXPLAINER_METADATA_KEY",
    "OUTPUT_TAG",
    "PIP_REQUIREMENTS",
    "explainer_pip_requirements",
    "is_mlflow_uri",
    "load_logged_model",
    "log_explainer_model",
    "log_file_summary",
    "log_model",
]

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
