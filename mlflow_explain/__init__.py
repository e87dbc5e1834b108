"""mlflow-explain: token attributions of Hugging Face text classifiers as MLflow artifacts.

Example:
    >>> from mlflow_explain import DataConfig, load_dataset
    >>> load_dataset(DataConfig()).labels[0]
    'dokujo-tsushin'
"""

from __future__ import annotations

from mlflow_explain.attribution import (
    get_attribution_method,
    list_attribution_methods,
    register_attribution_method,
)
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.data import Example, TextDataset, load_dataset
from mlflow_explain.errors import (
    ComparisonError,
    ConfigError,
    DataError,
    ExplanationError,
    MlflowExplainError,
    ModelError,
    TrackingError,
)
from mlflow_explain.explainer import explain_examples
from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, WordScore
from mlflow_explain.sampling import sample_examples, sample_hash

__all__ = [
    "ComparisonError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Example",
    "ExplainCallback",
    "ExplainConfig",
    "Explanation",
    "ExplanationError",
    "LabelAttribution",
    "MlflowExplainError",
    "ModelError",
    "TextDataset",
    "TokenScore",
    "TrackingError",
    "TrainConfig",
    "WordScore",
    "explain_examples",
    "get_attribution_method",
    "list_attribution_methods",
    "load_dataset",
    "register_attribution_method",
    "sample_examples",
    "sample_hash",
]


def __getattr__(name: str):
    # The Trainer callback pulls in transformers' training stack: import it on first use.
    if name == "ExplainCallback":
        from mlflow_explain.callback import ExplainCallback

        return ExplainCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
