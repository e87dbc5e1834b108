"""Shared fixtures: an offline environment and a fresh sqlite tracking store per test."""

from __future__ import annotations

import os

import pytest

# Nothing may be fetched from the Hugging Face Hub in tests (there is no network here anyway).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A real sqlite tracking store in ``tmp_path`` with its own artifact folder; yields the URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.MlflowClient(uri).create_experiment(
        "tests", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
