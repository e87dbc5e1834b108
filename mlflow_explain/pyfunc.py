"""The explainer as an MLflow ``pyfunc`` model: a DataFrame of texts in, one explanation per row out.

MLflow serves a ``pyfunc`` model over REST (``mlflow models serve``) and runs it on Spark
(``mlflow.pyfunc.spark_udf``); :class:`ExplainerModel` is that model. It loads the classifier
once per process (:meth:`ExplainerModel.load_context`) and explains each incoming batch with one
call to :func:`~mlflow_explain.pipeline.explain_sample`, which batches inside the attribution
backend. :func:`mlflow_explain.tracking.log_explainer_model` logs it.

Input: a DataFrame with a text column and, optionally, a true-label column (names chosen when the
model is logged). Params, per request: ``method``, ``n_steps``, ``target``, ``level`` and
``time_budget`` (:data:`PARAM_TYPES`). Output, one row per input row: :data:`OUTPUT_COLUMNS`.

Limits per call (a served request gets HTTP 400 naming the bound, before any work): at most
:data:`MAX_ROWS` rows, :data:`MAX_TEXT_CHARACTERS` characters in a text and :data:`MAX_CHARACTERS`
characters of text in all; ``n_steps`` within
:data:`~mlflow_explain.config.MAX_STEPS`. The work of a call stops after ``time_budget`` seconds
(HTTP 504), so a worker never explains for long after its client has gone: inside ``predict`` the
model cannot tell whether the client is still connected (MLflow's server hands it a parsed
DataFrame, in a thread of its own), so the budget is what stops it. The worker then answers the
next request as usual.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import mlflow.pyfunc
import pandas as pd

from mlflow_explain.attribution import list_attribution_methods, output_activation, time_budget
from mlflow_explain.config import LABEL_SET_SEPARATOR, MAX_TEXT_CHARACTERS, TARGETS, ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.errors import ConfigError, ExplanationError, TimeBudgetExceeded
from mlflow_explain.explanation import Explanation

__all__ = [
    "CLASSIFIER_ARTIFACT",
    "DEFAULT_METHOD",
    "DEFAULT_TIME_BUDGET",
    "LEVELS",
    "MAX_CHARACTERS",
    "MAX_ROWS",
    "MAX_TEXT_CHARACTERS",
    "MAX_TIME_BUDGET",
    "OUTPUT_COLUMNS",
    "PARAM_TYPES",
    "SPARK_RESULT_TYPE",
    "ExplainerModel",
    "explain_frame",
]

logger = logging.getLogger(__name__)

CLASSIFIER_ARTIFACT = "classifier"
"""Key of the model artifact that holds the classifier and tokenizer (``save_pretrained`` folder)."""

DEFAULT_METHOD = "lig"
"""Default attribution method of the explainer: the batched Layer Integrated Gradients backend."""

LEVELS = ("token", "word")
"""Granularity of the output: input tokens (special tokens included) or words (pieces merged)."""

PARAM_TYPES = {"method": "string", "n_steps": "long", "target": "string", "level": "string", "time_budget": "double"}
"""The model's params (MLflow types); callers pass them per request or per Spark UDF."""

MAX_ROWS = 1000
"""Most rows per call (served request or Spark batch); split larger inputs into several requests."""

MAX_CHARACTERS = 10_000_000
"""Most characters of text per call, all rows together (about 10 MB of ASCII text, 30 MB of Japanese in UTF-8)."""

DEFAULT_TIME_BUDGET = 15.0
"""Default of the ``time_budget`` param, in seconds. The budget is checked between steps, the
longest of which take up to about 9 s (tokenizing a text of :data:`MAX_TEXT_CHARACTERS`; the
Gauss-Legendre nodes that Captum computes for ``interpret-lig`` at 4096 steps), so a served request
answers within 30 s even then (and within MLflow's own request timeout,
``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``, 60 s by default)."""

MAX_TIME_BUDGET = 3600.0
"""Largest ``time_budget``, in seconds. A served request with more than the server's request timeout
gets MLflow's 504 at that timeout while its worker goes on until the budget; raise that timeout too."""

OUTPUT_COLUMNS = {
    "predicted_label": "string",
    "predicted_probability": "double",
    "attributed_labels": "array<string>",
    "tokens": "array<string>",
    "scores": "array<array<double>>",
    "convergence_deltas": "array<double>",
    "truncated": "boolean",
    "attributions_json": "string",
}
"""Output columns and their types (Spark DDL), in order.

- ``attributed_labels``: the labels attributed, in the order of ``scores`` (label order for ``all``);
- ``tokens``: the input tokens (``level="token"``, ``[CLS]``/``[SEP]`` included) or the words;
- ``scores``: one list per attributed label, aligned with ``tokens``;
- ``convergence_deltas``: completeness error per attributed label (empty for methods without one);
- ``attributions_json``: the same as one JSON string, for sinks that need a flat type, with each label's
  integration steps (``n_steps``) and whether it met the completeness tolerance (``converged``).

A row whose text is missing or blank gets nulls and empty lists.
"""

SPARK_RESULT_TYPE = ", ".join(f"{name} {ddl}" for name, ddl in OUTPUT_COLUMNS.items())
"""``result_type`` for :func:`mlflow.pyfunc.spark_udf`: a struct of :data:`OUTPUT_COLUMNS`."""


class ExplainerModel(mlflow.pyfunc.PythonModel):
    """Explain a classifier's predictions for each row of a DataFrame.

    The constructor only stores settings; the classifier is loaded by :meth:`load_context`.

    Args:
        text_column: Input column holding the text. Defaults to ``"text"``.
        label_column: Optional input column holding the true label (used by the ``true`` and
            ``predicted+true`` targets). Defaults to ``"label"``.
        max_length: Longest input in tokens; longer texts are truncated and flagged. Defaults to
            the classifier's maximum.
        method: Default of the ``method`` param. Defaults to :data:`DEFAULT_METHOD`.
        n_steps: Default of the ``n_steps`` param. Defaults to 50.
        target: Default of the ``target`` param: ``all``, ``predicted``, ``true``,
            ``predicted+true`` or a label name. Defaults to ``"predicted"``.
        level: Default of the ``level`` param, one of :data:`LEVELS`. Defaults to ``"token"``.
        time_budget: Default of the ``time_budget`` param: seconds after which a call stops with an
            error, more than 0 and at most :data:`MAX_TIME_BUDGET`. Defaults to
            :data:`DEFAULT_TIME_BUDGET`.
        config: The explanation settings that the params do not cover (``integration``,
            ``tolerance``, ``max_steps``, ``n_samples``, ``internal_batch_size``), as the run that
            logged the explainer used them. Defaults to :class:`ExplainConfig`'s defaults.

    Raises:
        ConfigError: If a default is out of range or names an unknown method or level.

    Example:
        >>> explainer = ExplainerModel(text_column="sentence", n_steps=20)
        >>> explainer.defaults["target"]
        'predicted'
    """

    def __init__(
        self,
        text_column: str = "text",
        label_column: str | None = "label",
        max_length: int | None = None,
        method: str = DEFAULT_METHOD,
        n_steps: int = 50,
        target: str = "predicted",
        level: str = "token",
        time_budget: float = DEFAULT_TIME_BUDGET,
        config: ExplainConfig | None = None,
    ) -> None:
        if label_column == text_column:
            raise ConfigError(f"the text and label columns must differ; both are {text_column!r}.")
        self.text_column = text_column
        self.label_column = label_column
        self.max_length = max_length
        self.defaults = {
            "method": method,
            "n_steps": n_steps,
            "target": target,
            "level": level,
            "time_budget": _time_budget(time_budget),
        }
        self.config = config or ExplainConfig()
        _explain_settings(self.defaults, labels=None, base=self.config)
        self._model = None
        self._tokenizer = None

    def signature(self):
        """The MLflow model signature: input columns, output columns and params with their defaults.

        Returns:
            A :class:`mlflow.models.ModelSignature`.
        """
        from mlflow.models import ModelSignature
        from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

        inputs = [ColSpec("string", self.text_column)]
        if self.label_column:
            inputs.append(ColSpec("string", self.label_column, required=False))
        return ModelSignature(
            inputs=Schema(inputs),
            outputs=Schema([ColSpec(_mlflow_type(ddl), name) for name, ddl in OUTPUT_COLUMNS.items()]),
            params=ParamSchema([ParamSpec(name, kind, self.defaults[name]) for name, kind in PARAM_TYPES.items()]),
        )

    def load_context(self, context) -> None:
        """Load the classifier and tokenizer from the model's ``classifier`` artifact, once per process.

        Args:
            context: MLflow's ``PythonModelContext``.
        """
        from mlflow_explain.modeling import load_pretrained

        self._model, self._tokenizer = load_pretrained(context.artifacts[CLASSIFIER_ARTIFACT])
        self._model.eval()

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Explain each row of ``model_input``, within the bounds and the time budget.

        The budget is how a served worker whose client has gone stops: ``predict`` cannot see the
        connection (MLflow's server parses the request and calls it in a thread of its own), so
        the work stops when ``time_budget`` runs out, not when the client leaves.

        Args:
            context: MLflow's ``PythonModelContext``.
            model_input: A DataFrame with the text column (and optionally the label column).
            params: Overrides of ``method``, ``n_steps``, ``target``, ``level`` and ``time_budget``.

        Returns:
            One row per input row with the columns of :data:`OUTPUT_COLUMNS`.

        Raises:
            MlflowException: ``INVALID_PARAMETER_VALUE`` (HTTP 400 when served) for an unknown
                method, level or label, a param out of range, a missing text column, or input over
                :data:`MAX_ROWS`, :data:`MAX_TEXT_CHARACTERS` or :data:`MAX_CHARACTERS`;
                ``DEADLINE_EXCEEDED`` (HTTP 504) when the work runs past ``time_budget``;
                ``INVALID_PARAMETER_VALUE`` with the backend's reason when it cannot explain the inputs.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED, INVALID_PARAMETER_VALUE

        if self._model is None:
            raise MlflowException("the explainer is not loaded; load it with mlflow.pyfunc.load_model(...)")
        try:
            return explain_frame(
                self._model,
                self._tokenizer,
                model_input,
                {**self.defaults, **(params or {})},
                text_column=self.text_column,
                label_column=self.label_column,
                max_length=self.max_length,
                base=getattr(self, "config", None),  # explainers logged before it existed have none
            )
        except ConfigError as err:
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err
        except TimeBudgetExceeded as err:
            raise MlflowException(_budget_message(err.seconds), error_code=DEADLINE_EXCEEDED) from err
        except ExplanationError as err:  # the backend could not explain these inputs: say why, in one line
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err


def _budget_message(seconds: float) -> str:
    return (
        f"the request ran past its time budget of {seconds:g} s (param time_budget) and was stopped; "
        f"send fewer rows or fewer steps per request, or raise time_budget (at most {MAX_TIME_BUDGET:g} s)."
    )


def explain_frame(
    model,
    tokenizer,
    frame: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    max_length: int | None = None,
    base: ExplainConfig | None = None,
) -> pd.DataFrame:
    """Explain each row of a DataFrame in one batched call; the work behind :class:`ExplainerModel`.

    Threads may call it with one model and tokenizer at once.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        frame: Rows with a text column and optionally a true-label column.
        params: ``method``, ``n_steps``, ``target`` and ``level``, and optionally ``time_budget``
            (seconds; defaults to :data:`DEFAULT_TIME_BUDGET`).
        text_column: Column holding the text. Defaults to ``"text"``.
        label_column: Column holding the true label, used when present; for a multi-label model, the true
            label set written ``movie|sports``. Defaults to ``"label"``.
        max_length: Longest input in tokens. Defaults to the classifier's maximum.
        base: The settings the params override (integration rule, tolerance, ...). Defaults to
            :class:`ExplainConfig`'s defaults.

    Returns:
        One row per input row, columns :data:`OUTPUT_COLUMNS`; rows without text get nulls
        (``predicted_label`` and ``predicted_probability`` have object dtype and hold ``None``,
        so that they are ``null`` in JSON rather than ``NaN``).

    Raises:
        ConfigError: For an unknown method, level or target label, a param out of range, a
            missing text column, or more than :data:`MAX_ROWS` rows, :data:`MAX_TEXT_CHARACTERS`
            characters in a text or :data:`MAX_CHARACTERS` in all.
        ExplanationError: If the attribution backend fails.
        TimeBudgetExceeded: If the work runs past ``time_budget`` (an ``ExplanationError``).
    """
    from mlflow_explain.pipeline import explain_sample

    if text_column not in frame.columns:
        raise ConfigError(f"the input has no text column {text_column!r}; its columns: {', '.join(map(str, frame))}.")
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    settings = _explain_settings(params, labels, base=base)
    texts = [None if _missing(t) else str(t) for t in frame[text_column]]
    _check_size(texts)
    if label_column in frame.columns:
        true_labels = [None if _missing(x) else str(x) for x in frame[label_column]]
    else:
        true_labels = [None] * len(frame)
    rows = _rows_with_text(texts, text_column)
    multi_label = output_activation(model) == "sigmoid"
    examples = [_example(texts[i], settings.target_label or true_labels[i], multi_label) for i in rows]
    with time_budget(settings.time_budget):
        explained = (
            explain_sample(
                model, tokenizer, examples, settings.config, max_length=max_length, quality=False, progress=False
            ).explanations
            if examples
            else []
        )
    records = [_empty_row() for _ in texts]
    for i, explanation in zip(rows, explained, strict=True):
        records[i] = _row(explanation, settings.level)
    return _frame(records)


def _example(text: str, label: str | None, multi_label: bool) -> Example:
    """A row to explain; a multi-label model's true label is a label set written ``movie|sports``."""
    labels = [x.strip() for x in label.split(LABEL_SET_SEPARATOR) if x.strip()] if multi_label and label else []
    return Example.multi(text, labels) if labels else Example(text, label)


def _rows_with_text(texts: Sequence[str | None], text_column: str) -> list[int]:
    """Positions of the rows that have a text; the others are counted in a warning."""
    rows = [i for i, text in enumerate(texts) if text is not None]
    if len(rows) < len(texts):
        logger.warning(
            "%d of %d rows have no text in column %r; their results are empty.",
            len(texts) - len(rows),
            len(texts),
            text_column,
        )
    return rows


_NULLABLE_COLUMNS = ("predicted_label", "predicted_probability")
"""Output columns that are null for rows without text."""


def _frame(records: Sequence[dict]) -> pd.DataFrame:
    """The output DataFrame, whose nullable columns hold ``None`` (JSON ``null``).

    pandas would store a missing float, or a missing string (pandas 3's ``str`` dtype), as NaN,
    which MLflow's server writes as a bare ``NaN``: not JSON.
    """
    out = pd.DataFrame.from_records(records, columns=list(OUTPUT_COLUMNS))
    for name in _NULLABLE_COLUMNS:
        out[name] = pd.Series([r[name] for r in records], dtype=object)
    return out


def _check_size(texts: Sequence[str | None]) -> None:
    """Refuse over :data:`MAX_ROWS` rows, :data:`MAX_TEXT_CHARACTERS` in a text or :data:`MAX_CHARACTERS` in all."""
    if len(texts) > MAX_ROWS:
        raise ConfigError(
            f"the request has {len(texts)} rows, more than the {MAX_ROWS} rows explained per request (MAX_ROWS); "
            "split it into smaller requests."
        )
    lengths = [0 if t is None else len(t) for t in texts]
    for row, length in enumerate(lengths):
        if length > MAX_TEXT_CHARACTERS:
            raise ConfigError(
                f"row {row} (counting from 0) holds a text of {length} characters, more than the "
                f"{MAX_TEXT_CHARACTERS} explained per text (MAX_TEXT_CHARACTERS); the model reads only its first "
                "tokens, so send the beginning of the text."
            )
    characters = sum(lengths)
    if characters > MAX_CHARACTERS:
        raise ConfigError(
            f"the request holds {characters} characters of text, more than the {MAX_CHARACTERS} explained per "
            "request (MAX_CHARACTERS); split it into smaller requests."
        )


def _empty_row() -> dict:
    return {
        "predicted_label": None,
        "predicted_probability": None,
        "attributed_labels": [],
        "tokens": [],
        "scores": [],
        "convergence_deltas": [],
        "truncated": False,
        "attributions_json": "null",
    }


def _row(explanation: Explanation, level: str) -> dict:
    if level == "word":
        tokens = [w.word for w in explanation.attributions[0].words]
        scores = [[w.score for w in a.words] for a in explanation.attributions]
    else:
        tokens = [t.token for t in explanation.attributions[0].tokens]
        scores = [[t.score for t in a.tokens] for a in explanation.attributions]
    deltas = [a.convergence_delta for a in explanation.attributions if a.convergence_delta is not None]
    attributions = [
        {
            "label": a.label,
            "probability": a.probability,
            "convergence_delta": a.convergence_delta,
            "n_steps": a.n_steps,
            "converged": a.converged,
            "scores": s,
        }
        for a, s in zip(explanation.attributions, scores, strict=True)
    ]
    return {
        "predicted_label": explanation.predicted_label,
        "predicted_probability": explanation.predicted_probability,
        "attributed_labels": list(explanation.attributed_labels),
        "tokens": tokens,
        "scores": scores,
        "convergence_deltas": deltas,
        "truncated": explanation.truncated,
        "attributions_json": json.dumps(
            {"level": level, "tokens": tokens, "attributions": attributions}, ensure_ascii=False
        ),
    }


class _Settings(NamedTuple):
    """Validated params of one call."""

    config: ExplainConfig
    target_label: str | None
    """A label named as ``target`` (then ``config.target`` is ``"true"``), or ``None``."""
    level: str
    time_budget: float


def _explain_settings(
    params: Mapping[str, Any], labels: Sequence[str] | None, base: ExplainConfig | None = None
) -> _Settings:
    """Validate the params over ``base``; a label-name target becomes ``target="true"`` with that label as the true one.

    With ``labels=None`` (no classifier loaded yet) a target that is not a keyword is accepted as a label.
    A missing ``time_budget`` (explainers logged before it existed) is :data:`DEFAULT_TIME_BUDGET`.
    """
    method, level, target = str(params["method"]), str(params["level"]), str(params["target"])
    if method not in list_attribution_methods():
        raise ConfigError(
            f"unknown attribution method {method!r}; choose one of {', '.join(list_attribution_methods())}."
        )
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}; got {level!r}.")
    target_label = None
    if target not in TARGETS:
        if labels is not None and target not in labels:
            raise ConfigError(
                f"target {target!r} is neither one of {', '.join(TARGETS)} nor a label of the model; "
                f"the labels are {', '.join(labels)}."
            )
        target_label, target = target, "true"
    config = replace(base or ExplainConfig(), method=method, n_steps=int(params["n_steps"]), target=target)
    return _Settings(config, target_label, level, _time_budget(params.get("time_budget", DEFAULT_TIME_BUDGET)))


def _time_budget(value: object) -> float:
    """``time_budget`` as seconds, checked to lie in (0, :data:`MAX_TIME_BUDGET`]."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIME_BUDGET:
        raise ConfigError(
            f"time_budget must be more than 0 and at most {MAX_TIME_BUDGET:g} seconds, got {value!r}; "
            f"{DEFAULT_TIME_BUDGET:g} is the default."
        )
    return seconds


def _missing(value: object) -> bool:
    return not value.strip() if isinstance(value, str) else bool(pd.isna(value))


def _mlflow_type(ddl: str):
    """MLflow column type of a Spark DDL type such as ``array<array<double>>``."""
    from mlflow.types.schema import Array

    if ddl.startswith("array<") and ddl.endswith(">"):
        return Array(_mlflow_type(ddl[len("array<") : -1]))
    return ddl
