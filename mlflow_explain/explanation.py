"""Result types of an explanation and their conversion to flat records.

An :class:`Explanation` holds, for one sentence, the model's prediction and the token
attributions of one or more labels. Everything here is plain data: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COMPARED_COLUMNS",
    "TABLE_COLUMNS",
    "Explanation",
    "LabelAttribution",
    "TokenScore",
    "WordScore",
    "merge_wordpieces",
    "summary_metrics",
    "to_records",
    "word_indices",
]

CONTINUATION_PREFIX = "##"
"""WordPiece marks a piece that continues the previous word with this prefix."""

TABLE_COLUMNS = (
    "sentence_id",
    "text",
    "true_label",
    "predicted_label",
    "predicted_probability",
    "attributed_label",
    "position",
    "token",
    "attribution",
    "word_index",
    "word",
    "is_special",
    "convergence_delta",
    "truncated",
    "n_steps",
    "converged",
)
"""Columns of the long attribution table, in order: one row per sentence x label x token."""

COMPARED_COLUMNS = TABLE_COLUMNS[:-2]
"""The columns a comparison reads (runs logged before ``n_steps`` / ``converged`` existed have these)."""


@dataclass(frozen=True)
class TokenScore:
    """Attribution of one token.

    Args:
        position: Index of the token in the model input, ``[CLS]`` at 0.
        token: The token as the tokenizer writes it (``##`` marks a continuation piece).
        score: Attribution score.
        word_index: Index of the word the token belongs to; -1 for special tokens.
        is_special: Whether the token is a special token such as ``[CLS]`` or ``[SEP]``.
    """

    position: int
    token: str
    score: float
    word_index: int
    is_special: bool = False


@dataclass(frozen=True)
class WordScore:
    """Attribution of one word: the sum of the scores of its WordPiece pieces.

    Args:
        word_index: Index of the word in the sentence.
        word: The word, pieces joined without the ``##`` marks.
        score: Sum of the pieces' scores.
        positions: Token positions the word spans.
    """

    word_index: int
    word: str
    score: float
    positions: tuple[int, ...]


@dataclass(frozen=True)
class LabelAttribution:
    """Token attributions of one sentence towards one label.

    Args:
        label: The attributed label's name.
        probability: The model's probability for this label.
        tokens: One score per input token, in input order.
        convergence_delta: Completeness error of Integrated Gradients (sum of attributions
            minus the change in the model output), or ``None`` for methods without one.
        n_steps: Integration steps this label used (more than the configured ``n_steps`` when it was
            refined to meet the tolerance), or ``None`` for methods that do not integrate.
        converged: Whether ``|convergence_delta|`` is within the tolerance; ``None`` without a delta
            or a tolerance.
        cuts: Where the adaptive integration cut this label's path into pieces (points of ``(0, 1)``;
            empty: the whole path in one), or ``None`` without refinement. Not part of the tables:
            the Trainer callback starts the next evaluation's explanation from them.
    """

    label: str
    probability: float
    tokens: tuple[TokenScore, ...]
    convergence_delta: float | None = None
    n_steps: int | None = None
    converged: bool | None = None
    cuts: tuple[float, ...] | None = None

    @property
    def attribution_score(self) -> float:
        """Sum of the token scores, as transformers-interpret's visualisation shows it."""
        return float(sum(t.score for t in self.tokens))

    @property
    def words(self) -> tuple[WordScore, ...]:
        """Word-level view: continuation pieces merged into their word, special tokens left out."""
        return merge_wordpieces(self.tokens)


@dataclass(frozen=True)
class Explanation:
    """Prediction and attributions for one sentence.

    Args:
        sentence_id: Position of the sentence in the explained sample; stable for a given data
            set and seed, so runs compare sentence by sentence.
        text: The sentence as given.
        true_label: The label from the data, or ``None`` when unknown.
        predicted_label: The model's top label; for a multi-label model, the name of its predicted label set
            (``movie|sports``, :func:`~mlflow_explain.data.join_labels`), so that it equals ``true_label`` when
            the prediction is an exact match.
        predicted_probability: The model's probability for ``predicted_label`` (for a multi-label model, that of
            its most probable label).
        attributions: One entry per attributed label.
        truncated: Whether the text was cut to the model's maximum length.
        n_tokens: Number of tokens the full text has (before truncation), special tokens included.
        method: Name of the attribution method that produced the scores.
        predicted_labels: A multi-label model's predicted labels with their (sigmoid) probabilities, most
            probable first; empty for a single-label model. Defaults to ``()``.
    """

    sentence_id: int
    text: str
    true_label: str | None
    predicted_label: str
    predicted_probability: float
    attributions: tuple[LabelAttribution, ...]
    truncated: bool = False
    n_tokens: int = 0
    method: str = ""
    predicted_labels: tuple[tuple[str, float], ...] = ()

    @property
    def attributed_labels(self) -> tuple[str, ...]:
        """Names of the attributed labels, in order."""
        return tuple(a.label for a in self.attributions)

    def for_label(self, label: str) -> LabelAttribution:
        """Return the attribution towards ``label``.

        Args:
            label: A label name listed in :attr:`attributed_labels`.

        Returns:
            The matching :class:`LabelAttribution`.

        Raises:
            KeyError: If ``label`` was not attributed for this sentence.
        """
        for attribution in self.attributions:
            if attribution.label == label:
                return attribution
        raise KeyError(f"label {label!r} was not attributed; attributed: {', '.join(self.attributed_labels)}")

    @property
    def primary(self) -> LabelAttribution:
        """The attribution of the predicted label (a multi-label model's most probable one) when it was attributed,
        else the first one."""
        try:
            return self.for_label(self.predicted_labels[0][0] if self.predicted_labels else self.predicted_label)
        except KeyError:
            return self.attributions[0]


