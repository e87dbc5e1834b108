"""The explainer on Spark: spark_udf on local[2] gives the in-process scores; `explain-file` writes Parquet."""

from __future__ import annotations

import json
import random
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import FILLER, KEYWORDS, local_spark, save_tiny_english_model, sqlite_store
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain.cli import cli
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.errors import ConfigError, DataError, ModelError
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import load_pretrained
from mlflow_explain.pyfunc import OUTPUT_COLUMNS, SPARK_RESULT_TYPE
from mlflow_explain.spark import FileJob, explain_file, worker_python
from mlflow_explain.tracking import EXPLAINER_ARTIFACT, OUTPUT_TAG, log_explainer_model

pyspark = pytest.importorskip("pyspark")

pytestmark = pytest.mark.slow

N_STEPS = 6


def sentences(n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct short English sentences with a keyword that decides the label."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(sorted(KEYWORDS))
        words = [*rng.sample(FILLER, rng.randint(2, 6)), rng.choice(KEYWORDS[label])]
        rng.shuffle(words)
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark")
    with sqlite_store(root):
        yield root


@pytest.fixture(scope="module")
def spark():
    """A local session from :func:`spark_session`, whose workers run this interpreter whatever PATH says."""
    with local_spark(shuffle_partitions=4) as session:
        yield session


@pytest.fixture(scope="module")
def classifier(store):
    return load_pretrained(str(save_tiny_english_model(store / "classifier")))


@pytest.fixture(scope="module")
def explainer_uri(store, classifier):
    with mlflow.start_run() as run:
        log_explainer_model(*classifier, n_steps=N_STEPS)
    return f"runs:/{run.info.run_id}/{EXPLAINER_ARTIFACT}"


def in_process(classifier, texts: list[str]) -> dict[str, tuple[str, list[float]]]:
    config = ExplainConfig(method="lig", n_steps=N_STEPS, target="predicted")
    explained = explain_examples(*classifier, [Example(t, None) for t in texts], config, progress=False)
    return {e.text: (e.predicted_label, [t.score for t in e.primary.tokens]) for e in explained}


def assert_same_as_in_process(rows: pd.DataFrame, classifier) -> None:
    expected = in_process(classifier, list(rows.text))
    for row in rows.itertuples():
        label, scores = expected[row.text]
        assert row.predicted_label == label
        np.testing.assert_allclose(np.asarray(row.scores[0]), scores, atol=1e-5)


def test_spark_udf_gives_the_in_process_scores(spark, classifier, explainer_uri):
    from pyspark.sql import functions as F

    rows = sentences(300)
    frame = spark.createDataFrame(pd.DataFrame(rows)).repartition(4)
    explain = mlflow.pyfunc.spark_udf(spark, explainer_uri, result_type=SPARK_RESULT_TYPE, env_manager="local")
    out = frame.select("text", explain(F.struct("text", "label")).alias("e")).select("text", "e.*").toPandas()
    assert len(out) == 300 and set(out.text) == {r["text"] for r in rows}
    assert list(out.columns[1:]) == list(OUTPUT_COLUMNS)
    assert_same_as_in_process(out, classifier)


def test_explain_file_cli_writes_parquet_and_logs_a_summary(spark, store, classifier, explainer_uri, tmp_path):
    rows = sentences(40, seed=1)
    data = pd.DataFrame({"headline": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    data.loc[len(data)] = {"headline": "", "label": "space"}  # skipped and counted
    data.to_csv(tmp_path / "news.csv", index=False)
    output = tmp_path / "explained.parquet"
    args = ["explain-file", "--input", str(tmp_path / "news.csv"), "--output", str(output), "--model", explainer_uri]
    args += ["--text-column", "headline", "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_id = next(line.split()[1].rstrip(":") for line in result.output.splitlines() if line.startswith("run "))

    table = pd.read_parquet(output)
    assert len(table) == 40 and {"headline", "label", "row_id", *OUTPUT_COLUMNS} <= set(table.columns)
    assert_same_as_in_process(table.rename(columns={"headline": "text"}), classifier)
    assert json.loads(table.attributions_json[0])["tokens"] == list(table.tokens[0])

    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[OUTPUT_TAG] == str(output)
    metrics = run.data.metrics
    assert (metrics["n_rows"], metrics["n_explained"], metrics["n_skipped"]) == (41, 40, 1)
    assert metrics["sentences_per_second"] == pytest.approx(40 / metrics["explain_seconds"], rel=1e-3)
    labelled = table[table.label.notna() & table.predicted_label.notna()]
    assert metrics["sample_accuracy"] == pytest.approx((labelled.predicted_label == labelled.label).mean())
    assert metrics["convergence_delta_median"] == pytest.approx(table.convergence_deltas.explode().abs().median())
    params = run.data.params
    assert params["method"] == "lig" and params["n_steps"] == str(N_STEPS) and params["text_column"] == "headline"
    assert params["master"] == "local[2]"

    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 1 and "--overwrite" in again.output and "Traceback" not in again.output


def test_explain_file_reads_jsonl_with_params(spark, explainer_uri, tmp_path):
    rows = sentences(12, seed=2)
    source = tmp_path / "news.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    job = FileJob(str(source), str(tmp_path / "out"), explainer_uri, params={"target": "all", "level": "word"})
    summary = explain_file(spark, job)
    assert summary.n_explained == 12 and summary.params["target"] == "all"
    table = pd.read_parquet(tmp_path / "out")
    assert all(len(labels) == 3 for labels in table.attributed_labels)
    assert not any("[CLS]" in tokens for tokens in table.tokens)


def test_explain_file_errors_name_the_problem(spark, store, explainer_uri, tmp_path):
    source = tmp_path / "news.csv"
    pd.DataFrame(sentences(3)).to_csv(source, index=False)
    with pytest.raises(DataError, match="no column 'body'; its columns: text, label"):
        explain_file(spark, FileJob(str(source), str(tmp_path / "a"), explainer_uri, text_column="body"))
    with pytest.raises(ConfigError, match="cooking, football, space"):
        explain_file(spark, FileJob(str(source), str(tmp_path / "b"), explainer_uri, params={"target": "weather"}))
    with pytest.raises(ConfigError, match="cannot tell the format"):
        explain_file(spark, FileJob(str(tmp_path / "news.xml"), str(tmp_path / "c"), explainer_uri))
    with mlflow.start_run() as run:
        mlflow.log_text("not a model", "notes/readme.txt")
    with pytest.raises(ModelError, match=r"cannot load the explainer model 'runs:/\w+/notes'"):
        explain_file(spark, FileJob(str(source), str(tmp_path / "d"), f"runs:/{run.info.run_id}/notes"))


def test_local_workers_run_this_interpreter_unless_told_otherwise():
    assert worker_python("local[2]", {}, {}) == {"PYSPARK_PYTHON": sys.executable}
    assert worker_python(None, {}, {}) == {"PYSPARK_PYTHON": sys.executable}  # local[*]
    assert worker_python("spark://host:7077", {}, {}) == {}
    assert worker_python("yarn", {}, {}) == {}
    assert worker_python("local[2]", {}, {"PYSPARK_PYTHON": "/opt/python"}) == {}
    assert worker_python(None, {}, {"PYSPARK_GATEWAY_PORT": "4040"}) == {}  # spark-submit started the JVM
    assert worker_python("local[2]", {"spark.pyspark.python": "/opt/python"}, {}) == {}
