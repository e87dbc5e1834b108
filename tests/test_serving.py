"""`mlflow models serve` answers POST /invocations with explanations (Japanese included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.modeling import build_embedded_model
from mlflow_explain.pyfunc import OUTPUT_COLUMNS
from mlflow_explain.tracking import EXPLAINER_ARTIFACT, log_explainer_model

RECORDS = [
    {"text": "サッカー日本代表が逆転勝利、決勝進出を決める", "label": "sports-watch"},
    {"text": "新作映画の舞台挨拶に主演俳優が登場", "label": "movie-enter"},
    {"text": "a headline in English"},
]
PARAMS = {"n_steps": 8, "target": "all"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """An untrained embedded Japanese model's explainer in a sqlite store: ``(tracking URI, run ID)``."""
    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("serving", artifact_location=(root / "artifacts").as_uri())
    model, tokenizer = build_embedded_model(load_dataset(DataConfig()), TrainConfig(), root / "work")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            log_explainer_model(model, tokenizer, max_length=64)
        in_process = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/{EXPLAINER_ARTIFACT}")
        expected = in_process.predict(pd.DataFrame(RECORDS), params=PARAMS)
    finally:
        mlflow.set_tracking_uri(None)
    return uri, run.info.run_id, expected


@pytest.fixture(scope="module")
def server(logged):
    """``mlflow models serve`` on a free port of 127.0.0.1; yields its base URL, stops its process group."""
    uri, run_id, _ = logged
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/{EXPLAINER_ARTIFACT}"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{process.stdout.read()[-3000:]}")
            try:
                if requests.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        else:
            pytest.fail("the server did not answer /ping within 180 s")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


def invoke(base: str, records: list[dict], params: dict) -> requests.Response:
    payload = {"dataframe_records": records, "params": params}
    return requests.post(f"{base}/invocations", json=payload, timeout=120)


@pytest.mark.slow
def test_invocations_answer_with_explanations(server, logged):
    response = invoke(server, RECORDS, PARAMS)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(RECORDS) and set(predictions[0]) == set(OUTPUT_COLUMNS)
    labels = sorted(load_dataset(DataConfig()).labels)
    for answer, (_, expected) in zip(predictions, logged[2].iterrows(), strict=True):
        assert answer["predicted_label"] == expected.predicted_label
        assert sorted(answer["attributed_labels"]) == labels
        assert answer["tokens"] == expected.tokens
        np.testing.assert_allclose(answer["scores"], np.stack(expected.scores), atol=1e-5)
    assert "サッカー" in predictions[0]["tokens"] and "日本" in predictions[0]["tokens"]  # UTF-8 both ways

    named = invoke(server, RECORDS[:1], {"n_steps": 4, "target": "movie-enter", "level": "word"})
    assert named.status_code == 200, named.text
    (answer,) = named.json()["predictions"]
    assert answer["attributed_labels"] == ["movie-enter"] and "[CLS]" not in answer["tokens"]


@pytest.mark.slow
def test_bad_requests_get_4xx_answers_that_say_why(server):
    response = invoke(server, [{"sentence": "サッカー"}], {})
    assert 400 <= response.status_code < 500
    assert "text" in response.json()["message"] and "missing" in response.json()["message"]
    response = invoke(server, RECORDS[:1], {"target": "weather"})
    assert 400 <= response.status_code < 500
    assert "sports-watch" in response.json()["message"]