def merge_wordpieces(tokens: Sequence[TokenScore]) -> tuple[WordScore, ...]:
    """Merge WordPiece continuation pieces (``##...``) into their word.

    Args:
        tokens: Token scores in input order, with ``word_index`` filled in.

    Returns:
        One :class:`WordScore` per word, special tokens left out.

    Example:
        >>> ts = [TokenScore(1, "プロ", 0.5, 0), TokenScore(2, "##ポーズ", 0.25, 0)]
        >>> merge_wordpieces(ts)[0].word
        'プロポーズ'
    """
    words: dict[int, list[TokenScore]] = {}
    for token in tokens:
        if token.is_special or token.word_index < 0:
            continue
        words.setdefault(token.word_index, []).append(token)
    return tuple(
        WordScore(
            word_index=index,
            word="".join(_strip_continuation(p.token) for p in pieces),
            score=float(sum(p.score for p in pieces)),
            positions=tuple(p.position for p in pieces),
        )
        for index, pieces in sorted(words.items())
    )


def word_indices(tokens: Sequence[str], special: Sequence[bool]) -> list[int]:
    """Assign each token the index of its word: ``##`` pieces join the word before them.

    Args:
        tokens: Tokens in input order.
        special: For each token, whether it is a special token (those get -1).

    Returns:
        One word index per token.
    """
    indices: list[int] = []
    current = -1
    for token, is_special in zip(tokens, special, strict=True):
        if is_special:
            indices.append(-1)
            continue
        if not (token.startswith(CONTINUATION_PREFIX) and current >= 0 and indices and indices[-1] >= 0):
            current += 1
        indices.append(current)
    return indices


def _strip_continuation(token: str) -> str:
    return token[len(CONTINUATION_PREFIX) :] if token.startswith(CONTINUATION_PREFIX) else token


def to_records(explanations: Iterable[Explanation]) -> list[dict]:
    """Flatten explanations into the long attribution table's rows.

    Args:
        explanations: Explanations to flatten.

    Returns:
        One dict per sentence x attributed label x token, with the keys of :data:`TABLE_COLUMNS`.
    """
    rows: list[dict] = []
    for explanation in explanations:
        for attribution in explanation.attributions:
            words = {w.word_index: w.word for w in attribution.words}
            for token in attribution.tokens:
                rows.append(
                    {
                        "sentence_id": explanation.sentence_id,
                        "text": explanation.text,
                        "true_label": explanation.true_label,
                        "predicted_label": explanation.predicted_label,
                        "predicted_probability": explanation.predicted_probability,
                        "attributed_label": attribution.label,
                        "position": token.position,
                        "token": token.token,
                        "attribution": token.score,
                        "word_index": token.word_index,
                        "word": words.get(token.word_index, token.token),
                        "is_special": token.is_special,
                        "convergence_delta": attribution.convergence_delta,
                        "truncated": explanation.truncated,
                        "n_steps": attribution.n_steps,
                        "converged": attribution.converged,
                    }
                )
    return rows


def summary_metrics(explanations: Sequence[Explanation]) -> dict[str, float]:
    """Run-level figures about a set of explanations.

    Args:
        explanations: The explained sentences.

    Returns:
        ``sample_accuracy`` (share predicted right, over sentences with a true label),
        ``mean_predicted_probability`` and, where the method reports them, the median and
        largest absolute convergence delta (``convergence_delta_median`` / ``_max``), the largest and
        mean integration steps of a pair (``n_steps_max`` / ``n_steps_mean``) and the number of
        pairs still above the completeness tolerance (``convergence_failures``).
    """
    if not explanations:
        return {}
    metrics = {
        "mean_predicted_probability": float(np.mean([e.predicted_probability for e in explanations])),
    }
    labelled = [e for e in explanations if e.true_label is not None]
    if labelled:
        metrics["sample_accuracy"] = float(np.mean([e.predicted_label == e.true_label for e in labelled]))
    deltas = [abs(a.convergence_delta) for e in explanations for a in e.attributions if a.convergence_delta is not None]
    if deltas:
        metrics["convergence_delta_median"] = float(np.median(deltas))
        metrics["convergence_delta_max"] = float(np.max(deltas))
    steps = [a.n_steps for e in explanations for a in e.attributions if a.n_steps is not None]
    if steps:
        metrics["n_steps_max"] = float(max(steps))
        metrics["n_steps_mean"] = float(np.mean(steps))
    flags = [a.converged for e in explanations for a in e.attributions if a.converged is not None]
    if flags:
        metrics["convergence_failures"] = float(sum(not f for f in flags))
    return metrics
