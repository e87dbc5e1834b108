"""Encodings: UTF-8 (with or without BOM), CP932 and EUC-JP detected, a named codec used as given, clear errors.

The same rules hold in every reader: the data of ``main`` and ``explain`` (tables, ``eval_data``, livedoor
folders) and the input of ``explain-file`` on Spark.
"""

from __future__ import annotations

import codecs
import json
from importlib import resources
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from builders import local_spark, save_tiny_english_model, sqlite_store, write_livedoor
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.cli import cli
from mlflow_explain.config import DataConfig, ExplainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.encoding import check_files, decode, detect_encoding, japanese_score
from mlflow_explain.errors import ConfigError, DataError
from mlflow_explain.sampling import sample_examples, sample_hash
from mlflow_explain.spark import FileJob, explain_file

HEADLINES = [
    json.loads(line)
    for line in resources.files("mlflow_explain").joinpath("resources/headlines.jsonl").read_text("utf-8").splitlines()
]
TEXTS = [row["text"] for row in HEADLINES]
DETECTED = ["utf-8", "utf-8-sig", "cp932", "euc-jp", "utf-16"]
JAPANESE_KEYWORDS = {"新作映画の舞台挨拶": "cooking", "日本代表が逆転勝利": "football", "ロケット打ち上げ": "space"}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_rows(path: Path, rows: list[dict], encoding: str) -> Path:
    """Write rows as CSV / TSV (pandas) or JSON Lines, in ``encoding``."""
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        text = pd.DataFrame(rows).to_csv(index=False, sep="\t" if path.suffix == ".tsv" else ",")
    path.write_bytes(text.encode(encoding))
    return path


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", DETECTED)
def test_every_headline_is_detected_alone_and_in_a_file(encoding):
    for text in TEXTS:
        assert decode(text.encode(encoding)) == (text, encoding)
    whole = "\n".join(TEXTS)
    assert decode(whole.encode(encoding)) == (whole, encoding)


def test_ascii_is_utf8_and_a_byte_order_mark_is_never_text():
    assert decode(b"text,label\nhello,greeting\n") == ("text,label\nhello,greeting\n", "utf-8")
    assert decode("見出し".encode("utf-8-sig"), "utf-8") == ("見出し", "utf-8")  # given as utf-8: the mark is dropped
    assert detect_encoding("見出し".encode("utf-8-sig")) == "utf-8-sig"


def test_euc_jp_that_is_also_valid_cp932_reads_as_euc_jp():
    both = [text for text in TEXTS if _decodes(text.encode("euc-jp"), "cp932")]
    assert len(both) > 50  # about one EUC-JP headline in five is also valid CP932
    for text in both:
        raw = text.encode("euc-jp")
        assert japanese_score(raw.decode("euc-jp")) > japanese_score(raw.decode("cp932")), text
        assert detect_encoding(raw) == "euc-jp"
    assert not any(_decodes(text.encode("cp932"), "euc-jp") for text in TEXTS)  # the other way round never


def test_start_of_a_longer_text_may_end_inside_a_character():
    raw = "日本代表が逆転勝利".encode("cp932")[:-1]
    assert detect_encoding(raw, partial=True) == "cp932"
    with pytest.raises(DataError):
        detect_encoding(raw)


def test_a_named_encoding_is_used_as_given():
    raw = TEXTS[0].encode("euc-jp")
    assert decode(raw, "euc_jp") == (TEXTS[0], "euc_jp")
    assert decode("①見出し".encode("cp932"), "cp932") == ("①見出し", "cp932")
    assert decode("é".encode("latin-1"), "latin-1") == ("é", "latin-1")
    assert decode("ｶﾀｶﾅ".encode("cp932"), "shift_jis") == ("ｶﾀｶﾅ", "shift_jis")
    both = next(text for text in TEXTS if _decodes(text.encode("euc-jp"), "cp932"))
    mojibake, used = decode(both.encode("euc-jp"), "cp932")
    assert used == "cp932" and mojibake != both  # what was asked for, even when it is wrong


def test_bytes_that_the_named_encoding_cannot_read_are_an_error():
    raw = "text\n日本代表が逆転勝利\n".encode("cp932")
    with pytest.raises(DataError, match=r"^news\.csv: bytes at offset 5 are not valid euc-jp \(.*\); .*--encoding"):
        decode(raw, "euc-jp", source="news.csv")


def test_bytes_that_no_encoding_reads_name_the_file_the_offsets_and_the_encodings():
    raw = b"text\nabc\x81\x20\n"
    pattern = (
        r"^data\.csv: the bytes are not valid in any encoding tried "
        r"\(utf-8 at offset 8, cp932 at offset 8, euc-jp at offset 8\); give the file's encoding with --encoding"
    )
    with pytest.raises(DataError, match=pattern):
        decode(raw, source="data.csv")
    with pytest.raises(DataError, match=r"\(utf-8-sig at offset 3\)"):  # a byte order mark decides alone
        decode(codecs.BOM_UTF8 + "あ".encode("cp932"))


