"""Logging explanations to a real sqlite tracking store."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.errors import TrackingError
from mlflow_explain.explanation import TABLE_COLUMNS, Explanation, LabelAttribution, TokenScore
from mlflow_explain.render.files import write_explanations
from mlflow_explain.sampling import sentence_key
from mlflow_explain.tracking import log_explanations


def _explanation(sentence_id: int, text: str, scale: float = 1.0) -> Explanation:
    pieces = ["[CLS]", "サッカー", "日本", "代表", "[SEP]"]
    tokens = tuple(
        TokenScore(p, tok, 0.0 if p in (0, 4) else scale * (p - 2) / 3, -1 if p in (0, 4) else p - 1, p in (0, 4))
        for p, tok in enumerate(pieces)
    )
    attributions = (
        LabelAttribution("sports-watch", 0.8, tokens, convergence_delta=0.01 * scale),
        LabelAttribution("topic-news", 0.2, tokens, convergence_delta=-0.03),
    )
    return Explanation(sentence_id, text, "sports-watch", "sports-watch", 0.8, attributions, n_tokens=5)


def _artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        out |= _artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_log_explanations_writes_every_artifact_and_metric(tracking):
    explanations = [_explanation(0, "サッカー日本代表"), _explanation(1, "<script>alert(1)</script>")]
    with mlflow.start_run() as run:
        metrics = log_explanations(explanations, step=3, extra_metrics={"explain_seconds": 1.5})
    client = MlflowClient()
    paths = _artifact_paths(client, run.info.run_id)
    expected = {
        f"{artifacts.ARTIFACT_DIR}/{name}"
        for name in (
            artifacts.TABLE_FILE,
            artifacts.TABLE_CSV,
            artifacts.SENTENCES_FILE,
            artifacts.HTML_FILE,
            artifacts.WORDS_HTML_FILE,
            f"{artifacts.PLOTS_DIR}/sentence_000.png",
            f"{artifacts.PLOTS_DIR}/sentence_001.png",
            f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}",
        )
    }
    assert expected <= paths
    # The compare page lists the artifacts at the root: the summary picture and the page are there too.
    assert {artifacts.SUMMARY_IMAGE, artifacts.HTML_FILE} <= paths
    assert not any(p.endswith(".tmp") for p in paths)
    assert not any(p.startswith(f"{artifacts.ARTIFACT_DIR}/{artifacts.STRIPS_DIR}") for p in paths)
    data = client.get_run(run.info.run_id).data
    assert data.metrics["explain_seconds"] == 1.5
    assert data.metrics["sample_accuracy"] == 1.0
    assert data.metrics["convergence_delta_max"] == pytest.approx(0.03)
    assert metrics["convergence_delta_median"] == pytest.approx(0.02)
    history = client.get_metric_history(run.info.run_id, "sample_accuracy")
    assert [m.step for m in history] == [3]

    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}")
    assert '<meta charset="utf-8">' in html
    assert "サッカー" in html and "<script>alert" not in html and "&lt;script&gt;" in html

    # Each sentence's token strip is an image series named by the sentence, for the UI's chart view.
    image_files = {p for p in paths if p.startswith("images/")}
    for explanation in explanations:
        key = artifacts.IMAGE_KEY_SENTENCE.format(
            sentence_id=explanation.sentence_id, key=sentence_key(explanation.text)
        )
        assert any(key.replace("/", "~") in p and "step+3" in p for p in image_files), key
    assert any("top_tokens" in p for p in image_files)

    # The per-sentence table is a registered table with one row and one strip per sentence.
    logged = json.loads(data.tags["mlflow.loggedArtifacts"])
    assert {"path": f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}", "type": "table"} in logged
    table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}", run_ids=[run.info.run_id])
    assert table["key"].tolist() == [sentence_key(e.text) for e in explanations]
    assert table["top_words"].iloc[0] == "代表 +0.33 · 日本 +0.00 · サッカー -0.33"
    images = table[artifacts.SENTENCE_IMAGE_COLUMN].tolist()
    assert all(image["type"] == "image" and image["filepath"] in paths for image in images)
    strip = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{images[0]['filepath']}")
    from PIL import Image

    with Image.open(strip) as picture:  # shown unscaled: the UI's thumbnails are at most 256 pixels
        assert picture.size == (256, 256)


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_load_table_joins_runs(tracking):
    run_ids = []
    for scale in (1.0, 2.0):
        with mlflow.start_run() as run:
            log_explanations([_explanation(0, "サッカー日本代表", scale)])
        run_ids.append(run.info.run_id)
    table = mlflow.load_table(
        f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=run_ids, extra_columns=["run_id"]
    )
    assert set(TABLE_COLUMNS) <= set(table.columns)
    assert len(table) == 2 * 2 * 5  # runs x labels x tokens
    by_run = table[table.token == "代表"].groupby("run_id").attribution.max()
    assert by_run[run_ids[1]] == pytest.approx(2 * by_run[run_ids[0]])


def test_write_explanations_is_pure_local(tmp_path):
    written = write_explanations([_explanation(0, "サッカー日本代表")], tmp_path / "out")
    table = json.loads((tmp_path / "out" / artifacts.TABLE_FILE).read_text("utf-8"))
    assert table["columns"] == list(TABLE_COLUMNS)
    assert len(table["data"]) == 10
    assert all(path.exists() for path in written.values())


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_failed_upload_keeps_explanations_locally(tracking, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the artifact folder should be")
    experiment = mlflow.create_experiment("broken", artifact_location=(blocker / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment), pytest.raises(TrackingError) as raised:
        log_explanations([_explanation(0, "サッカー日本代表")])
    message = str(raised.value)
    assert "The explanations are kept in " in message
    kept = message.rsplit("kept in ", 1)[1].rstrip(".")
    from pathlib import Path

    assert (Path(kept) / artifacts.HTML_FILE).is_file()
    assert (Path(kept) / artifacts.TABLE_FILE).is_file()


def test_image_series_files_are_the_ones_mlflow_log_image_writes(tracking):
    """The UI finds image series by their file names: ours must be MLflow's, whatever its version."""
    import re

    from PIL import Image

    from mlflow_explain.tracking import log_run_images

    client = MlflowClient()
    picture = Image.new("RGB", (300, 200), "#2e9d4f")
    with mlflow.start_run() as theirs:
        client.log_image(theirs.info.run_id, picture, key="training/sentence_0 a-b.c", step=3)
    with mlflow.start_run() as ours:
        log_run_images(ours.info.run_id, {"training/sentence_0 a-b.c": picture}, step=3)

    def files(run_id: str) -> dict[str, tuple[int, int]]:
        listed = [f.path for f in client.list_artifacts(run_id, "images")]
        assert len(listed) == 2
        sizes = {}
        for path in listed:
            with Image.open(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)) as image:
                masked = re.sub(r"\+timestamp\+\d{13}\+[0-9a-f-]{36}", "+timestamp+T+ID", path)
                sizes[masked] = image.size
        return sizes

    assert files(ours.info.run_id) == files(theirs.info.run_id)
    assert files(ours.info.run_id)["images/training~sentence_0 a-b.c+step+3+timestamp+T+ID+compressed.webp"] == (
        256,
        170,
    )
    for run in (ours, theirs):
        assert client.get_run(run.info.run_id).data.tags["mlflow.loggedImages"] == "True"
    with pytest.raises(ValueError, match="image key"):
        log_run_images(ours.info.run_id, {"sentence:1": picture}, step=0)


