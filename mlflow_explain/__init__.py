"""mlflow-explain: token attributions of Hugging Face text classifiers as MLflow artifacts.

Example:
    >>> from mlflow_explain import DataConfig, load_dataset
    >>> load_dataset(DataConfig()).labels[0]
    'dokujo-tsushin'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.errors import (
    ComparisonError,
    ConfigError,
    DataError,
    ExplanationError,
    MlflowExplainError,
    ModelError,
    TrackingError,
)

if TYPE_CHECKING:
    from mlflow_explain.attribution import (
        get_attribution_method,
        list_attribution_methods,
        register_attribution_method,
    )
    from mlflow_explain.callback import ExplainCallback
    from mlflow_explain.data import Example, TextDataset, load_dataset
    from mlflow_explain.explainer import explain_examples
    from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, WordScore
    from mlflow_explain.sampling import sample_examples, sample_hash

_LAZY = {
    "ExplainCallback": "callback",
    "Example": "data",
    "Explanation": "explanation",
    "LabelAttribution": "explanation",
    "TextDataset": "data",
    "TokenScore": "explanation",
    "WordScore": "explanation",
    "explain_examples": "explainer",
    "get_attribution_method": "attribution",
    "list_attribution_methods": "attribution",
    "load_dataset": "data",
    "register_attribution_method": "attribution",
    "sample_examples": "sampling",
    "sample_hash": "sampling",
}
"""Names imported on first use, from these modules: the settings and errors load without torch, numpy or
transformers (``mlflow-explain --help`` stays fast)."""

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
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