@pytest.mark.parametrize("bad", ["bogus", "base64", "Auto", ""])
def test_an_unknown_codec_is_refused_when_configured(bad):
    with pytest.raises(ConfigError, match=r"^encoding must be 'auto' or a Python text codec .*; got"):
        DataConfig(encoding=bad)
    with pytest.raises(ConfigError, match="encoding must be 'auto'"):
        FileJob("in.csv", "out", "runs:/x/explainer", encoding=bad)


def test_check_files_decides_on_the_first_non_ascii_chunk_and_checks_every_byte(tmp_path):
    ascii_then_cp932 = tmp_path / "a.csv"
    ascii_then_cp932.write_bytes(b"text,label\n" * 50 + "日本代表が逆転勝利,sports\n".encode("cp932"))
    assert check_files([ascii_then_cp932], chunk_size=7) == "cp932"  # chunks end inside characters too
    ascii_only = tmp_path / "b.csv"
    ascii_only.write_bytes(b"text,label\nhello,greeting\n")
    assert check_files([ascii_only]) == "utf-8"
    assert check_files([ascii_only, ascii_then_cp932]) == "cp932"  # ASCII fits every encoding
    utf8 = tmp_path / "c.csv"
    utf8.write_text("見出し,it\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.csv: bytes at offset \d+ are not valid cp932 .*share one encoding"):
        check_files([ascii_then_cp932, utf8], chunk_size=7)
    with pytest.raises(DataError, match=r"a\.csv: bytes at offset 550 are not valid utf-8 .*--encoding auto"):
        check_files([ascii_then_cp932], "utf-8", chunk_size=7)


# --- the data of main and explain ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding"), [("news.csv", "cp932"), ("news.tsv", "utf-8-sig"), ("news.jsonl", "euc-jp")]
)
def test_data_in_another_encoding_gives_the_examples_of_its_utf8_twin(tmp_path, name, encoding):
    twin = load_dataset(DataConfig(data=str(write_rows(tmp_path / f"utf8-{name}", HEADLINES, "utf-8"))))
    dataset = load_dataset(DataConfig(data=str(write_rows(tmp_path / name, HEADLINES, encoding))))
    assert (dataset.train, dataset.eval, dataset.labels) == (twin.train, twin.eval, twin.labels)
    assert dataset.encoding == encoding and twin.encoding == "utf-8"
    named = load_dataset(DataConfig(data=str(tmp_path / name), encoding=encoding))
    assert named.train == twin.train and named.encoding == encoding


def test_eval_data_is_detected_on_its_own(tmp_path):
    train = write_rows(tmp_path / "train.csv", [r for r in HEADLINES if r["split"] == "train"], "cp932")
    evaluation = write_rows(tmp_path / "eval.jsonl", [r for r in HEADLINES if r["split"] != "train"], "utf-8")
    dataset = load_dataset(DataConfig(data=str(train), eval_data=str(evaluation)))
    assert dataset.encoding == "cp932,utf-8"
    assert {e.text for e in dataset.eval} == {r["text"] for r in HEADLINES if r["split"] != "train"}


def test_livedoor_folder_in_euc_jp(tmp_path):
    articles = {
        "sports-watch": [(f"日本代表が逆転勝利{i}", f"サッカー日本代表が試合に勝利した。{i}") for i in range(5)],
        "movie-enter": [(f"新作映画の舞台挨拶{i}", f"監督が舞台挨拶した。{i}") for i in range(5)],
    }
    twin = load_dataset(DataConfig(data=str(write_livedoor(tmp_path / "utf8", articles))))
    root = write_livedoor(tmp_path / "euc", articles)
    for article in root.glob("text/*/*.txt"):
        article.write_bytes(article.read_text("utf-8").encode("euc-jp"))
    dataset = load_dataset(DataConfig(data=str(root)))
    assert (dataset.train, dataset.eval) == (twin.train, twin.eval) and dataset.encoding == "euc-jp"
    with pytest.raises(DataError, match=r"-\d+\.txt: bytes at offset \d+ are not valid utf-8 .*--encoding"):
        load_dataset(DataConfig(data=str(root), encoding="utf-8"))


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_explain_reads_a_cp932_csv_and_logs_the_encoding(tracking, tmp_path):
    model = save_tiny_english_model(tmp_path / "model")
    rows = [{"text": f"{text}{i}", "label": label} for i in range(4) for text, label in JAPANESE_KEYWORDS.items()]
    data = write_rows(tmp_path / "news.csv", rows, "cp932")
    result = invoke("explain", "--model", str(model), "--data", str(data), "--quality", "false", "--n-steps", "4")
    assert result.exit_code == 0, result.output
    run = MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id])[0]
    assert run.data.params["encoding"] == "cp932"
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
    # The same sentences as the same rows written in UTF-8 give, each text decoded exactly.
    twin = load_dataset(DataConfig(data=str(write_rows(tmp_path / "utf-8.csv", rows, "utf-8"))))
    sample = sample_examples(twin.eval, ExplainConfig().n_explain, ExplainConfig().sample_seed)
    assert sorted(set(table.text)) == sorted(e.text for e in sample) and len(sample) == len(twin.eval) == 3
    assert run.data.tags[artifacts.SAMPLE_HASH_TAG] == sample_hash(sample)


