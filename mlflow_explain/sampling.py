"""The deterministic sample of evaluation sentences that every run explains.

The same data and seed give the same sentences in the same order, so runs (and the epochs of
one run) compare sentence by sentence; :func:`sample_hash` fingerprints the sample so that
comparable runs can be found by a tag.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence

from mlflow_explain.data import Example

__all__ = ["sample_examples", "sample_hash", "sentence_key"]


def sample_examples(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """Pick ``n`` examples stratified by label, deterministically for a given seed.

    Labels take turns in sorted order, each contributing its next example from a seeded
    shuffle, so nine labels and ``n=18`` give two sentences per label. When ``n`` exceeds the
    number of examples, all examples are returned.

    Args:
        examples: Candidate examples (usually the evaluation split).
        n: Number of examples to pick.
        seed: Seed of the per-label shuffle.

    Returns:
        The picked examples, in round-robin label order.

    Example:
        >>> xs = [Example("a", "x"), Example("b", "y"), Example("c", "x")]
        >>> [e.label for e in sample_examples(xs, 2, seed=0)]
        ['x', 'y']
    """
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    queues = []
    for label in sorted(by_label):
        group = by_label[label][:]
        random.Random(f"{seed}:{label}").shuffle(group)
        queues.append(group)
    picked: list[Example] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return picked


def sample_hash(examples: Sequence[Example]) -> str:
    """Fingerprint a sample: equal hashes mean the same sentences and labels in the same order.

    Args:
        examples: The sample.

    Returns:
        The first 16 hex digits of a SHA-256 over the texts and labels.
    """
    payload = json.dumps([[e.text, e.label] for e in examples], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def sentence_key(text: str) -> str:
    """A short, stable name for a sentence: equal texts get equal keys in every run.

    Artifacts that must line up across runs (image series, the per-sentence table) are keyed by
    it rather than by the position in the sample.

    Args:
        text: The sentence.

    Returns:
        The first 8 hex digits of a SHA-256 over the UTF-8 text.

    Example:
        >>> sentence_key("サッカー日本代表が逆転勝利")
        '553bd9fe'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
