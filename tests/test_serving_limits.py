"""Hostile requests to the explainer: bounded work, a clear answer each time, then correct answers again.

In process: the row and character bounds, the ``time_budget`` param and the JSON nulls. Served (one
``mlflow models serve`` process for the module, the fixtures of ``test_serving``): ``n_steps=100000``,
a 100,000-character text, 1,000 rows, a request past its budget, rows without text and 8 parallel
requests, each answered in under 30 s and followed by a normal request answered correctly. Each
served case prints its wall time (``pytest -s``).
"""

# ruff: noqa: F811 (the tests take test_serving's fixtures, imported below, as arguments of the same names)

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from builders import english_rows, save_tiny_english_model
from mlflow.exceptions import MlflowException
from test_serving import PARAMS, RECORDS, logged, server  # noqa: F401 (its fixtures: one server for this module)

from mlflow_explain.attribution import _shortcuts, list_attribution_methods
from mlflow_explain.attribution._engine import TimeBudgetExceeded
from mlflow_explain.errors import ConfigError
from mlflow_explain.pyfunc import (
    DEFAULT_TIME_BUDGET,
    MAX_CHARACTERS,
    MAX_ROWS,
    MAX_TEXT_CHARACTERS,
    ExplainerModel,
    explain_frame,
)
from mlflow_explain.tracking import EXPLAINER_ARTIFACT

ANSWER_SECONDS = 30
"""Every hostile request is answered (with explanations or an error) within this time."""

LONG_TEXTS = {
    "japanese": ("サッカー日本代表が逆転勝利、決勝進出を決める" * 5000)[:100_000],
    "one-piece-per-character": "x" * 100_000,  # MeCab keeps it one word; WordPiece cuts it into 100,000 pieces
}


def strict_json(body: str):
    """Parse JSON as the standard defines it: ``NaN`` and ``Infinity`` are refused."""

    def refuse(constant: str):
        raise ValueError(f"the body holds {constant}, which is not JSON")

    return json.loads(body, parse_constant=refuse)


# In process ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    return save_tiny_english_model(tmp_path_factory.mktemp("limits") / "classifier")


@pytest.fixture(scope="module")
def classifier(classifier_folder):
    from mlflow_explain.modeling import load_pretrained

    return load_pretrained(str(classifier_folder))


@pytest.fixture(scope="module")
def explainer(classifier_folder) -> ExplainerModel:
    """An :class:`ExplainerModel` loaded as MLflow loads it (``load_context``), without logging it."""
    model = ExplainerModel(n_steps=8)
    model.load_context(SimpleNamespace(artifacts={"classifier": str(classifier_folder)}))
    return model


def sentences(n: int) -> pd.DataFrame:
    rows = english_rows(4)
    return pd.DataFrame({"text": [rows[i % len(rows)]["text"] for i in range(n)]})


def test_more_rows_than_the_bound_are_refused_before_any_work(classifier):
    with pytest.raises(ConfigError, match=f"{MAX_ROWS + 1} rows.*MAX_ROWS.*split it"):
        explain_frame(*classifier, sentences(MAX_ROWS + 1), {**PARAMS, "method": "lig", "level": "token"})


def over_the_character_bound() -> list[str]:
    """Texts of the longest length allowed whose characters add up to one more than :data:`MAX_CHARACTERS`."""
    n = MAX_CHARACTERS // MAX_TEXT_CHARACTERS
    return ["a" * MAX_TEXT_CHARACTERS] * n + ["b"] * (MAX_CHARACTERS - n * MAX_TEXT_CHARACTERS + 1)


def test_more_characters_than_the_bounds_are_refused_before_any_work(classifier):
    params = {**PARAMS, "method": "lig", "level": "token"}
    with pytest.raises(ConfigError, match=r"^row 1 \(counting from 0\) .*MAX_TEXT_CHARACTERS.*beginning of the text"):
        explain_frame(*classifier, pd.DataFrame({"text": ["a goal", "a" * (MAX_TEXT_CHARACTERS + 1)]}), params)
    with pytest.raises(ConfigError, match=r"MAX_CHARACTERS.*split it"):
        explain_frame(*classifier, pd.DataFrame({"text": over_the_character_bound()}), params)


@pytest.mark.parametrize("budget", [0, -1, 3601, float("nan"), "soon"])
def test_a_time_budget_out_of_range_is_refused(budget, explainer):
    with pytest.raises(ConfigError, match="time_budget must be more than 0 and at most 3600"):
        ExplainerModel(time_budget=budget)
    with pytest.raises(MlflowException, match="time_budget") as raised:
        explainer.predict(None, sentences(1), params={"time_budget": budget})
    assert raised.value.get_http_status_code() == 400


