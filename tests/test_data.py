"""Loading data sets: the embedded headlines, CSV / TSV / JSONL files, livedoor folders and HF data sets."""

from __future__ import annotations

import doctest
import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest

import mlflow_explain.data as data_module
from mlflow_explain.config import DataConfig
from mlflow_explain.data import Example, TextDataset, load_dataset, stratified_split
from mlflow_explain.errors import DataError

HEADLINES = {
    "sports": [
        "日本代表が逆転勝利",
        "横綱が初日から連勝",
        "新人投手が完封デビュー",
        "マラソンで日本記録",
        "J1首位が足踏み",
    ],
    "it": [
        "新型スマホの性能を検証",
        "無料で使える画像編集アプリ",
        "パスワード管理の基本",
        "自作PCの組み方",
        "AIが書く議事録",
    ],
    "movie": [
        "話題の邦画が興行収入一位",
        "名作アニメが劇場版に",
        "主演女優が舞台挨拶",
        "続編の公開日が決定",
        "監督が語る撮影秘話",
    ],
}


def write_table(path: Path, rows: list[dict], columns: tuple[str, ...] = ("text", "label")) -> Path:
    """Write ``rows`` as CSV / TSV (by suffix) or JSONL."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path
    sep = "\t" if path.suffix == ".tsv" else ","
    lines = [sep.join(columns)] + [sep.join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def headline_rows() -> list[dict]:
    return [{"text": t, "label": label} for label, texts in HEADLINES.items() for t in texts]


def load(path: Path | str, **kwargs) -> TextDataset:
    return load_dataset(DataConfig(data=str(path), **kwargs))


def texts(examples) -> set[str]:
    return {e.text for e in examples}


# --- embedded ------------------------------------------------------------------------------------


def test_embedded_data_set_has_nine_labels_and_a_fixed_split() -> None:
    dataset = load_dataset(DataConfig())

    assert len(dataset.labels) == 9
    assert list(dataset.labels) == sorted(dataset.labels)
    assert len(dataset.train) == 46 * 9
    assert len(dataset.eval) == 14 * 9
    assert Counter(e.label for e in dataset.train) == dict.fromkeys(dataset.labels, 46)
    assert Counter(e.label for e in dataset.eval) == dict.fromkeys(dataset.labels, 14)
    assert not texts(dataset.train) & texts(dataset.eval)
    assert dataset.source == "embedded"
    assert dataset.label2id == {label: i for i, label in enumerate(dataset.labels)}


def test_embedded_split_does_not_depend_on_the_seed() -> None:
    assert load_dataset(DataConfig(sample_seed=1)) == load_dataset(DataConfig(sample_seed=2))


# --- CSV / TSV / JSONL ---------------------------------------------------------------------------


def test_csv_with_custom_columns_is_split_stratified(tmp_path: Path) -> None:
    rows = [{"sentence": r["text"], "category": r["label"], "id": i} for i, r in enumerate(headline_rows())]
    path = write_table(tmp_path / "news.csv", rows, columns=("id", "sentence", "category"))

    dataset = load(path, text_column="sentence", label_column="category", eval_fraction=0.2)

    assert dataset.labels == ("it", "movie", "sports")
    assert Counter(e.label for e in dataset.eval) == {"it": 1, "movie": 1, "sports": 1}
    assert Counter(e.label for e in dataset.train) == {"it": 4, "movie": 4, "sports": 4}
    assert texts(dataset.train) | texts(dataset.eval) == {r["text"] for r in headline_rows()}
    assert dataset.source == str(path)


def test_split_is_deterministic_for_a_seed_and_changes_with_it(tmp_path: Path) -> None:
    rows = [{"text": f"{label}の記事{i}", "label": label} for label in "abc" for i in range(20)]
    path = write_table(tmp_path / "many.csv", rows)

    first, again = load(path, sample_seed=7), load(path, sample_seed=7)
    others = [load(path, sample_seed=seed) for seed in (8, 9)]

    assert first == again
    assert all(texts(other.eval) != texts(first.eval) for other in others)
    assert Counter(e.label for e in first.eval) == {"a": 4, "b": 4, "c": 4}


def test_split_column_is_honoured_case_insensitively(tmp_path: Path) -> None:
    rows = [
        {"text": "晴れのち雨", "label": "weather", "split": "train"},
        {"text": "巨人が勝利", "label": "sports", "split": "TRAIN"},
        {"text": "台風が接近", "label": "weather", "split": " Validation "},
        {"text": "阪神が連敗", "label": "sports", "split": "test"},
        {"text": "明日は快晴", "label": "weather", "split": "dev"},
    ]
    dataset = load(write_table(tmp_path / "split.jsonl", rows))

    assert [e.text for e in dataset.train] == ["晴れのち雨", "巨人が勝利"]
    assert [e.text for e in dataset.eval] == ["台風が接近", "阪神が連敗", "明日は快晴"]


def test_tsv_keeps_japanese_text_with_commas_intact(tmp_path: Path) -> None:
    rows = [
        {"text": t.replace("が", "が、"), "label": r, "split": "eval" if i == 0 else "train"}
        for r, ts in HEADLINES.items()
        for i, t in enumerate(ts)
    ]
    path = write_table(tmp_path / "news.tsv", rows, columns=("text", "label", "split"))

    dataset = load(path)

    assert texts(dataset.train) | texts(dataset.eval) == {r["text"] for r in rows}
    assert "日本代表が、逆転勝利" in texts(dataset.eval)


def test_csv_with_byte_order_mark_reads_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in headline_rows()), "utf-8-sig")

    assert len(load(path).labels) == 3


def test_jsonl_accepts_numeric_labels_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    lines = [json.dumps({"text": t, "label": i % 2}, ensure_ascii=False) for i, t in enumerate("あいうえおかきく")]
    path = tmp_path / "numbers.jsonl"
    path.write_text("\n\n".join(lines) + "\n\n", encoding="utf-8-sig")

    dataset = load(path)

    assert dataset.labels == ("0", "1")
    assert len(dataset.train) + len(dataset.eval) == 8


def test_json_array_of_objects_is_read(tmp_path: Path) -> None:
    path = tmp_path / "news.json"
    path.write_text(json.dumps(headline_rows(), ensure_ascii=False), encoding="utf-8")

    assert load(path).labels == ("it", "movie", "sports")


def test_eval_data_gives_the_evaluation_split_and_all_of_data_trains(tmp_path: Path) -> None:
    rows = headline_rows()
    train_rows = [dict(r, split="eval") for r in rows[:2]] + [dict(r, split="train") for r in rows[2:]]
    data = write_table(tmp_path / "train.csv", train_rows, columns=("text", "label", "split"))
    held_out = [
        {"text": "新作映画の予告編が公開", "label": "movie"},
        {"text": "W杯予選の組み合わせ決定", "label": "sports"},
    ]
    eval_file = write_table(tmp_path / "eval.jsonl", held_out)

    dataset = load(data, eval_data=str(eval_file))

    assert [e.text for e in dataset.train] == [r["text"] for r in rows]
    assert dataset.eval == tuple(Example(r["text"], r["label"]) for r in held_out)
    assert dataset.source == str(data)


def test_rows_without_text_are_skipped_with_a_warning_that_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [*headline_rows(), {"text": "", "label": "it"}, {"text": "   ", "label": "movie"}, {"label": "sports"}]
    path = write_table(tmp_path / "gaps.jsonl", rows)

    with caplog.at_level(logging.WARNING, logger="mlflow_explain.data"):
        dataset = load(path)

    assert len(dataset.train) + len(dataset.eval) == len(headline_rows())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 row(s)" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()


def test_empty_csv_cells_count_as_missing_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_table(tmp_path / "gaps.csv", [*headline_rows(), {"text": "", "label": "it"}])

    with caplog.at_level(logging.WARNING, logger="mlflow_explain.data"):
        load(path)

    assert "skipped 1 row(s)" in caplog.text


# --- bad files -----------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        load(tmp_path / "missing.csv")


def test_missing_relative_file_is_not_looked_up_on_the_hub() -> None:
    with pytest.raises(DataError, match=r"no_such_file\.tsv: no such file"):
        load("no_such_file.tsv")


def test_missing_column_lists_the_available_columns(tmp_path: Path) -> None:
    path = write_table(tmp_path / "cols.csv", headline_rows(), columns=("text", "label"))

    with pytest.raises(DataError, match=r"cols\.csv: missing column\(s\) 'category'; the columns are 'text', 'label'"):
        load(path, label_column="category")


@pytest.mark.parametrize("content", ["", " \n\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load(path)


def test_header_only_file_is_an_empty_data_set(tmp_path: Path) -> None:
    path = write_table(tmp_path / "header.csv", [])

    with pytest.raises(DataError, match=r"header\.csv: the data set is empty"):
        load(path)


def test_file_whose_texts_are_all_empty_is_an_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "blank.jsonl", [{"text": "", "label": "a"}, {"text": None, "label": "b"}])

    with pytest.raises(DataError, match=r"blank\.jsonl: none of the 2 row\(s\) has any text"):
        load(path)


def test_one_class_only_is_an_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "one.csv", [{"text": t, "label": "sports"} for t in HEADLINES["sports"]])

    with pytest.raises(DataError, match=r"one\.csv: every training example has the label 'sports'; .* two or more"):
        load(path)


def test_undecodable_file_is_rejected_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"text\tlabel\n\x81\x20\tsports\n")
    with pytest.raises(
        DataError,
        match=r"bad\.tsv: the bytes are not valid in any encoding tried \(utf-8 at offset 11, cp932 at offset 11, "
        r"euc-jp at offset 11\).*--encoding",
    ):
        load(path)


def test_row_with_text_but_no_label_names_the_row(tmp_path: Path) -> None:
    rows = [*headline_rows()[:4], {"text": "ラベルのない記事", "label": ""}]
    path = write_table(tmp_path / "nolabel.csv", rows)

    with pytest.raises(DataError, match=r"nolabel\.csv: row 5 has text but no label"):
        load(path)


def test_row_with_text_and_null_label_in_jsonl_is_an_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "null.jsonl", [*headline_rows()[:4], {"text": "ラベルなし", "label": None}])

    with pytest.raises(DataError, match=r"null\.jsonl: row 5 has text but no label"):
        load(path)


def test_non_string_text_is_an_error(tmp_path: Path) -> None:
    path = write_table(tmp_path / "ids.jsonl", [{"text": 12, "label": "a"}, {"text": "x", "label": "b"}])

    with pytest.raises(DataError, match=r"ids\.jsonl: row 1: the text is 12 of type int, not a string"):
        load(path)


def test_evaluation_labels_unseen_in_training_are_listed(tmp_path: Path) -> None:
    rows = [dict(r, split="train") for r in headline_rows() if r["label"] != "movie"]
    rows += [{"text": "新作映画の予告編", "label": "movie", "split": "eval"}, {**headline_rows()[0], "split": "eval"}]
    path = write_table(tmp_path / "unseen.jsonl", rows)

    with pytest.raises(DataError, match=r"unseen\.jsonl: evaluation labels never seen in training: 'movie'"):
        load(path)


def test_unseen_labels_in_eval_data_name_the_eval_file(tmp_path: Path) -> None:
    data = write_table(tmp_path / "train.csv", headline_rows())
    eval_file = write_table(tmp_path / "eval.csv", [{"text": "円相場が急落", "label": "economy"}])

    with pytest.raises(DataError, match=r"eval\.csv: evaluation labels never seen in training: 'economy'"):
        load(data, eval_data=str(eval_file))


def test_missing_eval_data_file_is_named(tmp_path: Path) -> None:
    data = write_table(tmp_path / "train.csv", headline_rows())

    with pytest.raises(DataError, match=r"nope\.csv: no such file.*eval_data"):
        load(data, eval_data=str(tmp_path / "nope.csv"))


def test_unsupported_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "news.xlsx"
    path.write_bytes(b"PK\x03\x04")

    with pytest.raises(DataError, match=r"news\.xlsx: unsupported file type \.xlsx; use one of \.csv, \.json"):
        load(path)


def test_unknown_split_value_is_named(tmp_path: Path) -> None:
    rows = [dict(r, split="train") for r in headline_rows()] + [{"text": "謎の記事", "label": "it", "split": "holdout"}]
    path = write_table(tmp_path / "split.csv", rows, columns=("text", "label", "split"))

    with pytest.raises(DataError, match=r"split\.csv: row 16 has the unknown split 'holdout' in column 'split'"):
        load(path)


def test_split_column_filled_in_for_some_rows_only_is_an_error(tmp_path: Path) -> None:
    rows = [dict(r, split="train") for r in headline_rows()]
    rows[3]["split"] = ""
    path = write_table(tmp_path / "partial.csv", rows, columns=("text", "label", "split"))

    with pytest.raises(DataError, match=r"partial\.csv: row 4 has no value in column 'split' while other rows do"):
        load(path)


def test_empty_split_column_falls_back_to_a_stratified_split(tmp_path: Path) -> None:
    rows = [dict(r, split="") for r in headline_rows()]
    dataset = load(write_table(tmp_path / "nosplit.csv", rows, columns=("text", "label", "split")))

    assert {e.label for e in dataset.eval} == {"it", "movie", "sports"}


def test_split_column_without_evaluation_rows_is_an_error(tmp_path: Path) -> None:
    rows = [dict(r, split="train") for r in headline_rows()]
    path = write_table(tmp_path / "trainonly.jsonl", rows)

    with pytest.raises(DataError, match=r"trainonly\.jsonl: the evaluation split is empty"):
        load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', r"line 2 is not valid JSON"),
        ('{"text": "a", "label": "x"}\n["b", "y"]\n', r"line 2 is a JSON list, not an object"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(DataError, match=r"bad\.jsonl: " + message):
        load(path)


def test_json_file_that_is_not_an_array_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"text": ["a"], "label": ["x"]}', encoding="utf-8")

    with pytest.raises(DataError, match=r"bad\.json: expected a JSON array of objects, found a JSON dict"):
        load(path)


def test_csv_with_a_ragged_row_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,x\nb,y,extra\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"ragged\.csv: cannot parse the file as CSV"):
        load(path)


def test_folder_that_is_not_a_data_set_is_an_error(tmp_path: Path) -> None:
    write_table(tmp_path / "news.csv", headline_rows())

    with pytest.raises(DataError, match=r"not a data set folder"):
        load(tmp_path)


# --- livedoor layout -----------------------------------------------------------------------------


def write_livedoor(root: Path) -> None:
    """A livedoor-layout corpus: three articles per category, plus the files the corpus ships."""
    for category, titles in HEADLINES.items():
        folder = root / category
        folder.mkdir(parents=True)
        for i, title in enumerate(titles[:3]):
            body = f"{title}の本文です。\n\n二段落目です。\n"
            article = f"http://news.livedoor.com/article/detail/{i}/\n2012-09-0{i + 1}T10:00:00+0900\n{title}\n{body}"
            (folder / f"{category}-{i}.txt").write_text(article, encoding="utf-8")
        (folder / "LICENSE.txt").write_text("http://creativecommons.org/licenses/by-nd/2.1/jp/\nライセンス\n見出し\n")
    for name in ("README.txt", "CHANGES.txt", "LICENSE.txt"):
        (root / name).write_text("livedoor ニュースコーパス\n説明\nタイトルではない\n", encoding="utf-8")
        (root / "sports" / name).write_text("説明\n説明\nタイトルではない\n", encoding="utf-8")


@pytest.mark.parametrize("nested", [True, False], ids=["root/text/cat", "root/cat"])
def test_livedoor_folder_reads_titles_and_skips_corpus_files(tmp_path: Path, nested: bool) -> None:
    write_livedoor(tmp_path / "text" if nested else tmp_path)

    dataset = load(tmp_path, sample_seed=0)

    expected = {Example(t, label) for label, ts in HEADLINES.items() for t in ts[:3]}
    assert set(dataset.train) | set(dataset.eval) == expected
    assert len(dataset.train) + len(dataset.eval) == 9
    assert dataset.labels == ("it", "movie", "sports")
    assert Counter(e.label for e in dataset.eval) == {"it": 1, "movie": 1, "sports": 1}


def test_livedoor_body_is_the_text_after_the_title(tmp_path: Path) -> None:
    write_livedoor(tmp_path / "text")

    dataset = load(tmp_path, text_field="body")

    assert texts(dataset.train) | texts(dataset.eval) == {
        f"{t}の本文です。\n二段落目です。" for ts in HEADLINES.values() for t in ts[:3]
    }


def test_livedoor_article_without_a_title_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_livedoor(tmp_path / "text")
    (tmp_path / "text" / "it" / "it-9.txt").write_text("http://example.com/\n2012-09-01\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="mlflow_explain.data"):
        dataset = load(tmp_path)

    assert len(dataset.train) + len(dataset.eval) == 9
    assert "skipped 1 row(s)" in caplog.text


def test_livedoor_article_in_another_encoding_names_the_file(tmp_path: Path) -> None:
    write_livedoor(tmp_path / "text")
    (tmp_path / "text" / "it" / "it-9.txt").write_bytes("http://example.com/\n日付\n見出し\n".encode("shift_jis"))
    with pytest.raises(DataError, match=r"it-9\.txt: bytes at offset \d+ are not valid utf-8"):
        load(tmp_path, encoding="utf-8")


def test_livedoor_folder_without_articles_is_an_error(tmp_path: Path) -> None:
    for category in ("it", "sports"):
        (tmp_path / "text" / category).mkdir(parents=True)
        (tmp_path / "text" / category / "LICENSE.txt").write_text("license\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"category folders \(it, sports\) hold no \.txt articles"):
        load(tmp_path)


# --- Hugging Face datasets ----------------------------------------------------------------------


@pytest.fixture
def hf_columns() -> dict[str, list]:
    names = list(HEADLINES)
    rows = headline_rows()
    return {"sentence": [r["text"] for r in rows], "label": [names.index(r["label"]) for r in rows]}


def class_label_features() -> datasets.Features:
    return datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=list(HEADLINES))}
    )


def test_saved_dataset_maps_class_labels_to_names(tmp_path: Path, hf_columns: dict[str, list]) -> None:
    datasets.Dataset.from_dict(hf_columns, features=class_label_features()).save_to_disk(tmp_path / "ds")

    dataset = load(tmp_path / "ds", text_column="sentence")

    assert set(dataset.train) | set(dataset.eval) == {Example(r["text"], r["label"]) for r in headline_rows()}
    assert dataset.labels == ("it", "movie", "sports")
    assert {e.label for e in dataset.eval} == {"it", "movie", "sports"}


def test_saved_dataset_dict_uses_its_splits(tmp_path: Path, hf_columns: dict[str, list]) -> None:
    features = class_label_features()
    train = {k: v[1:] for k, v in hf_columns.items()}
    test = {k: v[:1] for k, v in hf_columns.items()}
    splits = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(train, features=features),
        test=datasets.Dataset.from_dict(test, features=features),
    )
    splits.save_to_disk(tmp_path / "dd")

    dataset = load(tmp_path / "dd", text_column="sentence")

    assert dataset.eval == (Example(HEADLINES["sports"][0], "sports"),)
    assert len(dataset.train) == 14


def test_saved_dataset_dict_without_eval_split_is_split_stratified(tmp_path: Path, hf_columns: dict[str, list]) -> None:
    datasets.DatasetDict(train=datasets.Dataset.from_dict(hf_columns)).save_to_disk(tmp_path / "dd")

    dataset = load(tmp_path / "dd", text_column="sentence")

    assert dataset.labels == ("0", "1", "2")
    assert Counter(e.label for e in dataset.eval) == {"0": 1, "1": 1, "2": 1}


def test_saved_dataset_dict_without_train_split_lists_the_splits(tmp_path: Path, hf_columns: dict[str, list]) -> None:
    datasets.DatasetDict(validation=datasets.Dataset.from_dict(hf_columns)).save_to_disk(tmp_path / "dd")

    with pytest.raises(DataError, match=r"no 'train' split; the splits are validation"):
        load(tmp_path / "dd", text_column="sentence")


def test_saved_dataset_with_unlabelled_class_label_rows_is_an_error(
    tmp_path: Path, hf_columns: dict[str, list]
) -> None:
    hf_columns["label"][2] = -1
    datasets.Dataset.from_dict(hf_columns, features=class_label_features()).save_to_disk(tmp_path / "ds")

    with pytest.raises(DataError, match=r"row 3 has text but no label"):
        load(tmp_path / "ds", text_column="sentence")


def test_saved_dataset_missing_column_lists_columns(tmp_path: Path, hf_columns: dict[str, list]) -> None:
    datasets.Dataset.from_dict(hf_columns).save_to_disk(tmp_path / "ds")

    with pytest.raises(DataError, match=r"missing column\(s\) 'text'; the columns are 'sentence', 'label'"):
        load(tmp_path / "ds")


def test_empty_saved_dataset_is_an_error(tmp_path: Path) -> None:
    datasets.Dataset.from_dict({"text": [], "label": []}).save_to_disk(tmp_path / "ds")

    with pytest.raises(DataError, match=r"the data set is empty"):
        load(tmp_path / "ds")


def test_hub_name_that_cannot_be_loaded_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline mode makes the lookup fail at once instead of retrying an unreachable Hub.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    name = "mlflow-explain-tests/no-such-data-set-7f3c"

    with pytest.raises(DataError, match=rf"'{name}' is neither a file, a folder nor a data set .* Hugging Face Hub"):
        load(name)


# --- stratified_split ----------------------------------------------------------------------------


def labelled(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label}-{i}", label) for label, n in counts.items() for i in range(n)]


def test_stratified_split_partitions_each_label_in_input_order() -> None:
    examples = labelled({"a": 10, "b": 5, "c": 2})

    train, evaluation = stratified_split(examples, eval_fraction=0.2, seed=3)

    assert sorted(train + evaluation, key=examples.index) == examples
    assert not set(train) & set(evaluation)
    assert train == sorted(train, key=examples.index)
    assert evaluation == sorted(evaluation, key=examples.index)
    assert Counter(e.label for e in evaluation) == {"a": 2, "b": 1, "c": 1}


def test_stratified_split_keeps_single_examples_for_training() -> None:
    train, evaluation = stratified_split(labelled({"a": 1, "b": 4}), eval_fraction=0.5, seed=0)

    assert Example("a-0", "a") in train
    assert Counter(e.label for e in evaluation) == {"b": 2}


def test_stratified_split_is_seeded() -> None:
    examples = labelled({"a": 30, "b": 30})

    assert stratified_split(examples, 0.3, seed=1) == stratified_split(examples, 0.3, seed=1)
    assert stratified_split(examples, 0.3, seed=1)[1] != stratified_split(examples, 0.3, seed=2)[1]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(data_module)

    assert result.attempted > 0
    assert result.failed == 0


def test_a_livedoor_folder_without_articles_beside_categories_is_named_in_a_warning(tmp_path: Path, caplog) -> None:
    write_livedoor(tmp_path / "text")
    (tmp_path / "text" / "images").mkdir()
    dataset = load(tmp_path)
    assert "images" not in dataset.labels
    assert "the folder(s) images hold no .txt articles; no label is made of them" in caplog.text


def test_a_text_longer_than_the_bound_is_refused_with_its_row(tmp_path: Path) -> None:
    from mlflow_explain.config import MAX_TEXT_CHARACTERS

    rows = [*headline_rows()[:4], {"text": "長" * (MAX_TEXT_CHARACTERS + 1), "label": "sports"}]
    path = tmp_path / "long.csv"
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"long\.csv: row 5 holds a text of {MAX_TEXT_CHARACTERS + 1} characters"):
        load(path)
