from __future__ import annotations

import math

import pandas as pd

from mlflow_explain.explanation import TABLE_COLUMNS
from mlflow_explain.quality import SentenceQuality
from mlflow_explain.render.table import SENTENCE_COLUMNS, attribution_table, sentence_table, top_words
from mlflow_explain.sampling import sentence_key

EXPECTED_DTYPES = {
    "sentence_id": "int64",
    "predicted_probability": "float64",
    "position": "int64",
    "attribution": "float64",
    "word_index": "int64",
    "is_special": "bool",
    "convergence_delta": "float64",
    "truncated": "bool",
}


def test_columns_in_order_and_one_row_per_sentence_label_token(explanations):
    table = attribution_table(explanations)

    assert tuple(table.columns) == TABLE_COLUMNS
    expected_rows = sum(len(a.tokens) for e in explanations for a in e.attributions)
    assert len(table) == expected_rows == 10 * 2 + 9 * 2 + 9 * 2 + 7
    counts = table.groupby(["sentence_id", "attributed_label"]).size()
    assert counts[(0, "dokujo-tsushin")] == 10
    assert counts[(3, "dokujo-tsushin")] == 7


def test_dtypes_are_stable_with_and_without_rows(explanations):
    full, empty = attribution_table(explanations), attribution_table([])

    for column, dtype in EXPECTED_DTYPES.items():
        assert str(full[column].dtype) == dtype, column
        assert str(empty[column].dtype) == dtype, column
    assert full["token"].dtype == object
    assert empty.empty
    assert tuple(empty.columns) == TABLE_COLUMNS


def test_values_round_trip(explanations):
    table = attribution_table(explanations)

    for explanation in explanations:
        for attribution in explanation.attributions:
            rows = table[
                (table["sentence_id"] == explanation.sentence_id) & (table["attributed_label"] == attribution.label)
            ].sort_values("position")
            assert rows["token"].tolist() == [t.token for t in attribution.tokens]
            assert rows["attribution"].tolist() == [t.score for t in attribution.tokens]
            assert rows["is_special"].tolist() == [t.is_special for t in attribution.tokens]
            assert set(rows["text"]) == {explanation.text}
            assert set(rows["truncated"]) == {explanation.truncated}
            assert set(rows["predicted_probability"]) == {explanation.predicted_probability}


def test_missing_values_stay_missing(explanations):
    table = attribution_table(explanations)

    unknown = table[table["sentence_id"] == 3]
    assert unknown["true_label"].tolist() == [None] * len(unknown)
    assert all(math.isnan(d) for d in table["convergence_delta"])


def test_word_column_merges_wordpieces(explanations):
    table = attribution_table(explanations)

    first = table[(table["sentence_id"] == 0) & (table["attributed_label"] == "dokujo-tsushin")]
    by_token = dict(zip(first["token"], first["word"], strict=True))
    assert by_token["プロ"] == by_token["##ポーズ"] == "プロポーズ"
    assert by_token["待た"] == "待た"
    assert by_token["[CLS]"] == "[CLS]"
    assert first.loc[first["token"] == "##ポーズ", "word_index"].item() == 1


def test_sentence_table(explanations):
    table = sentence_table(explanations)

    assert tuple(table.columns) == SENTENCE_COLUMNS
    assert table["sentence_id"].tolist() == [0, 1, 2, 3]
    assert table["correct"].tolist() == [True, True, False, None]
    assert table["truncated"].tolist() == [False, False, False, True]
    assert table["n_tokens"].tolist() == [10, 9, 9, 600]
    assert str(table["n_tokens"].dtype) == "int64"
    assert set(table["method"]) == {"integrated_gradients"}
    assert table["key"].tolist() == [sentence_key(e.text) for e in explanations]
    assert table["key"].nunique() == 4
    # primary = predicted label's attribution; pieces merged, best first with scores, specials never included
    assert table["top_words"].iloc[0] == "プロポーズ +0.60 · 女 +0.50 · 待た +0.15 · もう +0.10 · たち +0.05"
    assert [t.split(" · ")[0] for t in table["top_words"]] == [
        "プロポーズ +0.60",
        "ワールドカップ +0.85",
        "alert +0.30",
        "長い +0.30",
    ]
    assert table["attributed_label"].tolist() == [e.primary.label for e in explanations]
    assert table["comprehensiveness"].isna().all()  # no quality given