@pytest.mark.parametrize("method", list_attribution_methods())
def test_each_method_stops_itself_at_the_budget_and_leaves_the_model_as_it_was(method, classifier, monkeypatch):
    import mlflow_explain.explainer

    model, tokenizer = classifier
    params = {"method": method, "n_steps": 8, "target": "all", "level": "token"}
    before = explain_frame(model, tokenizer, sentences(3), params)
    # Without the checks between chunks, the budget must be found spent inside the backend itself.
    monkeypatch.setattr(mlflow_explain.explainer, "check_time_budget", lambda: None)
    with pytest.raises(TimeBudgetExceeded, match="time budget of 1e-06 s"):
        explain_frame(model, tokenizer, sentences(3), {**params, "time_budget": 1e-6})
    assert not model.training and not _shortcuts._users
    assert not model.get_input_embeddings()._forward_hooks  # Captum's hooks were removed
    after = explain_frame(model, tokenizer, sentences(3), params)
    for a, b in zip(after.scores, before.scores, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_predict_answers_a_spent_budget_with_deadline_exceeded(explainer):
    with pytest.raises(MlflowException, match=r"time budget of 1e-06 s \(param time_budget\)") as raised:
        explainer.predict(None, sentences(2), params={"time_budget": 1e-6})
    assert raised.value.get_http_status_code() == 504
    assert "\n" not in raised.value.message
    assert explainer.predict(None, sentences(2)).predicted_label.notna().all()  # and it goes on


def test_rows_without_text_are_null_in_mlflows_json(explainer):
    from mlflow.pyfunc.scoring_server import predictions_to_json

    out = explainer.predict(None, pd.DataFrame({"text": ["the goal today", None, "  "]}))
    assert out.predicted_probability.tolist()[1:] == [None, None] and out.predicted_label.tolist()[1:] == [None, None]
    alone = explainer.predict(None, pd.DataFrame({"text": ["the goal today"]}))  # the empty rows change nothing
    assert out.predicted_probability[0] == pytest.approx(alone.predicted_probability[0], abs=1e-6)
    assert out.predicted_label[0] == alone.predicted_label[0]
    body = io.StringIO()
    predictions_to_json(out, body)
    answers = strict_json(body.getvalue())["predictions"]
    assert [a["predicted_probability"] is None for a in answers] == [False, True, True]


# Served ----------------------------------------------------------------------------------------------


def invoke(base: str, records: list[dict], params: dict) -> tuple[requests.Response, float]:
    """POST ``records`` to ``/invocations``; the response and the wall time it took."""
    started = time.perf_counter()
    response = requests.post(f"{base}/invocations", json={"dataframe_records": records, "params": params}, timeout=120)
    return response, time.perf_counter() - started


def report(case: str, response: requests.Response, seconds: float) -> None:
    """Print the case's status, wall time and (for errors) the message MLflow sends, for the closing note."""
    message = "" if response.ok else error_message(response)
    error = next((line for line in message.splitlines() if line.startswith("Error:")), message)
    first = message.splitlines()[0][:120] if message else ""
    print(f"\n[served] {case}: HTTP {response.status_code} in {seconds:.2f} s\n  first line: {first}\n  {error[:300]}")


def assert_answers_normally(base: str, logged) -> None:
    """A normal request gets the in-process result (the server is up and unharmed)."""
    response, _ = invoke(base, RECORDS, PARAMS)
    assert response.status_code == 200, response.text
    predictions = strict_json(response.text)["predictions"]
    for answer, (_, expected) in zip(predictions, logged[2].iterrows(), strict=True):
        assert answer["predicted_label"] == expected.predicted_label
        assert answer["tokens"] == expected.tokens
        np.testing.assert_allclose(answer["scores"], np.stack(expected.scores), atol=1e-5)


def error_message(response: requests.Response) -> str:
    """The ``message`` of an MLflow error body, or the body itself when it is not JSON (MLflow's own timeout)."""
    try:
        return strict_json(response.text)["message"]
    except ValueError:
        return response.text


@pytest.mark.slow
def test_served_too_many_steps_get_400_naming_the_bound(server, logged):
    response, seconds = invoke(server, RECORDS[:1], {"n_steps": 100_000})
    report("n_steps=100000", response, seconds)
    assert response.status_code == 400 and seconds < ANSWER_SECONDS
    assert "n_steps must be between 1 and 4096" in error_message(response)
    assert_answers_normally(server, logged)


@pytest.mark.slow
@pytest.mark.parametrize("kind", LONG_TEXTS)
def test_served_100000_character_text_is_answered_truncated(kind, server, logged):
    # Tokenizing 100,000 one-character pieces takes 8-12 s on the 2-core machines, more under load: this test is
    # about the answer, the budget has tests of its own.
    response, seconds = invoke(server, [{"text": LONG_TEXTS[kind]}], {"time_budget": ANSWER_SECONDS})
    report(f"one 100,000-character text ({kind})", response, seconds)
    assert response.status_code == 200, response.text
    assert seconds < ANSWER_SECONDS
    (answer,) = strict_json(response.text)["predictions"]
    assert answer["truncated"] is True and len(answer["tokens"]) == 64  # the explainer's max_length
    assert_answers_normally(server, logged)


@pytest.mark.slow
def test_served_1000_rows_get_an_answer_or_a_budget_error_in_time(server, logged):
    records = [{"text": RECORDS[i % len(RECORDS)]["text"]} for i in range(1000)]
    response, seconds = invoke(server, records, {})
    report("1,000 rows", response, seconds)
    assert seconds < ANSWER_SECONDS
    if response.status_code == 200:
        assert len(strict_json(response.text)["predictions"]) == 1000
    else:
        assert response.status_code == 504 and f"time budget of {DEFAULT_TIME_BUDGET:g} s" in error_message(response)
    assert_answers_normally(server, logged)


@pytest.mark.slow
def test_served_longest_texts_up_to_the_character_bound_stop_at_the_budget(server, logged):
    records = [{"text": LONG_TEXTS["one-piece-per-character"]}] * (MAX_CHARACTERS // MAX_TEXT_CHARACTERS)
    response, seconds = invoke(server, records, {})  # about 80 s of tokenizing alone
    report(f"{len(records)} texts of 100,000 characters (the slowest to tokenize)", response, seconds)
    assert response.status_code == 504 and f"time budget of {DEFAULT_TIME_BUDGET:g} s" in error_message(response)
    assert seconds < ANSWER_SECONDS
    assert_answers_normally(server, logged)


@pytest.mark.slow
def test_served_requests_over_the_row_or_character_bounds_get_400(server, logged):
    rows = [{"text": RECORDS[2]["text"]}] * (MAX_ROWS + 1)
    response, seconds = invoke(server, rows, {})
    report(f"{MAX_ROWS + 1} rows", response, seconds)
    assert response.status_code == 400 and "MAX_ROWS" in error_message(response) and seconds < ANSWER_SECONDS
    response, seconds = invoke(server, [{"text": "x" * (MAX_TEXT_CHARACTERS + 1)}], {})
    report(f"one text of {MAX_TEXT_CHARACTERS + 1} characters", response, seconds)
    assert response.status_code == 400 and "MAX_TEXT_CHARACTERS" in error_message(response)
    assert seconds < ANSWER_SECONDS
    response, seconds = invoke(server, [{"text": text} for text in over_the_character_bound()], {})
    report(f"{MAX_CHARACTERS + 1} characters in all", response, seconds)
    assert response.status_code == 400 and "MAX_CHARACTERS" in error_message(response) and seconds < ANSWER_SECONDS
    assert_answers_normally(server, logged)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "within"),
    # interpret-lig: Captum computes the 4096 Gauss-Legendre nodes (numpy, O(n^3): ~8 s) before it can be stopped
    [("lig", 10), ("interpret-lig", ANSWER_SECONDS)],
)
def test_served_request_past_its_budget_gets_504_and_the_server_goes_on(method, within, server, logged):
    heavy = [{"text": record["text"]} for record in RECORDS] * 8
    response, seconds = invoke(server, heavy, {"method": method, "n_steps": 4096, "target": "all", "time_budget": 1})
    report(f"24 rows, {method}, n_steps=4096, time_budget=1", response, seconds)
    assert response.status_code == 504, response.text
    assert "time budget of 1 s (param time_budget)" in error_message(response)
    assert seconds < within
    assert_answers_normally(server, logged)


