"""Settings for data, training and explanation, as frozen and validated dataclasses.

The CLI options and MLproject parameters map one to one onto these fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from mlflow_explain.encoding import AUTO, check_encoding
from mlflow_explain.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_DATA",
    "INTEGRATION_METHODS",
    "LABEL_SET_SEPARATOR",
    "MAX_EXPLAIN",
    "MAX_SAMPLES",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_TEXT_CHARACTERS",
    "TARGETS",
    "DataConfig",
    "ExplainConfig",
    "TrainConfig",
    "check_seed",
    "config_params",
]

EMBEDDED_DATA = "embedded"
"""Name of the data set shipped with the package (Japanese headlines in nine livedoor categories)."""

DEFAULT_MODEL = "tiny-bert-ja"
"""Name of the embedded default model: a small Japanese BERT trained from scratch."""

TARGETS = ("all", "predicted", "true", "predicted+true")
"""Which labels to attribute for each sentence."""

TEXT_FIELDS = ("title", "body")

LABEL_SET_SEPARATOR = "|"
"""Default ``label_separator``, and the separator that joins a label set into one name (``movie|sports``) in
tables, pages and pictures, whatever separator the data used."""

MAX_STEPS = 4096
"""Most integration steps (``n_steps``, ``max_steps``): the nodes cost O(n) memory and O(n^2) time, and a
pass explains ``n`` interpolated copies of each sentence."""

START_STEPS = 8
"""Default ``n_steps`` with a completeness tolerance: the start that reached tolerance 0.01 on every pair
with the least work (and with every score within 0.01 of a 1024-step integration) on the embedded
default model, against starts of 4, 16, 32 and 50 (``benchmarks/bench_tolerance.py``)."""

FIXED_STEPS = 50
"""Default ``n_steps`` without a tolerance (transformers-interpret's default)."""

MAX_TEXT_CHARACTERS = 100_000
"""Most characters in one text. A text longer than the model's input is truncated to ``max_length``
tokens, but it is tokenized in full first (to count its tokens), in one step that the time budget
cannot interrupt: up to 8 s for 100,000 characters that the Japanese tokenizer cuts into one piece
each (``"x" * 100_000``), and MeCab crashes the process on some texts of 200,000 characters."""

MAX_EXPLAIN = 1000
"""Most sentences a job explains (each is a table section, an HTML row and an image series in the run);
a whole data set goes through ``explain-file``."""

MAX_SEED = 2**32 - 1
"""Largest seed (NumPy's and ``transformers.set_seed``'s bound); seeds are 0 to MAX_SEED."""

MAX_SAMPLES = 1000
"""Most random orders per sentence for ``shapley-sampling`` (each order is one forward pass per token)."""

INTEGRATION_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
"""Integration rules of Integrated Gradients, named as Captum names them (Gauss-Legendre is Captum's default)."""


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how to read it.

    Args:
        data: ``"embedded"`` for the bundled headlines, a CSV / TSV / JSONL file, a folder in the
            livedoor news corpus layout, a folder written by ``datasets.Dataset.save_to_disk`` or a
            Hugging Face Hub data set name. Defaults to ``"embedded"``.
        text_column: Column that holds the text. Defaults to ``"text"``.
        label_column: Column that holds the label. Defaults to ``"label"``.
        eval_data: Optional separate evaluation file; when unset the evaluation split comes from
            ``data`` (its ``split`` column or data set split) or is drawn from it.
        eval_fraction: Share of the data held out when the data has no split. Defaults to 0.2.
        text_field: For livedoor-layout folders, ``"title"`` or ``"body"``. Defaults to ``"title"``.
        sample_seed: Seed of the stratified train / evaluation split when the data has none. It is
            separate from the training seed (:attr:`TrainConfig.seed`), so runs that train with other
            seeds evaluate and explain the same sentences. Defaults to 42.
        encoding: Encoding of the data files (``data``, ``eval_data``, livedoor articles): ``auto``
            detects UTF-8 (with or without a byte order mark), CP932 or EUC-JP in each file, or a Python
            codec name (``utf-8``, ``cp932``, ``shift_jis``, ``euc-jp``, ...) is used as given. See
            :mod:`mlflow_explain.encoding`. Defaults to ``"auto"``.
        multi_label: Whether each text has a set of labels (multi-label classification: a sigmoid per label,
            trained with binary cross-entropy) instead of one. ``None`` (``auto``) reads label sets when the
            label column holds lists (JSON) or a label cell holds ``label_separator`` (CSV / TSV), and one label
            per text otherwise; ``False`` reads every label whole; ``True`` reads label sets even when every
            text has one label. Defaults to None.
        label_separator: What separates the labels of a label set in a text cell (``sports|movie``). Defaults
            to ``"|"``.
    """

    data: str = EMBEDDED_DATA
    text_column: str = "text"
    label_column: str = "label"
    eval_data: str | None = None
    eval_fraction: float = 0.2
    text_field: str = "title"
    sample_seed: int = 42
    encoding: str = AUTO
    multi_label: bool | None = field(default=None, metadata={"none": "auto"})
    label_separator: str = LABEL_SET_SEPARATOR

    def __post_init__(self) -> None:
        if not self.label_separator:
            raise ConfigError(
                "label_separator is empty; give the characters between the labels of a label set, such as '|' or ';'."
            )
        if not str(self.data).strip():
            raise ConfigError("`data` is empty: give a file, a folder, a data set name or 'embedded'.")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError(f"eval_fraction must be between 0 and 1 (exclusive), got {self.eval_fraction}.")
        if self.text_field not in TEXT_FIELDS:
            raise ConfigError(f"text_field must be one of {', '.join(TEXT_FIELDS)}; got {self.text_field!r}.")
        check_encoding(self.encoding)


EMBEDDED_STEPS = 400
"""Optimizer steps the embedded model trains for when no ``epochs`` are given (:meth:`TrainConfig.for_data`)."""

EMBEDDED_EPOCHS = 30.0
"""Most epochs the embedded model trains for when no ``epochs`` are given."""


@dataclass(frozen=True)
class TrainConfig:
    """How to build or fine-tune the classifier.

    Args:
        model: ``"tiny-bert-ja"`` (embedded, trained from scratch), a Hub id or a local model folder.
            Defaults to ``"tiny-bert-ja"``.
        epochs: Training epochs; ``None`` picks 3 for pretrained models and, for the embedded model,
            enough for :data:`EMBEDDED_STEPS` optimizer steps, at most :data:`EMBEDDED_EPOCHS`
            (:meth:`for_data`; 16 on the embedded data set, 30 on small ones).
        batch_size: Per-device batch size. Defaults to 16.
        learning_rate: Peak learning rate; ``None`` picks 1e-3 for the embedded model and 3e-5 otherwise.
        max_length: Longest input in tokens; longer texts are truncated. Defaults to 128.
        seed: Seed for weight initialisation and data order. Defaults to 42.
        explain_every: Also explain the sample during training, on every n-th evaluation (one per
            epoch), with :class:`~mlflow_explain.callback.ExplainCallback`; 0 turns it off. Defaults to 0.
    """

    model: str = DEFAULT_MODEL
    epochs: float | None = field(default=None, metadata={"param": "resolved_epochs"})
    batch_size: int = 16
    learning_rate: float | None = field(default=None, metadata={"param": "resolved_learning_rate"})
    max_length: int = 128
    seed: int = 42
    explain_every: int = 0

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}.")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8 tokens, got {self.max_length}.")
        check_seed("seed", self.seed)
        if self.explain_every < 0:
            raise ConfigError(f"explain_every must be 0 (off) or a number of evaluations, got {self.explain_every}.")

    @property
    def is_embedded(self) -> bool:
        """Whether the embedded default model is built and trained from scratch."""
        return self.model == DEFAULT_MODEL

    @property
    def resolved_epochs(self) -> float:
        """Epochs to train, with the model-dependent default filled in (the embedded model's most:
        :meth:`for_data` sets the epochs of a given training split)."""
        if self.epochs is not None:
            return self.epochs
        return EMBEDDED_EPOCHS if self.is_embedded else 3.0

    def for_data(self, n_train: int) -> TrainConfig:
        """These settings with the embedded model's default epochs resolved for ``n_train`` training texts.

        The embedded model, trained from scratch, needs a number of optimizer steps rather than of
        epochs: on the embedded data set (26 batches an epoch) 16 epochs reach an evaluation
        accuracy of 1.0 where 30 reached 0.98 (the evaluation loss is lowest near epoch 10), while
        48 tagged sentences (3 batches an epoch) need all 30. Given epochs, and pretrained models, are
        left as they are.

        Args:
            n_train: Training texts (all of them, under a distributed launch too).

        Returns:
            A config whose ``epochs`` is set when it was ``None`` for the embedded model; else ``self``.

        Example:
            >>> TrainConfig().for_data(416).epochs, TrainConfig().for_data(36).epochs
            (16.0, 30.0)
        """
        if self.epochs is not None or not self.is_embedded:
            return self
        batches = max(1, math.ceil(n_train / self.batch_size))
        return replace(self, epochs=float(min(EMBEDDED_EPOCHS, max(1, math.ceil(EMBEDDED_STEPS / batches)))))

    @property
    def resolved_learning_rate(self) -> float:
        """Learning rate, with the model-dependent default filled in."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.is_embedded else 3e-5


@dataclass(frozen=True)
class ExplainConfig:
    """Which sentences to explain and how.

    Args:
        n_explain: Number of evaluation sentences to explain, stratified by true label. Defaults to 18.
        n_steps: Integration steps of Integrated Gradients to start with; ``None`` picks
            :data:`START_STEPS` (8) when a ``tolerance`` refines the pairs that need more, and
            :data:`FIXED_STEPS` (50) without one, when the config is made. Defaults to None.
        method: Attribution method, one of :func:`mlflow_explain.list_attribution_methods`.
            Defaults to ``"lig"`` (the batched Layer Integrated Gradients engine).
        target: Labels to attribute: ``"all"``, ``"predicted"``, ``"true"`` or ``"predicted+true"``.
            Defaults to ``"all"``.
        internal_batch_size: Largest number of interpolated inputs run through the model at once.
            ``None`` bounds each pass to 1024 padded tokens on CPU (8192 on GPU), for the native
            methods and ``interpret-lig`` alike. Defaults to None.
        sample_seed: Seed of the deterministic sample of sentences, separate from the training seed
            so that runs with other training seeds, models or methods explain the same sentences.
            Defaults to 42.
        top_k: Tokens shown per class in the summary plot. Defaults to 10.
        integration: Integration rule of Integrated Gradients, one of :data:`INTEGRATION_METHODS`;
            the Riemann rules need ``n_steps >= 2``. Defaults to ``"gausslegendre"``.
        n_samples: Random permutations per sentence for sampling methods (``shapley-sampling``).
            Defaults to 25.
        quality: Also compute the faithfulness metrics of :mod:`mlflow_explain.quality`
            (comprehensiveness, sufficiency and their random references; about 10% of the
            explanation time). Defaults to True.
        randomization: With ``quality``, also run the model-randomisation sanity check: the same
            method explains the scored label again with the classification head re-initialised
            (about a third more explanation time with ``lig``). Defaults to False.
        tolerance: Completeness tolerance of Integrated Gradients in probability units: ``lig``
            integrates each path with ``n_steps`` points first, and a sentence-label pair whose
            ``|convergence delta|`` exceeds it has its path cut into pieces where the error is (each
            piece with ``n_steps // 2`` points, on that pair alone) until it meets it or would use more
            than ``max_steps`` points; pairs still above it are flagged. ``None`` integrates once with
            ``n_steps``. Defaults to 0.01.
        max_steps: Most integration points a refined pair may use; at or below ``n_steps`` nothing is
            refined. Defaults to 512.
        threshold: Decision threshold of multi-label models: a text is predicted to have each label whose
            sigmoid probability is at or above it, and its most probable label when none is. It decides the
            evaluation figures and the labels the ``predicted`` target attributes; single-label models
            (softmax) predict their most probable label and ignore it. Defaults to 0.5.
    """

    n_explain: int = 18
    n_steps: int | None = field(default=None, metadata={"none": "auto"})
    method: str = "lig"
    target: str = "all"
    internal_batch_size: int | None = None
    sample_seed: int = 42
    top_k: int = 10
    integration: str = "gausslegendre"
    n_samples: int = 25
    quality: bool = True
    randomization: bool = False
    tolerance: float | None = field(default=0.01, metadata={"none": "none"})
    max_steps: int = 512
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.n_steps is None:
            object.__setattr__(self, "n_steps", START_STEPS if self.tolerance is not None else FIXED_STEPS)
        if self.tolerance is not None and not self.tolerance > 0:
            raise ConfigError(
                f"tolerance must be a positive completeness error (probability units), got {self.tolerance}; "
                "give none to integrate once at n_steps."
            )
        if not 1 <= self.max_steps <= MAX_STEPS:
            raise ConfigError(f"max_steps must be between 1 and {MAX_STEPS} integration steps, got {self.max_steps}.")
        if not 1 <= self.n_explain <= MAX_EXPLAIN:
            raise ConfigError(
                f"n_explain must be between 1 and {MAX_EXPLAIN} sentences, got {self.n_explain}; explain a whole "
                "data set with explain-file (Spark) instead."
            )
        if not 1 <= self.n_steps <= MAX_STEPS:
            raise ConfigError(
                f"n_steps must be between 1 and {MAX_STEPS} integration steps, got {self.n_steps}; leave it "
                f"to the default ({START_STEPS} with a tolerance, which adds steps where they are needed)."
            )
        if self.target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}; got {self.target!r}.")
        if self.internal_batch_size is not None and self.internal_batch_size < 1:
            raise ConfigError(f"internal_batch_size must be at least 1, got {self.internal_batch_size}.")
        if self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {self.top_k}.")
        if self.integration not in INTEGRATION_METHODS:
            raise ConfigError(f"integration must be one of {', '.join(INTEGRATION_METHODS)}; got {self.integration!r}.")
        if self.integration.startswith("riemann") and self.n_steps < 2:
            raise ConfigError(f"integration {self.integration!r} needs n_steps >= 2, got {self.n_steps}.")
        if self.randomization and not self.quality:
            raise ConfigError("randomization is one of the quality metrics; set quality to true as well.")
        if not 1 <= self.n_samples <= MAX_SAMPLES:
            raise ConfigError(f"n_samples must be between 1 and {MAX_SAMPLES}, got {self.n_samples}.")
        check_seed("sample_seed", self.sample_seed)
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(
                f"threshold must be a probability between 0 and 1 (exclusive), got {self.threshold}; 0.5 is usual."
            )
        # The method name is checked against the registry when explaining, so that backends
        # registered after import are accepted too.