def test_sentence_table_joins_quality_by_sentence(explanations):
    quality = [
        SentenceQuality(
            sentence_id=2,
            label="x",
            comprehensiveness=0.7,
            sufficiency=0.1,
            comprehensiveness_random=0.2,
            sufficiency_random=0.3,
        ),
        SentenceQuality(
            sentence_id=0,
            label="x",
            comprehensiveness=0.5,
            sufficiency=0.0,
            comprehensiveness_random=0.1,
            sufficiency_random=0.4,
            randomization_spearman=0.05,
        ),
    ]
    table = sentence_table(explanations, quality)

    assert table["comprehensiveness"].tolist()[0::2] == [0.5, 0.7]
    assert table["randomization_spearman"].iloc[0] == 0.05
    assert table.loc[[1, 3], "sufficiency"].isna().all()
    assert table["randomization_spearman"].iloc[2] != table["randomization_spearman"].iloc[2]  # NaN, not computed


def test_top_words_are_bounded(make_explanation):
    long_word = "語" * 300
    tokens = ["[CLS]", *(f"{long_word}{i}" for i in range(5)), "[SEP]"]
    explanation = make_explanation(tokens, {"dokujo-tsushin": [0.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]})
    text = top_words(explanation)

    assert len(text) <= 512
    assert text.startswith("語" * 39 + "… +0.50 · ")
    assert top_words(explanation, n=1) == "語" * 39 + "… +0.50"


def test_sentence_table_empty():
    table = sentence_table([])

    assert table.empty
    assert tuple(table.columns) == SENTENCE_COLUMNS


def test_spreadsheet_safe_neutralises_formula_cells_and_keeps_numbers():
    import csv
    import io

    from mlflow_explain.render.table import spreadsheet_safe

    frame = pd.DataFrame(
        {
            "text": ['=HYPERLINK("http://x","y")', "+1 bought", "plain", "@SUM(A1)", "\tx", "a=b"],
            "score": [-0.25, 0.5, -1.0, 0.0, 1.0, 2.0],
            "flag": [True, False, True, False, True, False],
        }
    )
    safe = spreadsheet_safe(frame)
    assert list(safe.text) == ['\'=HYPERLINK("http://x","y")', "'+1 bought", "plain", "'@SUM(A1)", "'\tx", "a=b"]
    assert list(safe.score) == list(frame.score) and safe.flag.dtype == bool
    assert frame.text[0].startswith("=")  # the input is not changed
    cells = [row[0] for row in csv.reader(io.StringIO(safe.to_csv(index=False)))][1:]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in cells)


def test_the_logged_csv_is_spreadsheet_safe_while_the_json_table_is_exact(tmp_path):
    import json

    from mlflow_explain import artifacts
    from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore
    from mlflow_explain.render.files import write_explanations

    text = "=cmd|' /C calc'!A0 -2"
    pieces = ["[CLS]", "=cmd|'", "-2", "[SEP]"]
    tokens = tuple(TokenScore(p, t, -0.1 * p, p - 1, t.startswith("[")) for p, t in enumerate(pieces))
    explanation = Explanation(0, text, "=a", "=a", 0.9, (LabelAttribution("=a", 0.9, tokens),), n_tokens=4)
    written = write_explanations([explanation], tmp_path)
    csv_table = pd.read_csv(written[artifacts.TABLE_CSV], dtype=str, keep_default_na=False)
    assert set(csv_table.text) == {"'" + text} and set(csv_table.true_label) == {"'=a"}
    assert list(csv_table.token) == ["[CLS]", "'=cmd|'", "'-2", "[SEP]"]
    assert csv_table.attribution.astype(float).min() < 0  # numbers stay numbers
    exact = json.loads(written[artifacts.TABLE_FILE].read_text("utf-8"))
    assert {row[exact["columns"].index("text")] for row in exact["data"]} == {text}
