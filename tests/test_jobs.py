"""What the jobs log, exactly: every setting once as a param, the metrics, tags and artifacts, nothing else."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from builders import (
    KEYWORDS,
    english_rows,
    multi_label_rows,
    save_tiny_english_model,
    sqlite_store,
    write_csv,
    write_label_sets,
)
from click.testing import CliRunner

from mlflow_explain import artifacts
from mlflow_explain.cli import cli
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig, config_params
from mlflow_explain.jobs import run_main

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

REPO = Path(__file__).resolve().parents[1]

DATA_FACTS = {"n_train", "n_eval", "labels", "tokenizer_dictionary"}
"""Params that describe what the data and the tokenizer turned out to be, beside the settings."""

METRICS = {
    # evaluation and training (Trainer's log history: loss, runtime, ...)
    "eval_accuracy",
    "eval_macro_f1",
    "eval_loss",
    "eval_runtime",
    "train_seconds",
    "train_loss",
    "train_runtime",
    "train_grad_norm",
    "train_learning_rate",
    "train_total_flos",
    # explanation
    "explain_seconds",
    "explain_seconds_per_sentence",
    "n_explained",
    "sample_accuracy",
    "mean_predicted_probability",
    "convergence_delta_max",
    "convergence_delta_median",
    "convergence_failures",
    "unk_share",
    # quality
    "quality_comprehensiveness",
    "quality_comprehensiveness_random",
    "quality_sufficiency",
    "quality_sufficiency_random",
    "quality_seconds",
}

FILES = {
    f"{artifacts.ARTIFACT_DIR}/{name}"
    for name in (
        artifacts.TABLE_CSV,
        artifacts.TABLE_FILE,
        artifacts.HTML_FILE,
        artifacts.WORDS_HTML_FILE,
        artifacts.SENTENCES_FILE,
        artifacts.QUALITY_FILE,
    )
} | set(artifacts.ROOT_FILES)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One real ``main`` job (tiny model, one epoch, shapley-sampling with 50 permutations) in a sqlite store."""
    root = tmp_path_factory.mktemp("jobs")
    data = write_csv(root / "news.csv", english_rows())
    configs = (
        DataConfig(data=str(data)),
        TrainConfig(epochs=1),
        ExplainConfig(n_explain=2, n_steps=4, method="shapley-sampling", n_samples=50),
    )
    with sqlite_store(root):
        result = run_main(*configs)
        run = mlflow.get_run(result.run_id)
        explainer = mlflow.pyfunc.load_model(result.explainer_uri)
        paths = _artifact_paths(result.run_id)
        yield configs, result, run, explainer, paths