@pytest.mark.slow
def test_served_time_budgets_out_of_range_get_400(server, logged):
    for budget in (0, -5, 3601):
        response, _ = invoke(server, RECORDS[:1], {"time_budget": budget})
        assert response.status_code == 400 and "time_budget must be" in error_message(response)
    assert_answers_normally(server, logged)


@pytest.mark.slow
def test_served_rows_without_text_get_null_in_valid_json(server, logged, in_process):
    response, seconds = invoke(server, [RECORDS[0], {"text": None}, {"text": "   "}], PARAMS)
    report("rows without text", response, seconds)
    assert response.status_code == 200, response.text
    assert "NaN" not in response.text
    first, *empty = strict_json(response.text)["predictions"]
    (_, alone), *_ = in_process.predict(pd.DataFrame(RECORDS[:1]), params=PARAMS).iterrows()
    assert first["predicted_probability"] == pytest.approx(alone.predicted_probability, abs=1e-6)
    assert first["predicted_label"] == alone.predicted_label
    assert [a["predicted_probability"] for a in empty] == [None, None]
    assert [a["predicted_label"] for a in empty] == [None, None] and empty[0]["tokens"] == []


@pytest.fixture(scope="module")
def in_process(logged):
    """The logged explainer loaded in this process."""
    uri, run_id, _ = logged
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.pyfunc.load_model(f"runs:/{run_id}/{EXPLAINER_ARTIFACT}")
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_served_parallel_requests_get_the_results_of_requests_made_alone(server, in_process, logged):
    methods = list_attribution_methods()
    methods = [*methods, "interpret-lig"][:8]  # 8 requests; interpret-lig (Captum's hooks) twice
    params = {method: {"method": method, "n_steps": 8, "target": "all"} for method in methods}
    expected = {method: in_process.predict(pd.DataFrame(RECORDS), params=params[method]) for method in methods}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(methods)) as pool:
        futures = [pool.submit(invoke, server, RECORDS, params[method]) for method in methods]
        responses = [future.result()[0] for future in futures]
    print(f"\n[served] 8 parallel requests ({', '.join(methods)}): {time.perf_counter() - started:.2f} s")
    for method, response in zip(methods, responses, strict=True):
        assert response.status_code == 200, f"{method}: {response.text[:500]}"
        predictions = strict_json(response.text)["predictions"]
        for answer, (_, alone) in zip(predictions, expected[method].iterrows(), strict=True):
            assert answer["predicted_label"] == alone.predicted_label and answer["tokens"] == alone.tokens
            np.testing.assert_allclose(answer["scores"], np.stack(alone.scores), atol=1e-5, err_msg=method)
    assert_answers_normally(server, logged)


