"""Loading multi-label data: label lists in JSON, separated labels in CSV / TSV, the split, and bad label sets."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import pytest
from builders import multi_label_rows, write_label_sets

from mlflow_explain.config import DataConfig
from mlflow_explain.data import Example, TextDataset, join_labels, load_dataset, stratified_split
from mlflow_explain.errors import ConfigError, DataError

TOPICS = ("cooking", "football", "space")


def load(path: Path | str, **kwargs) -> TextDataset:
    return load_dataset(DataConfig(data=str(path), **kwargs))


def every_example(dataset: TextDataset) -> set[Example]:
    return set(dataset.train) | set(dataset.eval)


def expected_examples() -> set[Example]:
    return {Example.multi(r["text"], r["labels"]) for r in multi_label_rows()}


def write_rows(path: Path, labels: list[object], *, column: str = "label") -> Path:
    """A JSONL file of numbered texts with the given label values (lists, strings, anything JSON)."""
    lines = [json.dumps({"text": f"text {i}", column: label}) for i, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_cells(path: Path, cells: list[str]) -> Path:
    """A CSV file of numbered texts with the given label cells, written as they are."""
    path.write_text("text,label\n" + "".join(f"text {i},{cell}\n" for i, cell in enumerate(cells)), encoding="utf-8")
    return path


def test_a_multi_label_example_holds_its_sorted_set_and_is_named_by_it():
    example = Example.multi("t", ["space", "cooking", "space"])
    assert example.labels == ("cooking", "space") and example.label == "cooking|space"
    assert example.label_set == ("cooking", "space")
    assert Example("t", "space").label_set == ("space",) and Example("t", None).label_set == ()
    assert join_labels(["b", "a"]) == "a|b"


@pytest.mark.parametrize("name", ["tags.jsonl", "tags.csv"])
def test_label_lists_in_jsonl_and_separated_labels_in_csv_are_read_as_label_sets(tmp_path, name, caplog):
    path = write_label_sets(tmp_path / name, multi_label_rows())
    with caplog.at_level(logging.INFO, logger="mlflow_explain.data"):
        dataset = load(path)

    assert dataset.multi_label and dataset.labels == TOPICS
    assert every_example(dataset) == expected_examples()
    assert {e.label for e in dataset.train} == {*TOPICS, "cooking|football", "cooking|space", "football|space"}
    assert "reading label sets (multi-label classification); set multi_label false" in caplog.text


def test_another_separator_is_configurable_and_the_file_reads_the_same(tmp_path):
    pipes = load(write_label_sets(tmp_path / "tags.csv", multi_label_rows()))
    semicolons = load(write_label_sets(tmp_path / "tags.tsv", multi_label_rows(), separator=" ; "), label_separator=";")
    assert semicolons.multi_label and (semicolons.train, semicolons.eval) == (pipes.train, pipes.eval)


def test_single_label_data_stays_single_label(tmp_path):
    assert not load_dataset(DataConfig()).multi_label  # the embedded headlines
    dataset = load(write_cells(tmp_path / "news.csv", ["space", "cooking"] * 4))
    assert not dataset.multi_label and all(e.labels == () for e in dataset.train)


def test_multi_label_false_reads_a_separated_cell_as_one_label(tmp_path):
    dataset = load(write_cells(tmp_path / "news.csv", ["space|cooking", "football"] * 4), multi_label=False)
    assert not dataset.multi_label and dataset.labels == ("football", "space|cooking")


def test_multi_label_true_reads_one_label_per_text_as_label_sets(tmp_path):
    dataset = load(write_cells(tmp_path / "news.csv", ["space", "cooking"] * 4), multi_label=True)
    assert dataset.multi_label and {e.labels for e in every_example(dataset)} == {("space",), ("cooking",)}


def test_label_sets_of_data_and_eval_data_are_read_alike(tmp_path):
    rows = multi_label_rows()
    train = write_label_sets(tmp_path / "train.csv", rows[::2])
    evaluation = write_cells(tmp_path / "eval.csv", ["space", "cooking"])  # no separator here: read as sets too
    dataset = load(train, eval_data=str(evaluation))
    assert dataset.multi_label and dataset.eval == (
        Example.multi("text 0", ["space"]),
        Example.multi("text 1", ["cooking"]),
    )


def test_a_saved_dataset_with_a_list_of_class_labels_gives_label_names(tmp_path):
    rows = multi_label_rows()
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.Sequence(datasets.ClassLabel(names=list(TOPICS)))}
    )
    columns = {"text": [r["text"] for r in rows], "label": [[TOPICS.index(x) for x in r["labels"]] for r in rows]}
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(tmp_path / "ds")

    dataset = load(tmp_path / "ds")

    assert dataset.multi_label and every_example(dataset) == expected_examples()


# --- the split -------------------------------------------------------------------------------------


def test_the_split_is_stratified_by_label_set_and_seeded(tmp_path):
    path = write_label_sets(tmp_path / "tags.csv", multi_label_rows())
    dataset = load(path)
    assert Counter(e.label for e in dataset.eval) == dict.fromkeys(
        ["cooking", "football", "space", "cooking|football", "cooking|space", "football|space"], 1
    )
    assert load(path).eval == dataset.eval and load(path, sample_seed=7).eval != dataset.eval


def test_label_sets_seen_once_are_held_out_only_while_their_labels_keep_a_training_example():
    sets = [["a", "b"], ["a", "c"], ["b", "c"], ["a", "d"], ["b", "d"], ["c", "d"], ["a", "b", "c"], ["e", "a"]]
    examples = [Example.multi(f"text {i}", labels) for i, labels in enumerate(sets * 1)]

    for seed in range(20):
        train, evaluation = stratified_split(examples, eval_fraction=0.5, seed=seed)
        assert len(evaluation) == 4  # half of the sets seen once
        assert {label for e in train for label in e.labels} == set("abcde")  # 'e' (one example) always trains
        assert set(train) | set(evaluation) == set(examples) and not set(train) & set(evaluation)


def test_single_label_splits_are_what_they_were():
    examples = [Example(f"{label}{i}", label) for label, n in {"a": 5, "b": 1, "c": 3}.items() for i in range(n)]
    _, evaluation = stratified_split(examples, eval_fraction=0.2, seed=3)
    assert [e.text for e in evaluation] == ["a0", "c1"]  # as drawn before label sets existed (checked on HEAD)


# --- bad label sets: one line that says what to do ------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([["space"], []], r"row 2 has an empty label set \(\[\]\); give each text at least one label, or drop the row"),
        ([["space"], ["cooking", {"a": 1}]], r"row 2: the label list \['cooking', \{'a': 1\}\] holds \{'a': 1\}, not"),
        ([["space"], ["cooking", None]], r"row 2: the label list \['cooking', None\] holds None, not a label name"),
    ],
)
def test_bad_label_lists_name_the_row(tmp_path, labels, message):
    with pytest.raises(DataError, match=message):
        load(write_rows(tmp_path / "tags.jsonl", labels * 4))


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("|", r"row 2 has an empty label set \('\|'\); give each text at least one label"),
        (" | ", r"row 2 has an empty label set \(' \| '\)"),
        (
            "space||cooking",
            r"row 2: the label set 'space\|\|cooking' has an empty label; separate the labels by one '\|'",
        ),
        ("space|", r"row 2: the label set 'space\|' has an empty label; .* with none at the start or the end"),
    ],
)
def test_bad_separated_label_sets_name_the_row(tmp_path, cell, message):
    with pytest.raises(DataError, match=message):
        load(write_cells(tmp_path / "tags.csv", ["space|football", cell]))


def test_label_lists_with_multi_label_false_are_refused(tmp_path):
    path = write_rows(tmp_path / "tags.jsonl", [["space", "cooking"], "football"] * 3)
    with pytest.raises(
        DataError, match=r"row 1 holds a list of labels .* but multi_label is false; set multi_label to"
    ):
        load(path, multi_label=False)


def test_another_separator_than_the_configured_one_is_named(tmp_path, caplog):
    path = write_cells(tmp_path / "tags.csv", ["space;cooking", "football"] * 4)
    with pytest.raises(DataError, match=r"no label cell holds the label_separator '\|', while labels such as "
                       r"'space;cooking' \(row 1\) hold ';'; set label_separator to ';'"):  # fmt: skip
        load(path, multi_label=True)
    with caplog.at_level(logging.WARNING, logger="mlflow_explain.data"):
        dataset = load(path)  # auto: one label per text, and a hint
    assert not dataset.multi_label and "If they are label sets, set label_separator to ';'" in caplog.text
    assert load(path, label_separator=";").multi_label


def test_one_label_in_every_training_set_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"every training example has the label 'space'"):
        load(write_rows(tmp_path / "tags.jsonl", [["space"]] * 6))


def test_an_empty_label_separator_is_a_config_error():
    with pytest.raises(ConfigError, match=r"label_separator is empty; give the characters between the labels"):
        DataConfig(label_separator="")