def _artifact_paths(run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for info in mlflow.MlflowClient().list_artifacts(run_id, path):
        out |= _artifact_paths(run_id, info.path) if info.is_dir else {info.path}
    return out


def test_main_logs_every_setting_once_as_a_param_and_nothing_else(job):
    configs, _, run, _, _ = job
    expected = {name: str(value) for name, value in config_params(*configs).items()}
    facts = {name: run.data.params[name] for name in DATA_FACTS}
    # the encoding read and whether the data holds label sets, not "auto"
    assert run.data.params == {**expected, "encoding": "utf-8", "multi_label": "false", **facts}
    assert run.data.params["n_samples"] == "50" and run.data.params["method"] == "shapley-sampling"
    assert facts == {
        "n_train": "30",
        "n_eval": "6",
        "labels": "cooking,football,space",
        "tokenizer_dictionary": "unidic_lite",
    }
    assert run.data.params["epochs"] == "1" and run.data.params["learning_rate"] == "0.001"  # resolved defaults


def test_main_logs_exactly_these_metrics_tags_and_artifacts(job):
    _, result, run, _, paths = job
    assert set(run.data.metrics) == METRICS
    assert run.data.metrics["n_explained"] == 2 and run.data.metrics["convergence_failures"] == 0
    ours = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert ours.keys() == {artifacts.SAMPLE_HASH_TAG, artifacts.METHOD_TAG}
    assert ours[artifacts.METHOD_TAG] == "shapley-sampling" and re.fullmatch(
        r"[0-9a-f]{16,}", ours[artifacts.SAMPLE_HASH_TAG]
    )
    plots = {p for p in paths if p.startswith(f"{artifacts.ARTIFACT_DIR}/{artifacts.PLOTS_DIR}/")}
    images = {p for p in paths if p.startswith(("images/", "table_images/"))}
    assert paths - plots - images == FILES
    assert len(plots) == 2 + 1  # one per sentence and the class summary
    assert len([p for p in images if p.startswith("images/") and p.endswith(".png")]) == 2 + 1
    assert result.model_uri.startswith("models:/") and result.explainer_uri.startswith("models:/")


def test_the_logged_explainer_serves_the_runs_method_and_settings(job):
    configs, _, _, explainer, _ = job
    model = explainer.unwrap_python_model()
    assert model.defaults["method"] == "shapley-sampling" and model.defaults["n_steps"] == 4
    assert model.config == configs[2]
    frame = pd.DataFrame({"text": ["the rocket launch today"]})
    served = explainer.predict(frame).scores[0]
    assert served == explainer.predict(frame, params={"method": "shapley-sampling"}).scores[0]
    assert served != explainer.predict(frame, params={"method": "lig"}).scores[0]


def test_every_setting_is_a_cli_option_an_mlproject_parameter_and_a_logged_param(job):
    _, _, run, _, _ = job
    spec = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    entries = {"main": (DataConfig, TrainConfig, ExplainConfig), "explain": (DataConfig, ExplainConfig)}
    for entry, classes in entries.items():
        options = {opt for param in cli.commands[entry].params for opt in param.opts}
        names = {f.name for cls in classes for f in fields(cls)} | ({"max_length"} if entry == "explain" else set())
        for name in names - {"model"} if entry == "explain" else names:
            assert f"--{name.replace('_', '-')}" in options, f"{entry}: setting {name} has no CLI option"
            assert name in spec[entry]["parameters"], f"{entry}: setting {name} is no MLproject parameter"
    main_fields = {f.name for cls in entries["main"] for f in fields(cls)}
    assert main_fields <= set(run.data.params), f"never logged: {main_fields - set(run.data.params)}"


def test_an_occlusion_run_logs_an_explainer_that_serves_occlusion(tmp_path):
    data = write_csv(tmp_path / "news.csv", english_rows())
    model = save_tiny_english_model(tmp_path / "model")
    args = ["explain", "--model", str(model), "--data", str(data), "--n-explain", "2", "--method", "occlusion"]
    with sqlite_store(tmp_path):
        result = CliRunner().invoke(cli, [*args, "--log-explainer"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        uri = next(line.split()[1] for line in result.output.splitlines() if line.startswith("explainer: "))
        explainer = mlflow.pyfunc.load_model(uri)
        run = mlflow.search_runs(output_format="list")[0]
    assert explainer.unwrap_python_model().defaults["method"] == "occlusion"
    assert run.data.params["max_length"] == "" and run.data.params["model"] == str(model)
    assert "epochs" not in run.data.params  # explain trains nothing: no training settings


TOPICS = tuple(sorted(KEYWORDS))
MULTI_LABEL_METRICS = (METRICS - {"eval_accuracy"}) | {"eval_micro_f1", "eval_subset_accuracy"}
MULTI_LABEL_METRICS |= {f"eval_{kind}_{label}" for kind in ("precision", "recall", "f1") for label in TOPICS}
MULTI_LABEL_METRICS |= {"n_steps_max", "n_steps_mean"}  # lig integrates; shapley-sampling above does not


@pytest.fixture(scope="module")
def multi_label_job(tmp_path_factory):
    """``mlflow-explain main --data tags.csv`` on a CSV of '|'-separated label sets (lig, predicted and true labels)."""
    root = tmp_path_factory.mktemp("multi-label")
    data = write_label_sets(root / "tags.csv", multi_label_rows(per_set=8))
    args = ["main", "--data", str(data), "--epochs", "2", "--n-explain", "6", "--target", "predicted+true"]
    with sqlite_store(root):
        done = CliRunner().invoke(cli, [*args, "--threshold", "0.4"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        (run,) = mlflow.search_runs(output_format="list")
        sentences = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}", run_ids=[run.info.run_id])
        page = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=artifacts.HTML_FILE))
        components = mlflow.transformers.load_model(f"runs:/{run.info.run_id}/model", return_type="components")
        yield run, _artifact_paths(run.info.run_id), sentences, page.read_text("utf-8"), components["model"]


def test_a_multi_label_main_job_logs_its_settings_and_what_the_data_is(multi_label_job):
    run, _, _, _, model = multi_label_job
    configs = (
        DataConfig(data=run.data.params["data"]),
        TrainConfig(epochs=2.0),  # as the CLI reads it
        ExplainConfig(n_explain=6, target="predicted+true", threshold=0.4),
    )
    expected = {name: str(value) for name, value in config_params(*configs).items()}
    assert run.data.params == {
        **expected,
        "encoding": "utf-8",
        "multi_label": "true",  # read from the data (the setting was auto)
        "n_train": "36",
        "n_eval": "12",
        "labels": ",".join(TOPICS),
        "tokenizer_dictionary": "unidic_lite",
    }
    assert model.config.problem_type == "multi_label_classification"


def test_a_multi_label_main_job_logs_micro_macro_and_per_label_figures_and_the_usual_artifacts(multi_label_job):
    run, paths, _, _, _ = multi_label_job
    assert set(run.data.metrics) == MULTI_LABEL_METRICS
    for name in MULTI_LABEL_METRICS:
        if name.startswith(("eval_f1", "eval_precision", "eval_recall", "eval_micro", "eval_macro", "eval_subset")):
            assert 0.0 <= run.data.metrics[name] <= 1.0, name
    plots = {p for p in paths if p.startswith(f"{artifacts.ARTIFACT_DIR}/{artifacts.PLOTS_DIR}/")}
    images = {p for p in paths if p.startswith(("images/", "table_images/"))}
    assert paths - plots - images == FILES and len(plots) == 6 + 1


def test_a_multi_label_main_job_shows_the_label_sets_it_explained(multi_label_job):
    _, _, sentences, page, _ = multi_label_job
    assert set(sentences.true_label) == {*TOPICS, "cooking|football", "cooking|space", "football|space"}
    for row in sentences.itertuples():
        assert set(row.predicted_label.split("|")) <= set(TOPICS)
        assert row.correct == (row.true_label == row.predicted_label)
        assert f'<td class="label">{row.true_label}</td>' in page
    assert "football|space" in page
