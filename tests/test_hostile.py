"""Hostile and broken input through the CLI: one clear line each time, no traceback, a FAILED run or none.

Each case builds what a user could hand us (data files and folders, model folders, parameters) and runs
the real command against a real sqlite tracking store. The expected first line of output is written out
in full where it does not depend on paths the test made.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import mlflow
import pytest
from builders import english_rows, save_tiny_english_model, save_tiny_gpt2_model, write_csv, write_livedoor
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import jobs
from mlflow_explain.cli import cli

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

FAST = ["--n-explain", "2", "--n-steps", "4", "--epochs", "1"]
PROGRESS = re.compile(r"\d+%\|")
"""A progress bar's line (transformers' "Loading weights" bar goes to stderr): not an answer."""


def runs() -> list:
    return MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id])


def error_line(result) -> str:
    """The one line a failed command printed; fails the test on a traceback or a chatty answer."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def deny(monkeypatch, folder: Path) -> None:
    """Make ``folder`` unreadable: chmod where that binds, else (as root, who reads anything) the OS answer."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return
    iterdir, target = Path.iterdir, folder.resolve()

    def refuse(self):
        if self.resolve() == target:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refuse)


@pytest.fixture
def data(tmp_path) -> Path:
    return write_csv(tmp_path / "news.csv", english_rows())


@pytest.fixture
def no_training(monkeypatch):
    """The job must refuse before it trains anything."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("the job started working although its settings are bad")

    for name in ("build_embedded_model", "load_pretrained", "train"):
        monkeypatch.setattr(jobs, name, must_not_run)


# --- settings: refused before any run or work -----------------------------------------------------------

SETTINGS = {
    "seed=-1": (["--seed", "-1"], "Error: seed must be between 0 and 4294967295, got -1."),
    "sample_seed too large": (
        ["--sample-seed", str(2**32)],
        "Error: sample_seed must be between 0 and 4294967295, got 4294967296.",
    ),
    "n_steps=100000": (
        ["--n-steps", "100000"],
        "Error: n_steps must be between 1 and 4096 integration steps, got 100000; leave it to the "
        "default (8 with a tolerance, which adds steps where they are needed).",
    ),
    "max_steps=100000": (
        ["--max-steps", "100000"],
        "Error: max_steps must be between 1 and 4096 integration steps, got 100000.",
    ),
    "n_explain=5000": (
        ["--n-explain", "5000"],
        "Error: n_explain must be between 1 and 1000 sentences, got 5000; explain a whole data set with "
        "explain-file (Spark) instead.",
    ),
    "n_samples=5000": (["--n-samples", "5000"], "Error: n_samples must be between 1 and 1000, got 5000."),
    "unknown method": (["--method", "magic"], "Error: unknown attribution method 'magic'; choose one of "),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_bad_settings_in_main_are_refused_before_a_run_and_before_training(case, tracking, data, no_training):
    args, expected = SETTINGS[case]
    result = CliRunner().invoke(cli, ["main", "--data", str(data), *args])
    assert error_line(result).startswith(expected)
    assert runs() == []


# --- data: refused before a run -------------------------------------------------------------------------


def test_an_unreadable_data_folder_is_one_line(tracking, tmp_path, monkeypatch, no_training):
    folder = write_livedoor(tmp_path / "ldcc", {"sports": [("goal", "")], "movie": [("film", "")]})
    deny(monkeypatch, folder / "text")
    line = error_line(CliRunner().invoke(cli, ["main", "--data", str(folder)]))
    assert line == f"Error: {folder / 'text'}: cannot read the folder (Permission denied); check its permissions."
    assert runs() == []


def test_an_unreadable_livedoor_category_stops_the_job_instead_of_dropping_the_label(
    tracking, tmp_path, monkeypatch, no_training
):
    articles = {name: [(f"{name} headline {i}", "") for i in range(4)] for name in ("movie", "sports", "tech")}
    folder = write_livedoor(tmp_path / "ldcc", articles)
    deny(monkeypatch, folder / "text" / "tech")
    line = error_line(CliRunner().invoke(cli, ["main", "--data", str(folder)]))
    assert line == (
        f"Error: {folder / 'text' / 'tech'}: cannot read the category folder (Permission denied); fix its "
        "permissions or move it out of the data folder, so that no label is dropped silently."
    )
    assert runs() == []


# --- model folders: a FAILED run with the reason ------------------------------------------------------


def _bare_encoder(folder: Path, source: Path) -> Path:
    from transformers import AutoTokenizer, BertModel

    BertModel.from_pretrained(str(source)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(folder)
    return folder


def _corrupt(folder: Path, source: Path) -> Path:
    shutil.copytree(source, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    return folder


MODELS = {
    "missing folder": (lambda folder, source: folder, "Error: {model}: no such model folder. Check the path given"),
    "a file": (
        lambda folder, source: source / "config.json",
        "Error: {model}: is a file, not a model folder; pass the folder that holds config.json.",
    ),
    "bare encoder": (_bare_encoder, "Error: {model}: the saved model has no classification head (missing classifier"),
    "corrupt weights": (
        _corrupt,
        "Error: cannot load the weights of model '{model}' (folder): Error while deserializing header",
    ),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_broken_model_folders_in_explain_fail_the_run_with_one_line(case, tracking, tmp_path, data):
    source = save_tiny_english_model(tmp_path / "source")
    make, expected = MODELS[case]
    model = make(tmp_path / "model", source)
    result = CliRunner().invoke(cli, ["explain", "--model", str(model), "--data", str(data), *FAST[:4]])
    assert error_line(result).startswith(expected.format(model=model))
    assert [run.info.status for run in runs()] in ([], ["FAILED"])


def test_corrupt_weights_in_main_fail_before_training(tracking, tmp_path, data, monkeypatch):
    model = _corrupt(tmp_path / "model", save_tiny_english_model(tmp_path / "source"))
    monkeypatch.setattr(jobs, "train", lambda *a, **k: pytest.fail("trained although the weights are corrupt"))
    result = CliRunner().invoke(cli, ["main", "--model", str(model), "--data", str(data), *FAST])
    assert error_line(result).startswith(f"Error: cannot load the weights of model '{model}' (folder): ")
    assert [run.info.status for run in runs()] == ["FAILED"]


def test_a_tokenizer_without_pad_token_is_explained_with_its_eos_token(tracking, tmp_path, data, caplog):
    model = save_tiny_gpt2_model(tmp_path / "gpt2")
    result = CliRunner().invoke(cli, ["explain", "--model", str(model), "--data", str(data), *FAST[:4]])
    assert result.exit_code == 0, result.output
    assert "the tokenizer has no pad token; padding with its end-of-sequence token '<eos>'" in caplog.text
    (run,) = runs()
    assert run.info.status == "FINISHED" and run.data.metrics["n_explained"] == 2


# --- compare ------------------------------------------------------------------------------------------


def test_compare_output_dir_that_is_a_file_is_one_line(tracking, tmp_path):
    target = tmp_path / "report.html"
    target.write_text("mine", encoding="utf-8")
    line = error_line(CliRunner().invoke(cli, ["compare", "a", "b", "--output-dir", str(target)]))
    assert line == f"Error: --output-dir {target} is a file, not a folder; give a new or existing folder."
    assert target.read_text("utf-8") == "mine" and runs() == []
