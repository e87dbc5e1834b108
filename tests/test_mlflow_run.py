"""`mlflow run .` end to end (main, then explain with the logged model) into a temporary sqlite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_explain import artifacts

REPO = Path(__file__).resolve().parents[1]


def mlflow_run(tmp_path: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")},
        "MLFLOW_TRACKING_URI": uri,
        # The entry points call the `mlflow-explain` script installed next to this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", "--experiment-name", "e2e"]
    return subprocess.run(
        [*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.slow
def test_mlflow_run_main_then_explain(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e2e", artifact_location=(tmp_path / "artifacts").as_uri())

    done = mlflow_run(tmp_path, uri, "-P", "epochs=4", "-P", "n_explain=4", "-P", "n_steps=8", "-P", "explain_every=2")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = client.search_runs([experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "4" and run.data.params["model"] == "tiny-bert-ja"
    assert {"eval_accuracy", "eval_macro_f1", "explain_seconds_per_sentence"} <= set(run.data.metrics)
    names = {a.path for a in client.list_artifacts(run.info.run_id, artifacts.ARTIFACT_DIR)}
    assert {f"{artifacts.ARTIFACT_DIR}/{n}" for n in (artifacts.TABLE_FILE, artifacts.HTML_FILE)} <= names
    plots = client.list_artifacts(run.info.run_id, f"{artifacts.ARTIFACT_DIR}/{artifacts.PLOTS_DIR}")
    assert len(plots) == 4 + 1  # one per sentence and the summary
    # The Trainer callback explained the same sample on the 2nd and 4th evaluation, in the same run.
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)  # load_table searches the active experiment
    try:
        during = mlflow.load_table(f"{artifacts.TRAINING_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
        components = mlflow.transformers.load_model(f"runs:/{run.info.run_id}/model", return_type="components")
    finally:
        mlflow.set_tracking_uri(None)
    assert components["model"].config.id2label[0] == "dokujo-tsushin"
    assert sorted(during.epoch.unique()) == [2.0, 4.0]
    assert during.sentence_id.nunique() == 4

    done = mlflow_run(tmp_path, uri, "-e", "explain", "-P", f"model=runs:/{run.info.run_id}/model", "-P", "n_explain=4")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == 2
    explained = runs[0]
    assert explained.info.status == "FINISHED"
    assert explained.data.tags[artifacts.SAMPLE_HASH_TAG] == run.data.tags[artifacts.SAMPLE_HASH_TAG]
    assert explained.data.metrics["eval_accuracy"] == pytest.approx(run.data.metrics["eval_accuracy"])
    assert not (REPO / "mlruns").exists() or not any((REPO / "mlruns").iterdir())
