"""Explanation quality as numbers: faithfulness and a sanity check, per sentence and per run.

* **Comprehensiveness (AOPC)**: the drop in the attributed label's probability when the top k %
  most important tokens are replaced by the mask (or pad) token, averaged over k in
  :data:`FRACTIONS`. Higher is more faithful: the tokens the explanation calls important matter.
* **Sufficiency (AOPC)**: the drop when only the top k % are kept and the rest replaced. Lower is
  more faithful: the important tokens alone carry the prediction.
* Both again for a **seeded random ranking** of the same tokens, the reference for chance.
* **Model randomisation** (Adebayo et al., 2018): the Spearman rank correlation between the
  trained model's attributions and those of a copy whose classification head (and optionally its
  top encoder layers) is re-initialised. Faithful explanations change a lot, so lower is better.

Special tokens are never replaced. Scores rank tokens by their signed attribution towards the
explained label (the predicted label when it was attributed).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from mlflow_explain.attribution.base import EncodedText
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.explanation import Explanation

__all__ = [
    "FRACTIONS",
    "QUALITY_COLUMNS",
    "SentenceQuality",
    "evaluate_quality",
    "faithfulness",
    "quality_metrics",
    "quality_records",
    "randomization_correlations",
    "randomized_copy",
]

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
"""Shares of the (non-special) tokens removed or kept for the AOPC curves."""

QUALITY_COLUMNS = (
    "sentence_id",
    "label",
    "comprehensiveness",
    "sufficiency",
    "comprehensiveness_random",
    "sufficiency_random",
    "randomization_spearman",
    "convergence_delta",
)


@dataclass(frozen=True)
class SentenceQuality:
    """Quality figures of one explained sentence.

    Args:
        sentence_id: The sentence's id in the explained sample.
        label: The label whose attribution was scored.
        comprehensiveness: AOPC of removing the top tokens (higher is better).
        sufficiency: AOPC of keeping only the top tokens (lower is better).
        comprehensiveness_random: The same for a random ranking.
        sufficiency_random: The same for a random ranking.
        randomization_spearman: Rank correlation with the randomised model's attribution
            (lower is better); NaN when not computed.
        convergence_delta: The method's completeness error for this label, if it has one.
    """

    sentence_id: int
    label: str
    comprehensiveness: float
    sufficiency: float
    comprehensiveness_random: float
    sufficiency_random: float
    randomization_spearman: float = float("nan")
    convergence_delta: float | None = None


def faithfulness(
    model,
    tokenizer,
    explanations: Sequence[Explanation],
    *,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    batch_size: int = 64,
) -> list[SentenceQuality]:
    """Comprehensiveness and sufficiency (AOPC) of each explanation, and of a random ranking.

    All perturbed inputs of all sentences run through the model in batches.

    Args:
        model: The explained classifier.
        tokenizer: Its tokenizer (mask and pad ids, re-encoding the texts).
        explanations: Explanations of this model.
        fractions: Shares of tokens removed / kept. Defaults to :data:`FRACTIONS`.
        seed: Seed of the random rankings. Defaults to 0.
        batch_size: Perturbed inputs per forward pass. Defaults to 64.

    Returns:
        One :class:`SentenceQuality` per explanation (randomisation left NaN).

    Example:
        >>> scores = faithfulness(model, tokenizer, explanations)  # doctest: +SKIP
        >>> scores[0].comprehensiveness > scores[0].comprehensiveness_random  # doctest: +SKIP
        True
    """
    from mlflow_explain.modeling import predict_proba

    replacement = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id
    if replacement is None:
        replacement = 0
    label2id = {str(v): int(k) for k, v in model.config.id2label.items()}
    variants: list[EncodedText] = []
    plans = []
    for explanation in explanations:
        attribution = explanation.primary
        ids = tuple(int(i) for i in tokenizer.convert_tokens_to_ids([t.token for t in attribution.tokens]))
        special = tuple(t.is_special for t in attribution.tokens)
        scores = np.array([t.score for t in attribution.tokens])
        candidates = [i for i, s in enumerate(special) if not s]
        ranking = sorted(candidates, key=lambda i: (-scores[i], i))
        rng = np.random.default_rng(seed + explanation.sentence_id)
        random_ranking = [candidates[i] for i in rng.permutation(len(candidates))]
        start = len(variants)
        variants.append(_variant(explanation.text, ids, special, ids))
        for order in (ranking, random_ranking):
            for fraction in fractions:
                k = max(1, int(np.ceil(fraction * len(order)))) if order else 0
                top = set(order[:k])
                removed = tuple(replacement if i in top else x for i, x in enumerate(ids))
                kept = tuple(replacement if (i not in top and not special[i]) else x for i, x in enumerate(ids))
                variants.append(_variant(explanation.text, removed, special, ids))
                variants.append(_variant(explanation.text, kept, special, ids))
        plans.append((explanation, attribution, start))
    # Short sentences give the same input for several fractions (and rankings): predict each once.
    index: dict[tuple[int, ...], int] = {}
    unique: list[EncodedText] = []
    for variant in variants:
        if variant.input_ids not in index:
            index[variant.input_ids] = len(unique)
            unique.append(variant)
    where = [index[v.input_ids] for v in variants]
    probabilities = predict_proba(model, tokenizer, unique, batch_size=batch_size)[where]
    results = []
    n = len(fractions)
    for explanation, attribution, start in plans:
        column = label2id[attribution.label]
        p = probabilities[start : start + 1 + 4 * n, column]
        base = p[0]
        drops = base - p[1:]
        # Layout after the original: per ranking (ours, random), per fraction (removed, kept).
        ours, rand = drops[: 2 * n], drops[2 * n :]
        results.append(
            SentenceQuality(
                sentence_id=explanation.sentence_id,
                label=attribution.label,
                comprehensiveness=float(np.mean(ours[0::2])),
                sufficiency=float(np.mean(ours[1::2])),
                comprehensiveness_random=float(np.mean(rand[0::2])),
                sufficiency_random=float(np.mean(rand[1::2])),
                convergence_delta=attribution.convergence_delta,
            )
        )
    return results


def randomized_copy(model, *, top_layers: int = 0, seed: int = 0):
    """A copy of the classifier with its head (and ``top_layers`` encoder layers) re-initialised.

    Args:
        model: A ``...ForSequenceClassification`` model.
        top_layers: Encoder layers to re-initialise too, from the top. Defaults to 0.
        seed: Seed of the new weights. Defaults to 0.

    Returns:
        The randomised copy (the original is not touched).
    """
    randomized = copy.deepcopy(model)
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        modules = [m for name in ("classifier", "score", "pre_classifier") if (m := getattr(randomized, name, None))]
        base = getattr(randomized, getattr(randomized, "base_model_prefix", ""), None)
        if base is not None and getattr(base, "pooler", None) is not None:
            modules.append(base.pooler)
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if top_layers and layers is not None:
            modules.extend(list(layers)[-top_layers:])
        for module in modules:
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    finally:
        torch.set_rng_state(generator_state)
    return randomized


def randomization_correlations(
    model,
    tokenizer,
    explanations: Sequence[Explanation],
    config: ExplainConfig,
    *,
    reference_model=None,
    top_layers: int = 0,
    seed: int = 0,
    max_length: int | None = None,
) -> list[float]:
    """Spearman correlation between each explanation and the same method on a randomised model.

    The randomised model attributes the same label as the explanation (the predicted label of
    the trained model), so only the model changed.

    Args:
        model: The trained classifier the explanations came from.
        tokenizer: Its tokenizer.
        explanations: Explanations of ``model``.
        config: The explanation settings used (method, ``n_steps``, ...).
        reference_model: The model to compare with; defaults to :func:`randomized_copy` of
            ``model``. Pass an identical copy to see the correlation of unchanged weights.
        top_layers: Encoder layers re-initialised besides the head. Defaults to 0.
        seed: Seed of the new weights. Defaults to 0.
        max_length: Longest input in tokens, as used for the explanations.

    Returns:
        One correlation per explanation (NaN for sentences with fewer than two tokens).
    """
    from mlflow_explain.compare import spearman
    from mlflow_explain.explainer import explain_examples

    other = reference_model if reference_model is not None else randomized_copy(model, top_layers=top_layers, seed=seed)
    labels = [e.primary.label for e in explanations]
    examples = [Example(e.text, label) for e, label in zip(explanations, labels, strict=True)]
    again = explain_examples(
        other, tokenizer, examples, replace(config, target="true"), max_length=max_length, progress=False
    )
    correlations = []
    for explanation, label, randomized in zip(explanations, labels, again, strict=True):
        a = [t.score for t in explanation.for_label(label).tokens if not t.is_special]
        b = [t.score for t in randomized.for_label(label).tokens if not t.is_special]
        correlations.append(spearman(a, b))
    return correlations


def evaluate_quality(
    model,
    tokenizer,
    explanations: Sequence[Explanation],
    config: ExplainConfig,
    *,
    randomization: bool | None = None,
    max_length: int | None = None,
    seed: int = 0,
) -> list[SentenceQuality]:
    """All quality figures of each explanation.

    Args:
        model: The explained classifier.
        tokenizer: Its tokenizer.
        explanations: Explanations of ``model`` made with ``config``.
        config: The explanation settings used.
        randomization: Also run the model-randomisation check (one more explanation pass of the
            scored label). Defaults to ``config.randomization``.
        max_length: Longest input in tokens, as used for the explanations.
        seed: Seed of the random rankings and weights. Defaults to 0.

    Returns:
        One :class:`SentenceQuality` per explanation.
    """
    results = faithfulness(model, tokenizer, explanations, seed=seed)
    if randomization is None:
        randomization = config.randomization
    if randomization and explanations:
        correlations = randomization_correlations(
            model, tokenizer, explanations, config, seed=seed, max_length=max_length
        )
        results = [replace(r, randomization_spearman=c) for r, c in zip(results, correlations, strict=True)]
    return results


def quality_metrics(qualities: Sequence[SentenceQuality]) -> dict[str, float]:
    """Run-level means of the quality figures, with the same names in every run.

    Args:
        qualities: Per-sentence figures.

    Returns:
        ``quality_comprehensiveness``, ``quality_sufficiency``, their ``_random`` references and
        ``quality_randomization_spearman`` (when computed), averaged over the sentences.
    """
    if not qualities:
        return {}
    out = {}
    for name in ("comprehensiveness", "sufficiency", "comprehensiveness_random", "sufficiency_random"):
        out[f"quality_{name}"] = float(np.mean([getattr(q, name) for q in qualities]))
    spearman = [q.randomization_spearman for q in qualities if not np.isnan(q.randomization_spearman)]
    if spearman:
        out["quality_randomization_spearman"] = float(np.mean(spearman))
    return out


def quality_records(qualities: Sequence[SentenceQuality]) -> list[dict]:
    """Rows of the per-sentence quality table (columns :data:`QUALITY_COLUMNS`)."""
    return [{column: getattr(q, column) for column in QUALITY_COLUMNS} for q in qualities]


def _variant(text: str, ids: tuple[int, ...], special: tuple[bool, ...], original: tuple[int, ...]) -> EncodedText:
    return EncodedText(text=text, input_ids=ids, tokens=(), special=special, truncated=False, n_tokens=len(original))
