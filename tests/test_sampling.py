"""The deterministic, stratified sample of sentences to explain and its fingerprint."""

from __future__ import annotations

import doctest
from collections import Counter

import pytest

import mlflow_explain.sampling as sampling_module
from mlflow_explain.data import Example
from mlflow_explain.sampling import sample_examples, sample_hash


def labelled(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label}の文{i}", label) for label, n in counts.items() for i in range(n)]


def test_labels_take_turns_in_sorted_order() -> None:
    examples = labelled({"c": 5, "a": 5, "b": 5})

    picked = sample_examples(examples, 7, seed=0)

    assert [e.label for e in picked] == ["a", "b", "c", "a", "b", "c", "a"]
    assert len(set(picked)) == 7
    assert set(picked) <= set(examples)


def test_nine_labels_and_eighteen_sentences_give_two_per_label() -> None:
    examples = labelled({f"label{i}": 14 for i in range(9)})

    picked = sample_examples(examples, 18, seed=42)

    assert Counter(e.label for e in picked) == {f"label{i}": 2 for i in range(9)}


def test_labels_that_run_out_leave_their_turn_to_the_others() -> None:
    examples = labelled({"a": 1, "b": 4, "c": 2})

    picked = sample_examples(examples, 6, seed=1)

    assert [e.label for e in picked] == ["a", "b", "c", "b", "c", "b"]


def test_same_seed_gives_the_same_sample() -> None:
    examples = labelled({"a": 20, "b": 20})

    assert sample_examples(examples, 10, seed=5) == sample_examples(list(examples), 10, seed=5)


def test_different_seeds_give_different_samples() -> None:
    examples = labelled({"a": 20, "b": 20})

    samples = {tuple(sample_examples(examples, 6, seed=seed)) for seed in range(5)}

    assert len(samples) == 5


def test_different_seeds_reorder_a_complete_sample() -> None:
    examples = labelled({"a": 10, "b": 10})

    first, second = (sample_examples(examples, 20, seed=seed) for seed in (1, 2))

    assert set(first) == set(second) == set(examples)
    assert first != second


def test_sample_is_pinned_for_a_seed() -> None:
    # Runs are compared by the sentences they explain: the sample for a seed must not drift
    # between versions or processes (no use of hash() or of the global random state).
    examples = [Example(f"{label}{i}", label) for label in "abc" for i in range(4)]

    assert [e.text for e in sample_examples(examples, 5, seed=42)] == ["a0", "b1", "c3", "a1", "b2"]


@pytest.mark.parametrize("n", [12, 13, 100])
def test_n_larger_than_the_data_gives_every_example(n: int) -> None:
    examples = labelled({"a": 3, "b": 5, "c": 4})

    picked = sample_examples(examples, n, seed=0)

    assert sorted(picked, key=examples.index) == examples


def test_zero_examples_asked_gives_an_empty_sample() -> None:
    assert sample_examples(labelled({"a": 3}), 0, seed=0) == []
    assert sample_examples([], 5, seed=0) == []


def test_input_is_not_changed() -> None:
    examples = labelled({"a": 4, "b": 4})
    before = list(examples)

    sample_examples(examples, 8, seed=3)

    assert examples == before


# --- sample_hash ---------------------------------------------------------------------------------

SAMPLE = [Example("東京で雨", "weather"), Example("巨人が勝利", "sports")]


def test_hash_is_pinned_and_short_hex() -> None:
    assert sample_hash(SAMPLE) == "687306428149c8bf"
    assert sample_hash([]) == "4f53cda18c2baa0c"


def test_hash_depends_only_on_the_content() -> None:
    copy = [Example(e.text, e.label) for e in SAMPLE]

    assert sample_hash(copy) == sample_hash(SAMPLE)
    assert sample_hash(tuple(SAMPLE)) == sample_hash(SAMPLE)


@pytest.mark.parametrize(
    "changed",
    [
        [Example("東京で雪", "weather"), SAMPLE[1]],
        [Example("東京で雨", "sports"), SAMPLE[1]],
        [SAMPLE[1], SAMPLE[0]],
        SAMPLE[:1],
        [*SAMPLE, SAMPLE[0]],
    ],
    ids=["text", "label", "order", "fewer", "more"],
)
def test_hash_changes_with_text_label_order_and_length(changed: list[Example]) -> None:
    assert sample_hash(changed) != sample_hash(SAMPLE)


def test_hash_does_not_confuse_text_and_label_boundaries() -> None:
    assert sample_hash([Example("ab", "c")]) != sample_hash([Example("a", "bc")])


def test_docstring_examples_run() -> None:
    result = doctest.testmod(sampling_module)

    assert result.attempted > 0
    assert result.failed == 0
