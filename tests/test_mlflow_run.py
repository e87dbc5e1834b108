"""`mlflow run .` end to end (main, then explain with the logged model) into a temporary sqlite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from builders import multi_label_rows, write_label_sets
from mlflow import MlflowClient

from mlflow_explain import artifacts, ui_view
from mlflow_explain.tracking import load_step_table

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


def checkout_store() -> dict[str, int]:
    """Files of the checkout's own tracking store (``mlflow.db``, ``mlruns/``) with their modification times.

    A user may have run ``mlflow run .`` in the checkout before the tests: the tests must neither depend on
    that store nor write into it.
    """
    paths = [REPO / "mlflow.db", *((REPO / "mlruns").rglob("*") if (REPO / "mlruns").is_dir() else [])]
    return {str(p): p.stat().st_mtime_ns for p in paths if p.is_file()}


@pytest.mark.slow
def test_mlflow_run_main_then_explain(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e2e", artifact_location=(tmp_path / "artifacts").as_uri())
    before = checkout_store()

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
        _, during, _ = load_step_table(run.info.run_id)
        components = mlflow.transformers.load_model(f"runs:/{run.info.run_id}/model", return_type="components")
    finally:
        mlflow.set_tracking_uri(None)
    assert components["model"].config.id2label[0] == "dokujo-tsushin"
    assert sorted(during.epoch.unique()) == [0.0, 2.0, 4.0]  # the untrained baseline, then every 2nd epoch
    assert during.sentence_id.nunique() == 4

    done = mlflow_run(tmp_path, uri, "-e", "explain", "-P", f"model=runs:/{run.info.run_id}/model", "-P", "n_explain=4")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == 2
    explained = runs[0]
    assert explained.info.status == "FINISHED"
    assert explained.data.tags[artifacts.SAMPLE_HASH_TAG] == run.data.tags[artifacts.SAMPLE_HASH_TAG]
    assert explained.data.metrics["eval_accuracy"] == pytest.approx(run.data.metrics["eval_accuracy"])
    assert checkout_store() == before  # nothing was written into the checkout's own store


@pytest.mark.slow
def test_runs_with_other_training_seeds_and_methods_explain_the_same_sentences(tmp_path, monkeypatch):
    """Issue #11's check: seed=1, seed=2 and method=occlusion compare without force and join by text."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e2e", artifact_location=(tmp_path / "artifacts").as_uri())
    fast = ("-P", "epochs=2", "-P", "n_explain=6", "-P", "n_steps=8")
    for extra in (("-P", "seed=1"), ("-P", "seed=2"), ("-P", "method=occlusion")):
        done = mlflow_run(tmp_path, uri, *fast, *extra)
        assert done.returncode == 0, done.stderr[-3000:]
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.params["seed"] for r in runs] == ["1", "2", "42"]
    assert len({r.data.tags[artifacts.SAMPLE_HASH_TAG] for r in runs}) == 1
    assert {r.data.params["sample_seed"] for r in runs} == {"42"}
    ids = [r.info.run_id for r in runs]
    assert "explanations in the MLflow UI: http://127.0.0.1:5000/#/experiments/" in done.stdout
    view = ui_view.image_keys_of(client.get_experiment(experiment_id).tags[ui_view.TAG])
    assert len(view) == 6 + 1 and artifacts.IMAGE_KEY_SUMMARY in view  # the same six sentences in every run

    done = mlflow_run(tmp_path, uri, "-e", "compare", "-P", f"run_ids={','.join(ids)}")
    assert done.returncode == 0, done.stderr[-3000:]
    comparison = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert comparison.info.status == "FINISHED"
    assert comparison.data.tags[artifacts.COMPARED_RUNS_TAG] == ",".join(ids)
    assert comparison.info.run_name == "compare: " + " vs ".join(r.info.run_name for r in runs)
    assert comparison.data.metrics["n_sentences"] == 6 and comparison.data.params["force"].lower() == "false"

    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    try:
        tables = mlflow.load_table(
            f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}", run_ids=ids, extra_columns=["run_id"]
        )
    finally:
        mlflow.set_tracking_uri(None)
    joined = tables.pivot(index="text", columns="run_id", values="top_words")
    assert joined.shape == (6, 3) and joined.notna().all().all()  # every sentence in every run
    assert tables.groupby("text").key.nunique().eq(1).all()
    assert (tables[artifacts.SENTENCE_IMAGE_COLUMN].map(lambda cell: cell["type"]) == "image").all()


@pytest.mark.slow
def test_mlflow_run_trains_evaluates_and_explains_a_multi_label_csv(tmp_path):
    """Issue #16: a CSV of '|'-separated label sets through `mlflow run .` (main, then explain with its model)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e2e", artifact_location=(tmp_path / "artifacts").as_uri())
    data = write_label_sets(tmp_path / "tags.csv", multi_label_rows(per_set=8))

    done = mlflow_run(tmp_path, uri, "-P", f"data={data}", "-P", "n_explain=6", "-P", "target=predicted")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = client.search_runs([experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["multi_label"], params["multi_label_resolved"]) == ("auto", "true")
    # mlflow run logs each parameter as it passes it to the shell (quoted); the value used follows
    assert (params["label_separator"], params["label_separator_resolved"]) == ("'|'", "|")
    assert params["threshold"] == "0.5" and params["epochs_resolved"] == "30.0"  # 3 batches an epoch: the most
    metrics = run.data.metrics
    # Chance: every label for every text has micro-F1 0.67 (1.5 true labels of 3) and no exact match.
    assert metrics["eval_micro_f1"] > 0.7 and metrics["eval_macro_f1"] > 0.7 and metrics["eval_subset_accuracy"] > 0.3
    assert {f"eval_f1_{label}" for label in ("cooking", "football", "space")} <= set(metrics)
    sentences = client.download_artifacts(run.info.run_id, f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}")
    table = json.loads(Path(sentences).read_text("utf-8"))
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    label_sets = {"cooking", "football", "space", "cooking|football", "cooking|space", "football|space"}
    assert {r["true_label"] for r in rows} == label_sets
    model_uri = f"runs:/{run.info.run_id}/model"

    done = mlflow_run(
        tmp_path, uri, "-e", "explain", "-P", f"model={model_uri}", "-P", f"data={data}", "-P", "n_explain=6"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    explained = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert explained.info.status == "FINISHED" and explained.data.params["multi_label_resolved"] == "true"
    assert explained.data.metrics["eval_micro_f1"] == pytest.approx(metrics["eval_micro_f1"])
    assert explained.data.tags[artifacts.SAMPLE_HASH_TAG] == run.data.tags[artifacts.SAMPLE_HASH_TAG]
