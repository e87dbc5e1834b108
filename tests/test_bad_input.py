"""Bad and awkward input: each gets correct output or a clear error, and failed runs end FAILED."""

from __future__ import annotations

import unicodedata

import mlflow
import numpy as np
import pytest
from builders import english_rows, save_tiny_english_model, write_csv
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.cli import cli
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.errors import DataError
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import load_pretrained
from mlflow_explain.render import render_html

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

FAST = ["--n-explain", "3", "--n-steps", "4"]
HOSTILE_LABELS = ["<img src=x onerror=alert(1)>", "news/sports & more", '日本 ニュース "quoted"']


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def runs():
    return MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id])


@pytest.fixture(scope="module")
def english_model(tmp_path_factory):
    return load_pretrained(str(save_tiny_english_model(tmp_path_factory.mktemp("m") / "model", seed=4)))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t ",
        "rocket 🚀👍🏽 launch e\u0301 a\u0308",
        "ＲＯＣＫＥＴ　ｌａｕｎｃｈ ｶﾀｶﾅ",
        "<script>alert('x')</script> &amp; \"quotes\" <img src=x onerror=alert(1)>",
    ],
    ids=["empty", "whitespace", "emoji-combining", "full-half-width", "html"],
)
def test_awkward_texts_are_explained(english_model, text):
    model, tokenizer = english_model
    (result,) = explain_examples(model, tokenizer, [Example(text, "space")], ExplainConfig(n_steps=4), progress=False)
    assert result.text == text  # the text is kept verbatim
    scores = np.array([t.score for a in result.attributions for t in a.tokens])
    assert np.isfinite(scores).all()
    assert result.primary.tokens[0].token == "[CLS]" and result.primary.tokens[-1].token == "[SEP]"
    page = render_html([result])
    assert "<script>" not in page and "<img src=x" not in page


def test_full_width_text_is_normalised_by_the_japanese_tokenizer(tmp_path):
    from mlflow_explain.tokenization import build_japanese_tokenizer

    tokenizer = build_japanese_tokenizer(["ROCKET launch カタカナ"], tmp_path)
    assert tokenizer.tokenize("ＲＯＣＫＥＴ　ｌａｕｎｃｈ ｶﾀｶﾅ") == tokenizer.tokenize("ROCKET launch カタカナ")
    assert "[UNK]" not in tokenizer.tokenize(unicodedata.normalize("NFKC", "ｶﾀｶﾅ"))


def test_hostile_label_names_flow_through_main(tracking, tmp_path):
    rows = [{"text": r["text"], "label": HOSTILE_LABELS[i % 3]} for i, r in enumerate(english_rows(per_label=4))]
    rows = [
        {"text": f"{r['text']} {['oven', 'goal', 'orbit'][HOSTILE_LABELS.index(r['label'])]}", "label": r["label"]}
        for r in rows
    ]
    data = write_csv(tmp_path / "hostile.csv", rows)
    result = invoke("main", "--data", str(data), "--epochs", "1", *FAST)
    assert result.exit_code == 0, result.output
    (run,) = runs()
    assert run.info.status == "FINISHED"
    client = MlflowClient()
    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "news/sports &amp; more" in html and "日本 ニュース &quot;quoted&quot;" in html
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
    assert set(table.attributed_label) == set(HOSTILE_LABELS)
    plots = {a.path for a in client.list_artifacts(run.info.run_id, f"{artifacts.ARTIFACT_DIR}/{artifacts.PLOTS_DIR}")}
    assert len(plots) == 3 + 1  # plot names use sentence ids, never label names


def test_empty_rows_are_skipped_and_counted(tracking, tmp_path, caplog):
    rows = [*english_rows(), {"text": "", "label": "space"}, {"text": "   ", "label": "cooking"}]
    data = write_csv(tmp_path / "gaps.csv", rows)
    model = save_tiny_english_model(tmp_path / "model")
    result = invoke("explain", "--model", str(model), "--data", str(data), *FAST)
    assert result.exit_code == 0, result.output
    assert "skipped 2 row(s) with empty or missing text" in caplog.text


def test_n_explain_larger_than_the_evaluation_split(tracking, tmp_path, caplog):
    data = write_csv(tmp_path / "news.csv", english_rows())
    model = save_tiny_english_model(tmp_path / "model")
    result = invoke("explain", "--model", str(model), "--data", str(data), "--n-explain", "500", "--n-steps", "2")
    assert result.exit_code == 0, result.output
    (run,) = runs()
    n_eval = int(run.data.params["n_eval"])
    assert run.data.metrics["n_explained"] == n_eval < 500
    assert "n_explain=500 but the evaluation split has" in caplog.text


@pytest.mark.parametrize("n_steps", ["0", "-3"])
def test_non_positive_n_steps_is_rejected_before_a_run(tracking, n_steps):
    result = invoke("explain", "--model", "runs:/x/model", "--n-steps", n_steps)
    assert result.exit_code == 1 and "n_steps must be between 1 and 4096 integration steps" in result.output
    assert runs() == []


def test_unknown_run_id_fails_the_explain_run_clearly(tracking):
    result = invoke("explain", "--model", "runs:/0123456789abcdef0123456789abcdef/model", *FAST)
    assert result.exit_code == 1
    assert "cannot load MLflow model 'runs:/0123456789abcdef0123456789abcdef/model'" in result.output
    assert "Traceback" not in result.output
    (run,) = runs()
    assert run.info.status == "FAILED"


# --- explain-file never deletes what it did not write ------------------------------------------------


def _job(tmp_path, output, overwrite=True):
    from mlflow_explain.spark import FileJob

    return FileJob(
        input=str(tmp_path / "in" / "eval.csv"), output=str(output), model="runs:/x/explainer", overwrite=overwrite
    )


def test_explain_file_refuses_an_output_that_holds_the_input(tmp_path):
    from mlflow_explain.spark import check_output

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "eval.csv").write_text("text\n東京\n", encoding="utf-8")
    for output in (tmp_path / "in", tmp_path, tmp_path / "in" / "eval.csv"):
        with pytest.raises(DataError, match="is or holds the input"):
            check_output(_job(tmp_path, output))
    assert (tmp_path / "in" / "eval.csv").exists()


def test_overwrite_replaces_only_an_earlier_output_of_explain_file(tmp_path):
    from mlflow_explain.spark import check_output

    (tmp_path / "in").mkdir()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for name in ("_SUCCESS", "part-00000-a.snappy.parquet", ".part-00000-a.snappy.parquet.crc", "._SUCCESS.crc"):
        (earlier / name).write_bytes(b"")
    check_output(_job(tmp_path, earlier))  # an earlier output: allowed
    check_output(_job(tmp_path, tmp_path / "new"))  # a new folder: allowed
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "_SUCCESS").write_bytes(b"")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds files that explain-file did not write \(notes.txt\)"):
        check_output(_job(tmp_path, mixed))
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="is a file"):
        check_output(_job(tmp_path, tmp_path / "file.parquet"))
    no_marker = tmp_path / "no-marker"
    no_marker.mkdir()
    (no_marker / "part-0.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="no _SUCCESS marker"):
        check_output(_job(tmp_path, no_marker))
    assert (mixed / "notes.txt").read_text() == "mine"
    check_output(_job(tmp_path, mixed, overwrite=False))  # without --overwrite Spark itself refuses to write
