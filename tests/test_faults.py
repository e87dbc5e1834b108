"""Tracking faults against a real ``mlflow server``, and artifact files that are written all or nothing."""

from __future__ import annotations

import errno
import json
import re
import shutil
import time
from pathlib import Path

import mlflow
import pytest
from builders import english_rows, write_csv
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow_server import free_port, start_mlflow_server

from mlflow_explain import artifacts, jobs, tracking
from mlflow_explain.cli import cli
from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore
from mlflow_explain.modeling import load_pretrained
from mlflow_explain.render.files import write_explanations

FAST = ["--n-explain", "3", "--n-steps", "4"]


@pytest.fixture
def fail_fast(monkeypatch):
    """MLflow gives up on a dead server at once instead of retrying for minutes; resets the tracking URI after."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def use_tracking_uri(monkeypatch, uri: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)


@pytest.mark.parametrize("command", ["main", "explain"])
def test_unreachable_server_is_one_clear_error_before_any_work(command, tmp_path, monkeypatch, fail_fast):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    use_tracking_uri(monkeypatch, uri)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the job went on although the tracking server is unreachable")

    for name in ("load_dataset", "build_embedded_model", "load_pretrained", "train"):
        monkeypatch.setattr(jobs, name, must_not_run)
    data = write_csv(tmp_path / "news.csv", english_rows())
    args = ["--data", str(data), *FAST] + (["--model", str(tmp_path / "model")] if command == "explain" else [])
    result = CliRunner().invoke(cli, [command, *args], catch_exceptions=False)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot reach the MLflow tracking server at {uri} (ConnectionError: ")
    assert result.output.endswith(
        "Start it (mlflow server --host 127.0.0.1 --port 5000) or set MLFLOW_TRACKING_URI to a reachable store.\n"
    )
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.slow
def test_server_stopped_mid_run_fails_the_job_and_keeps_the_explanations(tmp_path, monkeypatch, fail_fast):
    data = write_csv(tmp_path / "news.csv", english_rows())
    with start_mlflow_server(tmp_path / "server") as server:
        use_tracking_uri(monkeypatch, server.url)
        mlflow.set_experiment("faults")
        explain_sample = jobs.explain_sample

        def explain_then_stop_the_server(*args, **kwargs):
            explanations = explain_sample(*args, **kwargs)
            server.stop()  # the server goes away after training and explaining, before anything else is logged
            return explanations

        monkeypatch.setattr(jobs, "explain_sample", explain_then_stop_the_server)
        result = CliRunner().invoke(cli, ["main", "--data", str(data), "--epochs", "1", *FAST], catch_exceptions=False)

    assert result.exit_code == 1
    output = result.output.strip()
    assert "Traceback" not in output
    match = re.fullmatch(
        rf"Error: the MLflow tracking store at {re.escape(server.url)} failed \((MlflowException: .+)\)\. "
        r"The explanations are kept in (/\S+)\. The trained model is kept in (/\S+)\. "
        r"Run \w+ could not be marked FAILED \(\w+\) and shows as RUNNING; .+",
        output.splitlines()[-1],
    )
    assert match, output
    assert "Connection refused" in match[1]
    kept = Path(match[2])
    shutil.rmtree(match[3], ignore_errors=True)
    try:
        assert sorted(p.name for p in kept.iterdir() if p.is_file()) == sorted(
            [
                artifacts.TABLE_CSV,
                artifacts.TABLE_FILE,
                artifacts.HTML_FILE,
                artifacts.WORDS_HTML_FILE,
                artifacts.SENTENCES_FILE,
                artifacts.QUALITY_FILE,
                artifacts.SUMMARY_IMAGE,
            ]
        )
        assert len(list((kept / artifacts.STRIPS_DIR).glob("*.png"))) == 3
        table = json.loads((kept / artifacts.TABLE_FILE).read_text("utf-8"))
        texts = {row[table["columns"].index("text")] for row in table["data"]}
        assert len(texts) == 3 and texts <= {r["text"] for r in english_rows()}
        html = (kept / artifacts.HTML_FILE).read_text("utf-8")
        assert html.rstrip().endswith("</html>") and all(text in html for text in texts)
        assert len(list((kept / artifacts.PLOTS_DIR).glob("*.png"))) == 3 + 1
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    # The run holds what was logged before the server went away; it could not be marked FAILED.
    (run,) = MlflowClient(server.backend_store_uri).search_runs(
        [MlflowClient(server.backend_store_uri).get_experiment_by_name("faults").experiment_id]
    )
    assert run.info.status == "RUNNING" and run.data.params["n_explain"] == "3"


KILLED = {
    "training": (jobs, "train", "after"),
    "explaining": (jobs, "explain_sample", "after"),
    "logging": (
        tracking,
        "log_model",
        "before",
    ),
}
"""Where the server is killed: (module, function, before or after the real call)."""

BUDGET_SECONDS = 60
"""How soon after the server dies the job must have failed: our retry budget is about 10 s per call."""


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(KILLED))
def test_a_server_killed_in_each_phase_fails_the_job_soon_and_keeps_model_and_explanations(
    phase, tmp_path, monkeypatch
):
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    ):
        monkeypatch.delenv(name, raising=False)  # the job's own retry budget applies
    data = write_csv(tmp_path / "news.csv", english_rows())
    module, name, when = KILLED[phase]
    real, killed_at = getattr(module, name), []
    try:
        with start_mlflow_server(tmp_path / "server") as server:
            use_tracking_uri(monkeypatch, server.url)
            mlflow.set_experiment("faults")

            def kill_the_server(*args, **kwargs):
                if when == "before":
                    server.stop(), killed_at.append(time.monotonic())
                out = real(*args, **kwargs)
                if when == "after":
                    server.stop(), killed_at.append(time.monotonic())
                return out

            monkeypatch.setattr(module, name, kill_the_server)
            result = CliRunner().invoke(cli, ["main", "--data", str(data), "--epochs", "1", *FAST])
            seconds = time.monotonic() - killed_at[0]
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # the CLI's error exit, no crash
    assert seconds < BUDGET_SECONDS, f"the job took {seconds:.0f} s to fail after the server died"
    (line,) = result.output.strip().splitlines()[-1:]
    assert (
        line.startswith(f"Error: the MLflow tracking store at {server.url} failed (")
        and "Traceback" not in result.output
    )
    model_folder = re.search(r"The trained model is kept in (/\S+)\.", line)[1]
    explanations = re.search(r"The explanations are kept in (/\S+)\.", line)[1]
    assert re.search(r"Run \w+ could not be marked FAILED \(\w+\) and shows as RUNNING", line)
    try:
        model, _ = load_pretrained(model_folder)
        assert sorted(model.config.label2id) == sorted({r["label"] for r in english_rows()})
        assert (Path(explanations) / artifacts.HTML_FILE).read_text("utf-8").rstrip().endswith("</html>")
    finally:
        shutil.rmtree(model_folder, ignore_errors=True)
        shutil.rmtree(explanations, ignore_errors=True)
    client = MlflowClient(server.backend_store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert run.info.status == "RUNNING"  # as the message says; it could not be marked


# --- all-or-nothing files ---------------------------------------------------------------------------


def _explanation(sentence_id: int, text: str) -> Explanation:
    pieces = ["[CLS]", *text.split(), "[SEP]"]
    tokens = tuple(TokenScore(p, token, 0.1 * p, p - 1, token.startswith("[")) for p, token in enumerate(pieces))
    return Explanation(sentence_id, text, "a", "a", 0.9, (LabelAttribution("a", 0.9, tokens),), n_tokens=len(pieces))


def _all_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_write_explanations_leaves_only_complete_files(tmp_path):
    written = write_explanations([_explanation(0, "東京 の 天気"), _explanation(1, "rocket launch")], tmp_path)
    assert _all_files(tmp_path) == {str(p.relative_to(tmp_path)) for p in written.values()}  # no .tmp file
    for name in (artifacts.TABLE_FILE, artifacts.SENTENCES_FILE):
        json.loads((tmp_path / name).read_text("utf-8"))
    assert (tmp_path / artifacts.HTML_FILE).read_text("utf-8").rstrip().endswith("</html>")


def test_a_write_that_fails_halfway_keeps_the_previous_complete_file(tmp_path, monkeypatch):
    write_explanations([_explanation(0, "東京 の 天気")], tmp_path)
    before = _all_files(tmp_path)
    old_html = (tmp_path / artifacts.HTML_FILE).read_bytes()
    write_text = Path.write_text

    def disk_full_in_the_html(self, data, *args, **kwargs):
        if self.name != f".{artifacts.HTML_FILE}.tmp":
            return write_text(self, data, *args, **kwargs)
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full_in_the_html)
    with pytest.raises(OSError, match="No space left"):
        write_explanations([_explanation(0, "大阪 の 天気")], tmp_path)

    assert _all_files(tmp_path) == before  # no half-written temporary file left behind
    assert (tmp_path / artifacts.HTML_FILE).read_bytes() == old_html  # the old page, whole
    table = json.loads((tmp_path / artifacts.TABLE_FILE).read_text("utf-8"))  # written before the failure: new
    assert {row[table["columns"].index("text")] for row in table["data"]} == {"大阪 の 天気"}