def test_the_training_history_is_logged_as_metric_series_in_batches(tracking, monkeypatch):
    from mlflow_explain.tracking import runs

    monkeypatch.setattr(runs, "HISTORY_BATCH", 3)  # 7 values: three calls
    history = [
        {"loss": 2.0, "grad_norm": 1.5, "learning_rate": 1e-3, "epoch": 1.0, "step": 26},
        {"eval_loss": 1.8, "eval_runtime": 0.02, "eval_samples_per_second": 900.0, "epoch": 1.0, "step": 26},
        {"loss": 1.0, "epoch": 2.0, "step": 52},
        {"train_runtime": 7.0, "train_loss": 1.5, "epoch": 2.0, "step": 52},
    ]
    with mlflow.start_run() as run:
        runs.log_training_history(history)
    client = MlflowClient()
    series = {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in (
            "train_loss",
            "train_grad_norm",
            "train_learning_rate",
            "eval_loss",
            "eval_runtime",
            "train_runtime",
        )
    }
    assert sorted(series["train_loss"]) == [(26, 2.0), (52, 1.0), (52, 1.5)]
    assert series["train_grad_norm"] == [(26, 1.5)] and series["eval_loss"] == [(26, 1.8)]
    assert series["eval_runtime"] == [(26, 0.02)] and series["train_runtime"] == [(52, 7.0)]
    assert "eval_samples_per_second" not in client.get_run(run.info.run_id).data.metrics
