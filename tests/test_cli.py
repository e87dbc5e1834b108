"""The mlflow-explain CLI on CSV, livedoor-layout and local-model inputs, into a real sqlite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from builders import english_rows, save_tiny_english_model, write_csv, write_livedoor
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.cli import cli
from mlflow_explain.config import DataConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.modeling import evaluate
from mlflow_explain.tracking import load_logged_model

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

FAST = ["--n-explain", "3", "--n-steps", "4"]


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def only_run(status: str | None = None):
    runs = MlflowClient().search_runs(experiment_ids=[mlflow.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    if status:
        assert runs[0].info.status == status
    return runs[0]


def test_main_on_csv_then_explain_logged_model(tracking, tmp_path):
    data = write_csv(tmp_path / "news.csv", english_rows(), columns=("sentence", "category"))
    common = ["--data", str(data), "--text-column", "sentence", "--label-column", "category"]
    result = invoke("main", *common, "--epochs", "3", *FAST)
    assert result.exit_code == 0, result.output
    run = only_run("FINISHED")
    client = MlflowClient()
    assert run.data.params["data"] == str(data)
    assert run.data.params["labels"] == "cooking,football,space"
    assert run.data.params["epochs"] == "3.0" and run.data.params["n_steps"] == "4"
    # The evaluation figures are those of the logged model on the evaluation split.
    model_uri = next(line.split()[1] for line in result.output.splitlines() if line.startswith("model: "))
    classifier, tokenizer = load_logged_model(model_uri)
    split = load_dataset(DataConfig(data=str(data), text_column="sentence", label_column="category"))
    expected = evaluate(classifier, tokenizer, split, 128)
    assert run.data.metrics["eval_accuracy"] == pytest.approx(expected["accuracy"])
    assert run.data.metrics["eval_macro_f1"] == pytest.approx(expected["macro_f1"])
    assert run.data.metrics["n_explained"] == 3
    # Faithfulness metrics are on by default (run-level means and a per-sentence table); the
    # randomisation check is opt-in.
    assert {"quality_comprehensiveness", "quality_sufficiency_random"} <= set(run.data.metrics)
    assert "quality_randomization_spearman" not in run.data.metrics
    quality = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.QUALITY_FILE}", run_ids=[run.info.run_id])
    assert sorted(quality.sentence_id) == [0, 1, 2]
    assert run.data.params["method"] == "lig"
    assert len(run.data.tags[artifacts.SAMPLE_HASH_TAG]) == 16
    # Training curves are logged per epoch.
    assert len(client.get_metric_history(run.info.run_id, "eval_loss")) == 3
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
    assert set(table.attributed_label) == {"cooking", "football", "space"}  # real names, not LABEL_i
    assert table.sentence_id.nunique() == 3

    # The embedded model is logged with its own model card (not one looked up on the Hub).
    card = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model/model_card.md", dst_path=str(tmp_path))
    text = Path(card).read_text(encoding="utf-8")
    assert "# tiny-bert-ja" in text and "labels: cooking, football, space" in text

    # The logged model explains again without training, on the same sample.
    result = invoke("explain", "--model", f"runs:/{run.info.run_id}/model", *common, *FAST)
    assert result.exit_code == 0, result.output
    runs = client.search_runs([run.info.experiment_id], order_by=["attributes.start_time DESC"])
    second = runs[0]
    assert second.info.run_id != run.info.run_id and second.info.status == "FINISHED"
    assert second.data.tags[artifacts.SAMPLE_HASH_TAG] == run.data.tags[artifacts.SAMPLE_HASH_TAG]
    assert second.data.metrics["eval_accuracy"] == pytest.approx(run.data.metrics["eval_accuracy"])


def test_main_on_livedoor_folder_with_body_text(tracking, tmp_path):
    articles = {
        "sports-watch": [(f"試合{i}", f"サッカー日本代表が試合に勝利した。得点{i}") for i in range(6)],
        "movie-enter": [(f"映画{i}", f"新作映画が公開され監督が舞台挨拶した。{i}") for i in range(6)],
    }
    root = write_livedoor(tmp_path / "livedoor", articles)
    result = invoke("main", "--data", str(root), "--text-field", "body", "--epochs", "2", *FAST)
    assert result.exit_code == 0, result.output
    run = only_run("FINISHED")
    assert run.data.params["labels"] == "movie-enter,sports-watch"
    assert run.data.params["n_train"] == "10" and run.data.params["n_eval"] == "2"
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
    assert table.text.str.contains("監督|サッカー").all()  # bodies, not titles


def test_explain_local_model_folder(tracking, tmp_path):
    model = save_tiny_english_model(tmp_path / "model", id2label=False)
    data = write_csv(tmp_path / "news.csv", english_rows())
    result = invoke(
        "explain", "--model", str(model), "--data", str(data), "--target", "predicted", "--quality", "false", *FAST
    )
    assert result.exit_code == 0, result.output
    run = only_run("FINISHED")
    assert not any(name.startswith("quality_") for name in run.data.metrics)
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
    assert (table.attributed_label == table.predicted_label).all()
    assert set(table.predicted_label) <= {"cooking", "football", "space"}


def test_bad_data_is_a_one_line_error_and_no_run(tracking, tmp_path):
    result = invoke("main", "--data", str(tmp_path / "missing.csv"))
    assert result.exit_code == 1
    assert "missing.csv: no such file or folder" in result.output
    assert "Traceback" not in result.output
    runs = MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id])
    assert runs == []


def test_bad_settings_are_rejected_before_any_work(tracking):
    result = invoke("main", "--n-steps", "0")
    assert result.exit_code == 1 and "n_steps must be between 1 and 4096" in result.output
    result = invoke("main", "--epochs", "-1")
    assert result.exit_code == 2 and "epochs must be positive" in result.output
    result = invoke("main", "--quality", "false", "--randomization", "true")
    assert result.exit_code == 1 and "set quality to true as well" in result.output


def test_randomization_check_is_opt_in(tracking, tmp_path):
    model = save_tiny_english_model(tmp_path / "model")
    data = write_csv(tmp_path / "news.csv", english_rows())
    result = invoke("explain", "--model", str(model), "--data", str(data), "--randomization", *FAST)
    assert result.exit_code == 0, result.output
    run = only_run("FINISHED")
    assert run.data.params["randomization"] == "true"
    quality = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.QUALITY_FILE}", run_ids=[run.info.run_id])
    assert quality.randomization_spearman.notna().all()
    spearman = run.data.metrics["quality_randomization_spearman"]
    assert spearman == pytest.approx(quality.randomization_spearman.mean())  # the run figure is the sentences' mean


def test_model_that_does_not_fit_the_data_fails_the_run(tracking, tmp_path):
    model = save_tiny_english_model(tmp_path / "model", labels=["a", "b"], id2label=False)
    data = write_csv(tmp_path / "news.csv", english_rows())
    result = invoke("explain", "--model", str(model), "--data", str(data), *FAST)
    assert result.exit_code == 1
    assert "the model has 2 outputs but the data has 3 labels" in result.output
    only_run("FAILED")


def test_methods_lists_the_registry():
    result = invoke("methods")
    assert result.exit_code == 0
    assert "interpret-lig" in result.output
