"""The attribution engine: backends behind one registry.

Native backends (batched over sentences and labels; ``gradients.py``, ``perturbation.py``):

- ``lig``: Layer Integrated Gradients on the word embeddings, the recommended default;
- ``lig-parity``: the same, configured like transformers-interpret (its scores within 1e-3);
- ``saliency``, ``input-x-gradient``: single-gradient methods;
- ``occlusion``, ``shapley-sampling``: perturbation methods, forward passes only.

``interpret-lig`` runs transformers-interpret itself, one sentence and one label at a time.

Every backend returns L2-normalised scores per sentence and label, so that tables, HTML and plots
compare across methods, and convergence deltas in raw output units.

Example:
    >>> "interpret-lig" in list_attribution_methods()
    True
"""

from __future__ import annotations

from collections.abc import Callable

from mlflow_explain.attribution.base import AttributionMethod, EncodedText, RawAttribution, output_activation
from mlflow_explain.errors import ConfigError

__all__ = [
    "AttributionMethod",
    "EncodedText",
    "RawAttribution",
    "Row",
    "check_time_budget",
    "exclusive_use",
    "get_attribution_method",
    "list_attribution_methods",
    "output_activation",
    "probabilities",
    "register_attribution_method",
    "shared_use",
    "time_budget",
]

_REGISTRY: dict[str, Callable[[], AttributionMethod]] = {}


def register_attribution_method(name: str, factory: Callable[[], AttributionMethod]) -> None:
    """Make an attribution backend selectable by name.

    Args:
        name: The name users pass as ``method``.
        factory: Builds the backend; called once per explanation job.
    """
    _REGISTRY[name] = factory


def list_attribution_methods() -> list[str]:
    """Names of the attribution methods that can be chosen with ``method``.

    Returns:
        The registered names, sorted.
    """
    return sorted(_REGISTRY)


def get_attribution_method(name: str) -> AttributionMethod:
    """Build the attribution backend registered under ``name``.

    Args:
        name: A name from :func:`list_attribution_methods`.

    Returns:
        The backend.

    Raises:
        ConfigError: If no backend has that name.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown attribution method {name!r}; choose one of {', '.join(list_attribution_methods())}."
        ) from None
    return factory()


BUILTIN_METHODS = {
    "lig": ("gradients", "LayerIG"),
    "lig-parity": ("gradients", "LayerIGParity"),
    "saliency": ("gradients", "Saliency"),
    "input-x-gradient": ("gradients", "InputXGradient"),
    "occlusion": ("perturbation", "Occlusion"),
    "shapley-sampling": ("perturbation", "ShapleySampling"),
    "interpret-lig": ("interpret", "InterpretLIG"),
}
"""The built-in backends: name -> (module of this package, class). They are imported when first built,
so listing the names (``mlflow-explain --help``) does not load torch."""


def _builtin(module: str, cls: str) -> Callable[[], AttributionMethod]:
    def build() -> AttributionMethod:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{module}"), cls)()

    return build


for _name, (_module, _cls) in BUILTIN_METHODS.items():
    register_attribution_method(_name, _builtin(_module, _cls))


_ENGINE_API = ("Row", "check_time_budget", "exclusive_use", "probabilities", "shared_use", "time_budget")
"""The engine's time budget and model locks, for the callers that run backends, and its forward pass
(``probabilities`` of ``Row`` inputs, which :func:`mlflow_explain.modeling.predict_proba` runs) (imported on
first use: the engine loads torch)."""


def __getattr__(name: str):
    if name in _ENGINE_API:
        from importlib import import_module

        return getattr(import_module(f"{__name__}._engine"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