# On Spark ---------------------------------------------------------------------------------------------


def test_explain_file_gives_each_batch_the_largest_budget_unless_told_otherwise():
    from mlflow_explain.pyfunc import MAX_TIME_BUDGET
    from mlflow_explain.spark import _udf_params

    defaults = {"method": "lig", "n_steps": 50, "time_budget": DEFAULT_TIME_BUDGET}
    assert _udf_params(defaults, {"n_steps": 8}) == {"method": "lig", "n_steps": 8, "time_budget": MAX_TIME_BUDGET}
    assert _udf_params(defaults, {"time_budget": 60})["time_budget"] == 60
    assert _udf_params({"method": "lig"}, {}) == {"method": "lig"}  # an explainer logged before the budget


@pytest.mark.slow
def test_explain_file_explains_more_rows_than_one_call_takes(classifier, tmp_path):
    pytest.importorskip("pyspark")
    from builders import sqlite_store

    from mlflow_explain.pyfunc import MAX_TIME_BUDGET
    from mlflow_explain.spark import FileJob, explain_file, spark_session
    from mlflow_explain.tracking import log_explainer_model

    rows = english_rows(4)
    texts = [f"{rows[i % len(rows)]['text']} {i}" for i in range(MAX_ROWS + 200)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "big.csv", index=False)
    settings = {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    with sqlite_store(tmp_path):
        with mlflow.start_run():
            uri = log_explainer_model(*classifier, n_steps=4)
        spark = spark_session("local[1]", settings)
        key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        before = spark.conf.get(key)
        job = FileJob(
            str(tmp_path / "big.csv"), str(tmp_path / "out"), uri, params={"method": "saliency"}, partitions=1
        )
        try:
            summary = explain_file(spark, job)  # one partition of 1,200 rows: Arrow batches of 10,000 would be refused
            assert spark.conf.get(key) == before
        finally:
            spark.stop()
    assert summary.n_explained == MAX_ROWS + 200 and summary.params["time_budget"] == MAX_TIME_BUDGET