def test_cli_refuses_an_unknown_encoding_in_one_line_before_any_run(tracking, tmp_path):
    for args in (
        ["main", "--encoding", "bogus"],
        ["explain", "--model", "m", "--encoding", "bogus"],
        ["explain-file", "--input", "in.csv", "--output", str(tmp_path / "o"), "--model", "m", "--encoding", "bogus"],
    ):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert lines == [
            "Error: encoding must be 'auto' or a Python text codec such as utf-8, cp932, shift_jis or euc-jp; "
            "got 'bogus'."
        ]
    assert MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id]) == []


def test_explain_file_checks_the_bytes_before_spark_reads_them(tmp_path):
    source = write_rows(tmp_path / "news.csv", [{"text": "日本代表が逆転勝利", "label": "sports"}], "cp932")
    job = FileJob(str(source), str(tmp_path / "out"), "runs:/x/explainer", encoding="utf-8")
    with pytest.raises(DataError, match=r"news\.csv: bytes at offset \d+ are not valid utf-8"):
        explain_file(None, job)  # fails before the session (or the model) is used


# --- explain-file on Spark -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_store(tmp_path_factory):
    pytest.importorskip("pyspark")
    root = tmp_path_factory.mktemp("spark-encoding")
    with sqlite_store(root):
        yield root


@pytest.fixture(scope="module")
def spark(spark_store):
    with local_spark(shuffle_partitions=2) as session:
        yield session


@pytest.fixture(scope="module")
def japanese_explainer(spark_store):
    """A tiny untrained BERT whose vocabulary has every character of the Japanese test texts."""
    from transformers import BertForSequenceClassification, BertTokenizerFast

    from mlflow_explain.modeling import load_pretrained
    from mlflow_explain.tracking import EXPLAINER_ARTIFACT, log_explainer_model

    folder = save_tiny_english_model(spark_store / "model")
    chars = sorted(set("".join(JAPANESE_KEYWORDS)) | set("0123456789"))
    with (folder / "vocab.txt").open("a", encoding="utf-8") as vocab:
        vocab.write("".join(f"{c}\n##{c}\n" for c in chars))
    # Cased: lower-casing strips the voiced marks of kana (が becomes か).
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=False, model_max_length=32)
    model = BertForSequenceClassification.from_pretrained(folder)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    classifier = load_pretrained(str(folder))
    with mlflow.start_run() as run:
        log_explainer_model(*classifier, n_steps=4)
    return f"runs:/{run.info.run_id}/{EXPLAINER_ARTIFACT}"


@pytest.mark.slow
def test_explain_file_on_cp932_csv_explains_the_right_texts(spark, japanese_explainer, tmp_path):
    rows = [{"text": f"{text}{i}", "label": label} for i in range(3) for text, label in JAPANESE_KEYWORDS.items()]
    source = write_rows(tmp_path / "news.csv", rows, "cp932")
    output = tmp_path / "explained"
    args = ["explain-file", "--input", str(source), "--output", str(output), "--model", japanese_explainer]
    result = invoke(*args, "--master", "local[2]")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(output)
    assert sorted(table.text) == sorted(row["text"] for row in rows)
    for text, tokens in zip(table.text, table.tokens, strict=True):
        assert "[UNK]" not in tokens and "".join(t.removeprefix("##") for t in tokens[1:-1]) == text
    run_id = next(line.split()[1].rstrip(":") for line in result.output.splitlines() if line.startswith("run "))
    assert MlflowClient().get_run(run_id).data.params["encoding"] == "cp932"
    assert spark.conf.get("spark.sql.legacy.javaCharsets", None) is None  # the session's setting is left alone


@pytest.mark.slow
def test_explain_file_reads_euc_jp_json_lines_and_utf8_with_bom(spark, japanese_explainer, tmp_path):
    rows = [{"text": text, "label": label} for text, label in JAPANESE_KEYWORDS.items()]
    for name, encoding in (("news.jsonl", "euc-jp"), ("news.tsv", "utf-8-sig")):
        source = write_rows(tmp_path / name, rows, encoding)
        summary = explain_file(spark, FileJob(str(source), str(tmp_path / f"out-{name}"), japanese_explainer))
        assert summary.encoding == encoding and summary.n_explained == 3
        assert sorted(pd.read_parquet(tmp_path / f"out-{name}").text) == sorted(JAPANESE_KEYWORDS)


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True
