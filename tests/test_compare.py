"""Comparison logic on hand-built attribution tables: known tables give known figures."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from compare_builders import explanation, step_table, table

from mlflow_explain.compare import (
    AGREEMENT_COLUMNS,
    SENTENCE_COLUMNS,
    SUMMARY_COLUMNS,
    Version,
    compare_runs,
    compare_steps,
    spearman,
    top_k_overlap,
)
from mlflow_explain.errors import ComparisonError, ConfigError

TOKENS = ["日本", "代表", "が", "勝利"]


def versions(*names: str, hashes: tuple[str | None, ...] | None = None) -> list[Version]:
    hashes = hashes or ("same",) * len(names)
    return [Version(name, run_id=f"id-{name}", sample_hash=h) for name, h in zip(names, hashes, strict=True)]


def row(comparison, sentence: int, version_b: int, relation: str = "reference") -> pd.Series:
    agreement = comparison.agreement
    rows = agreement[
        (agreement.sentence == sentence) & (agreement.version_b == version_b) & (agreement.relation == relation)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_spearman_and_top_k_overlap():
    assert spearman([0.1, 0.5, 0.3], [1.0, 3.0, 2.0]) == pytest.approx(1.0)
    assert spearman([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    # Ties get their average rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
    assert spearman([0.0, 0.0, 1.0], [0.1, 0.2, 0.3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([0.2, 0.2, 0.2], [0.1, 0.2, 0.3]))  # no ranking on one side
    assert math.isnan(spearman([0.2], [0.1]))
    assert top_k_overlap([0.9, 0.8, 0.1, 0.0], [0.9, 0.0, 0.8, 0.1], k=2) == 0.5
    # Signed: the most negative tokens are not "top".
    assert top_k_overlap([0.5, -0.9, 0.1], [0.5, 0.1, -0.9], k=2) == 0.5
    assert top_k_overlap([0.3, 0.2], [0.2, 0.3], k=5) == 1.0  # k is capped at the number of units
    assert math.isnan(top_k_overlap([], [], k=5))


def test_two_runs_known_figures_ignore_special_tokens():
    reference = table(
        explanation(0, TOKENS, {"sports": [0.1, 0.2, 0.3, 0.4], "movie": [0.0] * 4}, probability=0.9),
        explanation(1, ["映画", "が", "公開"], {"sports": [0.3, 0.1, 0.2], "movie": [0.5, 0.0, 0.4]}),
    )
    other = table(
        explanation(
            0, TOKENS, {"sports": [0.4, 0.3, 0.2, 0.1], "movie": [0.0] * 4}, predicted="movie", probability=0.6
        ),
        explanation(1, ["映画", "が", "公開"], {"sports": [0.45, 0.15, 0.3], "movie": [0.5, 0.0, 0.4]}),
    )
    comparison = compare_runs(versions("a", "b"), [reference, other], top_k=2)

    assert list(comparison.agreement.columns) == list(AGREEMENT_COLUMNS)
    assert list(comparison.sentences.columns) == list(SENTENCE_COLUMNS)
    assert list(comparison.summary.columns) == list(SUMMARY_COLUMNS)
    reversed_row = row(comparison, 0, 1)
    # [CLS]/[SEP] score 9.0 in both: counted, they would pull Spearman towards +1.
    assert reversed_row.spearman == pytest.approx(-1.0)
    assert reversed_row.top_k_overlap == 0.0  # {勝利, が} against {日本, 代表}
    assert reversed_row.mean_abs_difference == pytest.approx(0.2)
    assert reversed_row.prediction_changed
    assert reversed_row.probability_change == pytest.approx(-0.3)
    # The reference predicted sports and both runs attributed it: sports is compared in both.
    assert (reversed_row.label_a, reversed_row.label_b, reversed_row.label_basis) == ("sports", "sports", "reference")
    assert reversed_row.level == "token"
    scaled = row(comparison, 1, 1)
    assert scaled.spearman == pytest.approx(1.0) and scaled.top_k_overlap == 1.0
    assert not scaled.prediction_changed

    assert comparison.metrics == pytest.approx(
        {
            "n_sentences": 2.0,
            "n_versions": 2.0,
            "spearman_mean_vs_run1": 0.0,
            "top_k_overlap_mean_vs_run1": 0.5,
            "prediction_changed_share_vs_run1": 0.5,
            "spearman_mean": 0.0,
            "top_k_overlap_mean": 0.5,
            "prediction_changed_share": 0.5,
        }
    )
    # Compared units leave the special tokens out.
    assert list(comparison.units.query("sentence == 0 and version == 0").text) == TOKENS
    assert comparison.most_changed(1) == [0]
    assert comparison.run_ids == ("id-a", "id-b")


def test_three_runs_pair_each_with_the_reference():
    tables = [
        table(explanation(0, TOKENS, {"sports": scores})) for scores in ([1, 2, 3, 4], [1, 2, 4, 3], [4, 3, 2, 1])
    ]
    comparison = compare_runs(versions("a", "b", "c"), tables, top_k=1)
    assert list(zip(comparison.summary.version_a, comparison.summary.version_b, strict=True)) == [(0, 1), (0, 2)]
    assert comparison.metrics["spearman_mean_vs_run1"] == pytest.approx(0.8)
    assert comparison.metrics["top_k_overlap_mean_vs_run1"] == 0.0  # 勝利 against が
    assert comparison.metrics["spearman_mean_vs_run2"] == pytest.approx(-1.0)
    assert comparison.metrics["spearman_mean"] == pytest.approx(-0.1)


def test_each_version_uses_its_own_prediction_when_the_reference_label_is_missing():
    reference = table(explanation(0, TOKENS, {"sports": [1, 2, 3, 4]}))
    other = table(explanation(0, TOKENS, {"movie": [4, 3, 2, 1]}))  # attributed only its own prediction
    comparison = compare_runs(versions("a", "b"), [reference, other])
    pair = row(comparison, 0, 1)
    assert (pair.label_a, pair.label_b, pair.label_basis) == ("sports", "movie", "own")
    assert list(comparison.sentences.compared_label) == ["sports", "movie"]
    assert pair.spearman == pytest.approx(-1.0)


def test_different_tokenizers_compare_words_then_token_sets():
    reference = table(
        explanation(0, ["ワールド", "##カップ", "で", "勝利"], {"sports": [0.5, 0.1, 0.0, 0.2]}),
        explanation(1, ["サッカー", "日本", "代表"], {"sports": [0.3, 0.2, 0.1]}),
    )
    other = table(
        explanation(0, ["ワール", "##ドカップ", "で", "勝利"], {"sports": [0.2, 0.2, 0.1, 0.05]}),
        explanation(1, ["サッカー", "日本", "##代表"], {"sports": [0.1, 0.3, 0.2]}),
    )
    comparison = compare_runs(versions("a", "b"), [reference, other], top_k=2)

    words = row(comparison, 0, 1)
    assert words.level == "word"
    # ワールドカップ 0.6 / で 0.0 / 勝利 0.2 against 0.4 / 0.1 / 0.05: same top word, ranks differ.
    assert words.spearman == pytest.approx(0.5)
    assert words.top_k_overlap == 0.5
    assert words.mean_abs_difference == pytest.approx((0.2 + 0.1 + 0.15) / 3)
    assert list(comparison.units.query("sentence == 0 and version == 1").text) == ["ワールドカップ", "で", "勝利"]

    tokens = row(comparison, 1, 1)
    assert tokens.level == "set"
    assert math.isnan(tokens.spearman) and math.isnan(tokens.mean_abs_difference)
    assert tokens.top_k_overlap == 0.5  # token strings {サッカー, 日本} against {日本, ##代表}
    # Sentences that cannot be lined up are not candidates for the difference plot.
    assert comparison.most_changed(5) == [0]


def test_different_samples_are_refused_unless_forced():
    reference = table(
        explanation(0, TOKENS, {"sports": [1, 2, 3, 4]}),
        explanation(1, ["映画", "公開"], {"sports": [1, 2]}),
    )
    # Another sample: the shared sentence has another id, one sentence is new.
    other = table(
        explanation(0, ["新作", "発表"], {"sports": [1, 2]}),
        explanation(1, ["映画", "公開"], {"sports": [2, 1]}),
        explanation(2, TOKENS, {"sports": [1, 2, 3, 4]}),
    )
    runs = versions("a", "b", hashes=("1111", "2222"))
    with pytest.raises(ComparisonError, match=r"did not explain the same sample.*a: 1111; b: 2222.*--force"):
        compare_runs(runs, [reference, other])
    with pytest.raises(ComparisonError, match="b: no sample hash"):
        compare_runs(versions("a", "b", hashes=("1111", None)), [reference, other])

    comparison = compare_runs(runs, [reference, other], force=True)
    assert comparison.forced
    assert comparison.sentences.groupby("version").sentence_id.apply(list).to_dict() == {0: [0, 1], 1: [2, 1]}
    assert row(comparison, 0, 1).spearman == pytest.approx(1.0)  # matched on text, not on id
    assert row(comparison, 1, 1).spearman == pytest.approx(-1.0)


def test_forced_comparison_without_shared_sentences_fails():
    with pytest.raises(ComparisonError, match="no sentence in common"):
        compare_runs(
            versions("a", "b"),
            [table(explanation(0, TOKENS, {"s": [1, 2, 3, 4]})), table(explanation(0, ["別"], {"s": [1]}))],
            force=True,
        )


def test_repeated_texts_are_matched_in_order():
    first, second = [1, 2, 3, 4], [4, 3, 2, 1]
    tables = [
        table(explanation(0, TOKENS, {"s": first}), explanation(1, TOKENS, {"s": second})),
        table(explanation(0, TOKENS, {"s": first}), explanation(1, TOKENS, {"s": second})),
    ]
    comparison = compare_runs(versions("a", "b"), tables)
    assert list(comparison.agreement.spearman) == pytest.approx([1.0, 1.0])


def test_steps_compare_with_the_first_and_the_previous_step():
    def at(scores, predicted="sports"):
        return table(explanation(0, TOKENS, {"sports": scores, "movie": [0, 0, 0, 0]}, predicted=predicted))

    steps = step_table(
        {(10, 1.0): at([1, 2, 3, 4]), (20, 2.0): at([1, 2, 4, 3]), (30, 3.0): at([4, 3, 2, 1], predicted="movie")}
    )
    comparison = compare_steps(Version("run", run_id="id-run", params={"model": "m"}), steps, top_k=1)
    assert comparison.kind == "steps"
    assert [v.name for v in comparison.versions] == ["step 10 (epoch 1)", "step 20 (epoch 2)", "step 30 (epoch 3)"]
    assert all(v.params == {"model": "m"} and v.run_id == "id-run" for v in comparison.versions)
    assert comparison.run_ids == ("id-run",)
    pairs = list(
        zip(comparison.summary.relation, comparison.summary.version_a, comparison.summary.version_b, strict=True)
    )
    assert pairs == [("reference", 0, 1), ("reference", 0, 2), ("previous", 1, 2)]
    metrics = comparison.metrics
    assert metrics["spearman_mean_vs_step20"] == pytest.approx(0.8)
    assert metrics["spearman_mean_vs_step30"] == pytest.approx(-1.0)
    assert metrics["spearman_mean_step20_to_step30"] == pytest.approx(-0.8)
    assert metrics["prediction_changed_share_step20_to_step30"] == 1.0
    assert metrics["prediction_changed_share"] == 0.5  # over the reference pairs only


def test_bad_inputs_are_named():
    one = table(explanation(0, TOKENS, {"sports": [1, 2, 3, 4]}))
    with pytest.raises(ConfigError, match="at least two runs; got 1"):
        compare_runs(versions("a"), [one])
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        compare_runs(versions("a", "b"), [one, one], top_k=0)
    with pytest.raises(ConfigError, match="run id-a is given more than once"):
        compare_runs(versions("a", "a"), [one, one])
    with pytest.raises(ComparisonError, match=r"table of b lacks the column\(s\) attribution"):
        compare_runs(versions("a", "b"), [one, one.drop(columns="attribution")])
    with pytest.raises(ComparisonError, match="no step, epoch column"):
        compare_steps(Version("run"), one)
    with pytest.raises(ComparisonError, match="at 1 step"):
        compare_steps(Version("run"), step_table({(10, 1.0): one}))
