"""The jobs and the Trainer callback logging over HTTP to a real ``mlflow server``, and two jobs at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from builders import english_dataset, english_rows, save_tiny_english_model, write_csv
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.callback import ExplainCallback
from mlflow_explain.cli import cli
from mlflow_explain.config import ExplainConfig, TrainConfig
from mlflow_explain.modeling import load_pretrained, train
from mlflow_explain.tracking import load_step_table

pytestmark = pytest.mark.slow

FAST = ["--n-explain", "3", "--n-steps", "4"]
N_EXPLAIN = 3
EXPLANATION_FILES = {
    f"{artifacts.ARTIFACT_DIR}/{name}"
    for name in (
        artifacts.TABLE_FILE,
        artifacts.TABLE_CSV,
        artifacts.SENTENCES_FILE,
        artifacts.HTML_FILE,
        artifacts.WORDS_HTML_FILE,
        *(f"{artifacts.PLOTS_DIR}/sentence_{i:03d}.png" for i in range(N_EXPLAIN)),
        f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}",
    )
}
"""Every file one explained run holds under ``explanations/``."""


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    """Every artifact file of a run, listed recursively."""
    out = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_explain_logs_over_http(server_tracking, mlflow_server, tmp_path):
    model = save_tiny_english_model(tmp_path / "model")
    data = write_csv(tmp_path / "news.csv", english_rows())
    result = CliRunner().invoke(
        cli, ["explain", "--model", str(model), "--data", str(data), *FAST], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output

    client = MlflowClient()
    (run,) = client.search_runs([server_tracking])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied through the server
    assert run.data.params["model"] == str(model) and run.data.params["n_steps"] == "4"
    assert run.data.metrics["n_explained"] == N_EXPLAIN and "eval_accuracy" in run.data.metrics
    assert artifact_paths(client, run_id) >= EXPLANATION_FILES
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run_id])
    assert table.sentence_id.nunique() == N_EXPLAIN
    html = mlflow.artifacts.load_text(f"runs:/{run_id}/{artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}")
    assert all(text in html for text in table.text.unique())
    # The bytes really went through the server into its artifact folder.
    stored = mlflow_server.artifacts / server_tracking / run_id / "artifacts" / artifacts.ARTIFACT_DIR
    assert (stored / artifacts.HTML_FILE).read_text("utf-8") == html


def test_callback_logs_over_http(server_tracking, tmp_path):
    dataset = english_dataset()
    training = TrainConfig(model="local", epochs=2, batch_size=4, learning_rate=1e-3, max_length=32, seed=7)
    model, tokenizer = load_pretrained(str(save_tiny_english_model(tmp_path / "model", seed=3)))
    callback = ExplainCallback(tokenizer, dataset, ExplainConfig(n_explain=N_EXPLAIN, n_steps=4))
    train(model, tokenizer, dataset, training, tmp_path / "out", callbacks=[callback], report_to="mlflow")

    assert callback.failures == []
    client = MlflowClient()
    (run,) = client.search_runs([server_tracking])
    assert run.info.run_id == callback.run_id and run.info.status == "FINISHED"
    assert "eval_loss" in run.data.metrics  # the Trainer's own MLflowCallback, over the same HTTP store
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "probe_explain_seconds")]
    assert len(steps) == 3 and steps[0] == 0  # the baseline before training and one per evaluation
    _, table, step_metrics = load_step_table(run.info.run_id)  # the per-step files, over HTTP
    assert sorted(table.step.unique()) == steps
    assert table.groupby("step").sentence_id.nunique().tolist() == [N_EXPLAIN] * 3
    assert sorted(step_metrics) == steps and all("quality_comprehensiveness" in m for m in step_metrics.values())
    paths = artifact_paths(client, run.info.run_id)
    assert f"{artifacts.TRAINING_DIR}/{artifacts.HTML_FILE}" in paths
    assert f"{artifacts.TRAINING_DIR}/{artifacts.SUMMARY_PLOT}" in paths
    assert f"{artifacts.TRAINING_DIR}/{artifacts.SENTENCES_FILE}" in paths
    assert sum("training~sentence_00_" in p and p.endswith(".png") for p in paths) == 3


# --- two main jobs at once -------------------------------------------------------------------------


@dataclass
class Job:
    """One of the two concurrent ``main`` jobs: its data (texts and labels unlike the other's) and results."""

    name: str
    data: Path
    seed: int
    texts: set[str]
    run_id: str = ""
    model_uri: str = ""


def run_two_main_jobs_at_once(tmp_path: Path, uri: str, experiment_id: str) -> list[Job]:
    """Run ``mlflow-explain main`` twice at once, each on its own data and seed."""
    jobs = []
    for name, seed, rename in (
        ("alpha", 1, {"cooking": "kitchen", "football": "sport", "space": "astro"}),
        ("beta", 2, {"cooking": "food", "football": "soccer", "space": "cosmos"}),
    ):
        rows = [{"text": f"{name} {r['text']}", "label": rename[r["label"]]} for r in english_rows()]
        jobs.append(Job(name, write_csv(tmp_path / f"{name}.csv", rows), seed, {r["text"] for r in rows}))
    script = Path(sys.executable).parent / "mlflow-explain"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": experiment_id}
    processes = [
        subprocess.Popen(
            [str(script), "main", "--data", str(job.data), "--seed", str(job.seed), "--epochs", "1", *FAST],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    for job, process in zip(jobs, processes, strict=True):
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{job.name}:\n{stdout}\n{stderr[-4000:]}"
        lines = stdout.splitlines()
        job.run_id = next(line.split()[1].rstrip(":") for line in lines if line.startswith("run "))
        job.model_uri = next(line.split()[1] for line in lines if line.startswith("model: "))
    return jobs


def assert_runs_kept_apart(experiment_id: str, jobs: list[Job]) -> None:
    """Both runs finished, each with its complete artifact set and nothing of the other run."""
    client = MlflowClient()
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == {job.run_id for job in jobs}
    for job, other in (jobs, jobs[::-1]):
        run = client.get_run(job.run_id)
        assert run.info.status == "FINISHED", job.name
        assert run.data.params["data"] == str(job.data) and run.data.params["seed"] == str(job.seed)
        assert artifact_paths(client, job.run_id) >= EXPLANATION_FILES, job.name
        table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[job.run_id])
        assert table.sentence_id.nunique() == N_EXPLAIN
        assert set(table.text) <= job.texts, f"{job.name} holds rows of {other.name}"
        assert set(table.attributed_label) == set(run.data.params["labels"].split(","))
        uri = f"runs:/{job.run_id}/{artifacts.ARTIFACT_DIR}"
        sentences = json.loads(mlflow.artifacts.load_text(f"{uri}/{artifacts.SENTENCES_FILE}"))
        assert {row[sentences["columns"].index("text")] for row in sentences["data"]} == set(table.text)
        html = mlflow.artifacts.load_text(f"{uri}/{artifacts.HTML_FILE}")
        assert html.rstrip().endswith("</html>") and job.run_id[:8] in html
        assert all(text in html for text in set(table.text)) and f"{other.name} " not in html
        model = mlflow.get_logged_model(job.model_uri.removeprefix("models:/"))
        assert model.source_run_id == job.run_id
    assert len({client.get_run(job.run_id).data.tags[artifacts.SAMPLE_HASH_TAG] for job in jobs}) == 2


def test_two_main_jobs_at_once_over_http(server_tracking, tmp_path):
    jobs = run_two_main_jobs_at_once(tmp_path, mlflow.get_tracking_uri(), server_tracking)
    assert_runs_kept_apart(server_tracking, jobs)


def test_two_main_jobs_at_once_on_one_sqlite_file(tracking, tmp_path):
    experiment_id = mlflow.get_experiment_by_name("tests").experiment_id
    jobs = run_two_main_jobs_at_once(tmp_path, tracking, experiment_id)
    assert_runs_kept_apart(experiment_id, jobs)
