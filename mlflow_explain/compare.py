"""Compare the token attributions of several runs, or of the steps of one run.

Everything here is pure: attribution tables (the long table of
:data:`~mlflow_explain.explanation.TABLE_COLUMNS`) and a description of each compared
:class:`Version` go in, a :class:`Comparison` of plain DataFrames comes out.
:mod:`mlflow_explain.tracking` loads the tables and logs the result.

How two versions of one sentence are compared:

* **Sentences** are matched on their text (the n-th occurrence of a text with the n-th), so
  runs whose samples differ (``force=True``) still compare the sentences they share. Only
  sentences present in every version are compared.
* **Label.** The attribution towards the reference (first) version's predicted label when every
  version attributed that label (``label_basis == "reference"``), else each version's own
  predicted label, or its first attributed label when it did not attribute its prediction
  (``label_basis == "own"``).
* **Units.** Special tokens are left out. When every version has the same tokens, tokens are
  compared one to one (``level == "token"``); else, when the words are the same (tokenizers that
  split words differently), words, each scored with the sum of its pieces (``"word"``); else the
  sentence is compared on token strings only (``"set"``): Spearman and the mean difference are
  NaN and the top-k overlap is taken between the sets of top-k token strings.
* **Figures** for each pair of versions: Spearman's rank correlation of the unit scores (average
  ranks for ties; NaN when fewer than two units or a version scores every unit alike), the
  top-k overlap ``|top_k(a) ∩ top_k(b)| / k`` where top-k ranks units by their *signed* score
  towards the label (the units that support it most, as the per-class plot shows them) and ``k`` is
  ``top_k`` capped at the number of units, the mean absolute score difference, whether the
  predicted label changed, and the change of the predicted label's probability.

Pairs are the reference against every other version and, for steps, each step against the
previous one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from mlflow_explain import artifacts
from mlflow_explain.errors import ComparisonError, ConfigError
from mlflow_explain.explanation import COMPARED_COLUMNS

__all__ = [
    "AGREEMENT_COLUMNS",
    "LEVELS",
    "SENTENCE_COLUMNS",
    "SUMMARY_COLUMNS",
    "UNIT_COLUMNS",
    "Comparison",
    "Version",
    "compare_runs",
    "compare_steps",
    "spearman",
    "top_k_overlap",
]

logger = logging.getLogger(__name__)

LEVELS = ("token", "word", "set")
"""How a sentence's versions are lined up: token by token, word by word, or as sets of token strings."""

REFERENCE, PREVIOUS = "reference", "previous"

SENTENCE_COLUMNS = (
    "sentence",
    "version",
    "sentence_id",
    "text",
    "true_label",
    "predicted_label",
    "predicted_probability",
    "compared_label",
    "label_basis",
    "level",
)
"""Columns of :attr:`Comparison.sentences`: one row per compared sentence x version."""

UNIT_COLUMNS = ("sentence", "version", "unit", "text", "score")
"""Columns of :attr:`Comparison.units`: the compared tokens or words, in sentence order."""

AGREEMENT_COLUMNS = (
    "sentence",
    "sentence_id",
    "text",
    "relation",
    "version_a",
    "version_b",
    "name_a",
    "name_b",
    "level",
    "label_basis",
    "label_a",
    "label_b",
    "predicted_a",
    "predicted_b",
    "prediction_changed",
    "probability_a",
    "probability_b",
    "probability_change",
    "spearman",
    "top_k_overlap",
    "mean_abs_difference",
)
"""Columns of :attr:`Comparison.agreement`: one row per sentence x compared pair."""

SUMMARY_COLUMNS = (
    "relation",
    "version_a",
    "version_b",
    "name_a",
    "name_b",
    "n_sentences",
    "spearman_mean",
    "top_k_overlap_mean",
    "prediction_changed_share",
    "probability_change_mean",
)
"""Columns of :attr:`Comparison.summary`: one row per compared pair, means over its sentences."""

_FIGURES = ("spearman_mean", "top_k_overlap_mean", "prediction_changed_share")