def check_seed(name: str, seed: int) -> None:
    """Refuse a seed that NumPy and ``transformers.set_seed`` cannot take (negative, or above :data:`MAX_SEED`).

    Args:
        name: The setting's name, for the message.
        seed: The seed.

    Raises:
        ConfigError: If the seed is out of range.
    """
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be between 0 and {MAX_SEED}, got {seed}.")


def config_params(*configs: DataConfig | TrainConfig | ExplainConfig) -> dict[str, object]:
    """The run params of settings objects: one per field, named as the field, in field order.

    Booleans are ``true`` / ``false`` (as ``mlflow run`` logs the MLproject parameters), ``None`` is an
    empty string (or the field's own word for it, ``none`` for ``tolerance``), and a field with a
    model-dependent default (``epochs``, ``learning_rate``) is logged with the value used. A field that
    two configs share (``sample_seed``) is logged once.

    Args:
        configs: The settings.

    Returns:
        Param name to value.

    Example:
        >>> config_params(TrainConfig())["epochs"], config_params(ExplainConfig())["tolerance"]
        (30.0, 0.01)
    """
    params: dict[str, object] = {}
    for config in configs:
        for spec in fields(config):
            value = getattr(config, spec.metadata.get("param", spec.name))
            if isinstance(value, bool):
                value = str(value).lower()
            elif value is None:
                value = spec.metadata.get("none", "")
            params.setdefault(spec.name, value)
    return params
