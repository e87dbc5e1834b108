"""Shared fixtures: an offline environment and a fresh sqlite tracking store per test."""

from __future__ import annotations

import os

import pytest
from builders import sqlite_store

# Nothing may be fetched from the Hugging Face Hub in tests (there is no network here anyway).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tracking(tmp_path):
    """A real sqlite tracking store in ``tmp_path`` with its own artifact folder; yields the URI."""
    with sqlite_store(tmp_path) as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (sqlite store, proxied artifacts) on 127.0.0.1, shared by the session."""
    from mlflow_server import start_mlflow_server

    with start_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def server_tracking(mlflow_server, request, monkeypatch):
    """Log to :func:`mlflow_server` over HTTP, into a new experiment named after the test; yields its ID."""
    import uuid

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    name = f"{request.node.name}-{uuid.uuid4().hex[:8]}"
    experiment_id = mlflow.MlflowClient().create_experiment(name)
    mlflow.set_experiment(experiment_id=experiment_id)
    yield experiment_id
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium, driven by Playwright (``.ci/run`` installs it; ``playwright install`` is never needed)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium for the browser tests; they fail (not skip) when it cannot start."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