@dataclass(frozen=True)
class Version:
    """One compared version of the explanations: a run, or one step of a run.

    Args:
        name: Display name, e.g. ``"bold-fox-12 (3f2a9c1e)"`` or ``"step 40 (epoch 2)"``.
        run_id: The MLflow run it comes from. Defaults to ``""``.
        params: Key parameters to show next to it (model, method, n_steps, ...).
        sample_hash: The run's sample fingerprint (tag ``mlflow_explain.sample_hash``), or ``None``.
        step: Training step, for the steps of one run.
        epoch: Training epoch, for the steps of one run.
        metrics: Run-level figures to show next to it, such as the quality metrics
            (``quality_comprehensiveness``, ...).
        run_name: The MLflow run's name alone (for the comparison run's name). Defaults to ``""``.
    """

    name: str
    run_id: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    sample_hash: str | None = None
    step: int | None = None
    epoch: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_name: str = ""


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs` or :func:`compare_steps`.

    Version ``0`` is the reference. Sentences are numbered ``0..n-1`` in the reference's order.

    Args:
        kind: ``"runs"`` or ``"steps"``.
        versions: The compared versions, reference first.
        sentences: One row per sentence x version (:data:`SENTENCE_COLUMNS`).
        units: The compared units of each sentence x version (:data:`UNIT_COLUMNS`).
        agreement: One row per sentence x pair (:data:`AGREEMENT_COLUMNS`).
        summary: One row per pair (:data:`SUMMARY_COLUMNS`).
        top_k: The ``k`` of the top-k overlap.
        forced: Whether versions with different samples were compared on purpose.
    """

    kind: str
    versions: tuple[Version, ...]
    sentences: pd.DataFrame
    units: pd.DataFrame
    agreement: pd.DataFrame
    summary: pd.DataFrame
    top_k: int
    forced: bool = False

    @property
    def run_ids(self) -> tuple[str, ...]:
        """The compared run IDs, each once, in order."""
        return tuple(dict.fromkeys(v.run_id for v in self.versions if v.run_id))

    def version_key(self, index: int) -> str:
        """Short name of a version for metric names: ``run<index>`` or ``step<step>``."""
        version = self.versions[index]
        return f"step{version.step}" if version.step is not None else f"run{index}"

    @property
    def metrics(self) -> dict[str, float]:
        """Summary figures under stable MLflow metric names.

        Per pair, ``spearman_mean``, ``top_k_overlap_mean`` and ``prediction_changed_share`` with the
        suffix ``_vs_<key>`` (against the reference) or ``_<key_a>_to_<key_b>`` (against the previous
        step), where a key is :meth:`version_key`; the same three figures without suffix over every
        sentence of every reference pair; ``n_sentences`` and ``n_versions``.
        """
        metrics: dict[str, float] = {
            "n_sentences": float(self.sentences.sentence.nunique()),
            "n_versions": float(len(self.versions)),
        }
        for row in self.summary.itertuples():
            suffix = (
                f"vs_{self.version_key(row.version_b)}"
                if row.relation == REFERENCE
                else f"{self.version_key(row.version_a)}_to_{self.version_key(row.version_b)}"
            )
            for figure in _FIGURES:
                metrics[f"{figure}_{suffix}"] = float(getattr(row, figure))
        overall = _pair_figures(self.agreement[self.agreement.relation == REFERENCE])
        metrics.update({figure: overall[figure] for figure in _FIGURES})
        return metrics

    def most_changed(self, n: int = 3) -> list[int]:
        """The ``n`` sentences whose attributions moved most from the reference.

        A sentence's change is its largest mean absolute score difference against the reference;
        sentences that could not be lined up (level ``"set"``) are left out.

        Args:
            n: How many sentences. Defaults to 3.

        Returns:
            Sentence numbers, largest change first.
        """
        pairs = self.agreement[(self.agreement.relation == REFERENCE) & self.agreement.mean_abs_difference.notna()]
        change = pairs.groupby("sentence").mean_abs_difference.max()
        return [int(s) for s in change.sort_values(ascending=False, kind="stable").index[:n]]


class _Sentence(NamedTuple):
    """One sentence of one version, read from the attribution table."""

    sentence_id: int
    text: str
    true_label: str | None
    predicted_label: str
    predicted_probability: float
    labels: dict[str, pd.DataFrame]  # attributed label -> its non-special token rows, by position


def compare_runs(
    versions: Sequence[Version], tables: Sequence[pd.DataFrame], *, top_k: int = 5, force: bool = False
) -> Comparison:
    """Compare the attribution tables of several runs, the first one being the reference.

    Args:
        versions: One description per run, reference first.
        tables: The runs' attribution tables, in the same order.
        top_k: Units per sentence in the top-k overlap. Defaults to 5.
        force: Compare runs whose samples differ (their ``sample_hash`` differs or is missing),
            on the sentences whose text they share. Defaults to ``False``.

    Returns:
        The comparison, with the reference compared against every other run.

    Raises:
        ConfigError: Fewer than two runs, a run given twice, or ``top_k`` below 1.
        ComparisonError: The samples differ and ``force`` is off, a table lacks columns, or the
            runs have no sentence in common.

    Example:
        >>> comparison = compare_runs([Version("a"), Version("b")], [table_a, table_b])  # doctest: +SKIP
        >>> comparison.metrics["spearman_mean_vs_run1"]  # doctest: +SKIP
        0.93
    """
    run_ids = [v.run_id for v in versions if v.run_id]
    duplicates = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if duplicates:
        raise ConfigError(f"run {duplicates[0]} is given more than once; give each run once")
    if not force:
        _check_same_sample(versions)
    return _compare("runs", versions, tables, top_k=top_k, forced=force, consecutive=False)


def compare_steps(
    run: Version,
    table: pd.DataFrame,
    step_metrics: Mapping[int, Mapping[str, float]] | None = None,
    *,
    top_k: int = 5,
) -> Comparison:
    """Compare the steps of one run's step table, the first step being the reference.

    Args:
        run: The run; each step becomes a copy named ``"step <step> (epoch <epoch>)"``.
        table: The Trainer callback's table: the attribution table plus ``step`` and ``epoch``.
        step_metrics: Each step's own figures (its quality metrics), shown instead of the run's;
            a step without an entry shows none. Defaults to None (every step shows the run's).
        top_k: Units per sentence in the top-k overlap. Defaults to 5.

    Returns:
        The comparison, with the first step compared against every other step and each step
        against the previous one.

    Raises:
        ComparisonError: The table has no ``step``/``epoch`` columns or fewer than two steps.
        ConfigError: ``top_k`` is below 1.
    """
    missing = [c for c in artifacts.STEP_COLUMNS if c not in table.columns]
    if missing:
        raise ComparisonError(
            f"the step table of {run.name} has no {', '.join(missing)} column; "
            "it must be the Trainer callback's table (one block of rows per evaluation step)"
        )
    steps = sorted(int(s) for s in table.step.unique())
    if len(steps) < 2:
        raise ComparisonError(
            f"{run.name} explained its probe sentences at {len(steps)} step(s); comparing steps needs at "
            "least two evaluations (evaluate every epoch, or more often)"
        )
    versions, tables = [], []
    for step in steps:
        rows = table[table.step == step]
        epoch = float(rows.epoch.iloc[0])
        metrics = run.metrics if step_metrics is None else dict(step_metrics.get(step, {}))
        name = f"step {step} (epoch {round(epoch, 2):g})"
        versions.append(replace(run, name=name, step=step, epoch=epoch, metrics=metrics))
        tables.append(rows)
    return _compare("steps", versions, tables, top_k=top_k, forced=False, consecutive=True)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation, ties given their average rank.

    Args:
        a: Scores of the units in one version.
        b: Scores of the same units in another version, same order.

    Returns:
        The correlation in [-1, 1], or NaN when there are fewer than two units or either side
        scores every unit alike.

    Example:
        >>> spearman([0.1, 0.5, 0.3], [1.0, 3.0, 2.0])
        1.0
    """
    if len(a) != len(b):
        raise ValueError(f"spearman needs two sequences of the same length; got {len(a)} and {len(b)}")
    if len(a) < 2:
        return math.nan
    ranks_a = pd.Series(a, dtype="float64").rank().to_numpy()
    ranks_b = pd.Series(b, dtype="float64").rank().to_numpy()
    if np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return math.nan
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def top_k_overlap(a: Sequence[float], b: Sequence[float], k: int) -> float:
    """Share of the top-``k`` units (by signed score) that two versions have in common.

    Args:
        a: Scores of the units in one version.
        b: Scores of the same units in another version, same order.
        k: Units to take from each; capped at the number of units.

    Returns:
        ``|top_k(a) ∩ top_k(b)| / k``, in [0, 1], or NaN when there are no units.

    Example:
        >>> top_k_overlap([0.9, 0.8, 0.1, 0.0], [0.9, 0.0, 0.8, 0.1], k=2)
        0.5
    """
    if len(a) != len(b):
        raise ValueError(f"top_k_overlap needs two sequences of the same length; got {len(a)} and {len(b)}")
    return _set_overlap(_top(range(len(a)), a, k), _top(range(len(b)), b, k), min(k, len(a)))


def _compare(
    kind: str,
    versions: Sequence[Version],
    tables: Sequence[pd.DataFrame],
    *,
    top_k: int,
    forced: bool,
    consecutive: bool,
) -> Comparison:
    if len(versions) != len(tables):
        raise ValueError(f"got {len(versions)} versions but {len(tables)} tables")
    if len(versions) < 2:
        raise ConfigError(f"a comparison needs at least two {kind}; got {len(versions)}")
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1; got {top_k}")
    read = [_read_sentences(version, table) for version, table in zip(versions, tables, strict=True)]
    keys = _shared_keys(versions, read)
    pairs = [(REFERENCE, 0, i) for i in range(1, len(versions))]
    if consecutive:
        pairs += [(PREVIOUS, i - 1, i) for i in range(2, len(versions))]
    sentence_rows, unit_rows, agreement_rows = [], [], []
    for number, key in enumerate(keys):
        rows = _sentence_rows(number, [sentences[key] for sentences in read], versions, pairs, top_k)
        sentence_rows += rows[0]
        unit_rows += rows[1]
        agreement_rows += rows[2]
    agreement = pd.DataFrame(agreement_rows, columns=list(AGREEMENT_COLUMNS))
    return Comparison(
        kind=kind,
        versions=tuple(versions),
        sentences=pd.DataFrame(sentence_rows, columns=list(SENTENCE_COLUMNS)),
        units=pd.DataFrame(unit_rows, columns=list(UNIT_COLUMNS)),
        agreement=agreement,
        summary=_summary(agreement, versions, pairs),
        top_k=top_k,
        forced=forced,
    )


def _shared_keys(versions: Sequence[Version], read: Sequence[dict]) -> list:
    """The sentences every version explained, in the reference's order; warns when some are left out."""
    keys = [key for key in read[0] if all(key in sentences for sentences in read[1:])]
    if not keys:
        raise ComparisonError(
            "the compared versions have no sentence in common (sentences are matched on their text); "
            "compare runs that explained the same sample"
        )
    if any(len(sentences) > len(keys) for sentences in read):
        logger.warning(
            "comparing the %d sentences present in every version; %s",
            len(keys),
            ", ".join(f"{v.name} has {len(s)}" for v, s in zip(versions, read, strict=True)),
        )
    return keys


def _sentence_rows(number: int, found: Sequence, versions: Sequence[Version], pairs: Sequence, top_k: int):
    """One sentence in every version: its sentence rows, lined-up unit rows and agreement rows per pair."""
    labels, basis = _compared_labels(found)
    level, units = _line_up([s.labels[label] for s, label in zip(found, labels, strict=True)])
    sentence_rows, unit_rows = [], []
    for index, (sentence, label) in enumerate(zip(found, labels, strict=True)):
        fields = {f: getattr(sentence, f) for f in _Sentence._fields if f != "labels"}
        sentence_rows.append(
            {
                "sentence": number,
                "version": index,
                **fields,
                "compared_label": label,
                "label_basis": basis,
                "level": level,
            }
        )
        unit_rows += [
            {"sentence": number, "version": index, "unit": u, "text": text, "score": score}
            for u, (text, score) in enumerate(units[index])
        ]
    agreement_rows = [
        {
            "sentence": number,
            "sentence_id": found[0].sentence_id,
            "text": found[0].text,
            "relation": relation,
            "version_a": a,
            "version_b": b,
            "name_a": versions[a].name,
            "name_b": versions[b].name,
            "level": level,
            "label_basis": basis,
            "label_a": labels[a],
            "label_b": labels[b],
            "predicted_a": found[a].predicted_label,
            "predicted_b": found[b].predicted_label,
            "prediction_changed": found[a].predicted_label != found[b].predicted_label,
            "probability_a": found[a].predicted_probability,
            "probability_b": found[b].predicted_probability,
            "probability_change": found[b].predicted_probability - found[a].predicted_probability,
            **_agreement(units[a], units[b], level, top_k),
        }
        for relation, a, b in pairs
    ]
    return sentence_rows, unit_rows, agreement_rows


def _summary(agreement: pd.DataFrame, versions: Sequence[Version], pairs: Sequence) -> pd.DataFrame:
    """One row of figures per compared pair of versions."""
    return pd.DataFrame(
        [
            {
                "relation": relation,
                "version_a": a,
                "version_b": b,
                "name_a": versions[a].name,
                "name_b": versions[b].name,
                **_pair_figures(agreement[(agreement.version_a == a) & (agreement.version_b == b)]),
            }
            for relation, a, b in pairs
        ],
        columns=list(SUMMARY_COLUMNS),
    )


def _check_same_sample(versions: Sequence[Version]) -> None:
    if len({v.sample_hash for v in versions}) == 1 and versions[0].sample_hash is not None:
        return
    listed = "; ".join(f"{v.name}: {v.sample_hash or 'no sample hash'}" for v in versions)
    raise ComparisonError(
        f"the runs did not explain the same sample of sentences ({listed}). Explain the same data with the "
        "same seed and n_explain, or compare anyway with force (CLI: --force), which compares only the "
        "sentences whose text the runs share"
    )


def _read_sentences(version: Version, table: pd.DataFrame) -> dict[tuple[str, int], _Sentence]:
    """The sentences of one table, keyed by (text, occurrence of that text), in sentence_id order."""
    missing = [c for c in COMPARED_COLUMNS if c not in table.columns]
    if missing:
        raise ComparisonError(
            f"the attribution table of {version.name} lacks the column(s) {', '.join(missing)}; "
            "it was not written by mlflow-explain"
        )
    sentences: dict[tuple[str, int], _Sentence] = {}
    occurrences: dict[str, int] = {}
    for sentence_id, rows in table.sort_values(["sentence_id", "position"], kind="stable").groupby("sentence_id"):
        first = rows.iloc[0]
        text = str(first.text)
        occurrence = occurrences.get(text, 0)
        occurrences[text] = occurrence + 1
        tokens = rows[~rows.is_special.astype(bool)]
        sentences[(text, occurrence)] = _Sentence(
            sentence_id=int(sentence_id),
            text=text,
            true_label=None if pd.isna(first.true_label) else str(first.true_label),
            predicted_label=str(first.predicted_label),
            predicted_probability=float(first.predicted_probability),
            labels={str(label): tokens[tokens.attributed_label == label] for label in rows.attributed_label.unique()},
        )
    return sentences


def _compared_labels(found: Sequence[_Sentence]) -> tuple[list[str], str]:
    reference = found[0].predicted_label
    if all(reference in s.labels for s in found):
        return [reference] * len(found), REFERENCE
    return [s.predicted_label if s.predicted_label in s.labels else next(iter(s.labels)) for s in found], "own"


def _line_up(rows: Sequence[pd.DataFrame]) -> tuple[str, list[list[tuple[str, float]]]]:
    """Pick the level at which every version has the same units, and each version's (text, score) units."""
    tokens = [list(zip(r.token.astype(str), r.attribution.astype(float), strict=True)) for r in rows]
    if all([t for t, _ in units] == [t for t, _ in tokens[0]] for units in tokens):
        return "token", tokens
    words = [
        [(str(w.word.iloc[0]), float(w.attribution.sum())) for _, w in r.groupby("word_index", sort=True)] for r in rows
    ]
    if all([w for w, _ in units] == [w for w, _ in words[0]] for units in words):
        return "word", words
    return "set", tokens


def _agreement(a: list[tuple[str, float]], b: list[tuple[str, float]], level: str, k: int) -> dict[str, float]:
    scores_a, scores_b = [s for _, s in a], [s for _, s in b]
    if level == "set":
        texts_a, texts_b = [t for t, _ in a], [t for t, _ in b]
        k_eff = min(k, len(set(texts_a)), len(set(texts_b)))
        overlap = _set_overlap(_top(texts_a, scores_a, k_eff), _top(texts_b, scores_b, k_eff), k_eff)
        return {"spearman": math.nan, "top_k_overlap": overlap, "mean_abs_difference": math.nan}
    return {
        "spearman": spearman(scores_a, scores_b),
        "top_k_overlap": top_k_overlap(scores_a, scores_b, k),
        "mean_abs_difference": float(np.mean(np.abs(np.subtract(scores_b, scores_a)))) if a else math.nan,
    }


def _top(items: Sequence, scores: Sequence[float], k: int) -> set:
    """The ``k`` distinct items with the highest scores (earlier items first on ties)."""
    order = sorted(range(len(items)), key=lambda i: (-scores[i], i))
    return set(list(dict.fromkeys(items[i] for i in order))[:k])


def _set_overlap(a: set, b: set, k: int) -> float:
    return len(a & b) / k if k > 0 else math.nan


def _pair_figures(rows: pd.DataFrame) -> dict[str, float]:
    return {
        "n_sentences": len(rows),
        "spearman_mean": _mean(rows.spearman),
        "top_k_overlap_mean": _mean(rows.top_k_overlap),
        "prediction_changed_share": _mean(rows.prediction_changed.astype(float)),
        "probability_change_mean": _mean(rows.probability_change),
    }


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan
