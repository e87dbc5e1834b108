"""The explainer pyfunc model: logged with a signature, loaded with mlflow.pyfunc, same scores as in-process."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import KEYWORDS, english_rows, save_tiny_english_model, sqlite_store, write_csv
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from mlflow_explain.cli import cli
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import load_pretrained
from mlflow_explain.pyfunc import DEFAULT_TIME_BUDGET, OUTPUT_COLUMNS, ExplainerModel
from mlflow_explain.tracking import EXPLAINER_ARTIFACT, log_explainer_model

N_STEPS = 8
LABELS = sorted(KEYWORDS)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite tracking store for the module (logging the explainer once is the slow part)."""
    root = tmp_path_factory.mktemp("pyfunc")
    with sqlite_store(root):
        yield root


@pytest.fixture(scope="module")
def classifier(store):
    return load_pretrained(str(save_tiny_english_model(store / "classifier")))


@pytest.fixture(scope="module")
def logged(store, classifier):
    """The explainer logged to a run: ``(run_id, model_uri)``."""
    with mlflow.start_run() as run:
        uri = log_explainer_model(*classifier, text_column="sentence", label_column="category", n_steps=N_STEPS)
    return run.info.run_id, uri


@pytest.fixture(scope="module")
def explainer(logged):
    return mlflow.pyfunc.load_model(f"runs:/{logged[0]}/{EXPLAINER_ARTIFACT}")


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"sentence": [r["text"] for r in rows], "category": [r["label"] for r in rows]})


def test_predict_gives_the_in_process_scores(explainer, classifier):
    rows = english_rows(4)
    out = explainer.predict(frame(rows))
    assert list(out.columns) == list(OUTPUT_COLUMNS) and len(out) == len(rows)
    config = ExplainConfig(method="lig", n_steps=N_STEPS, target="predicted")
    expected = explain_examples(*classifier, [Example(r["text"], r["label"]) for r in rows], config, progress=False)
    for row, explanation in zip(out.itertuples(), expected, strict=True):
        assert row.predicted_label == explanation.predicted_label
        assert row.predicted_probability == pytest.approx(explanation.predicted_probability, abs=1e-6)
        assert row.attributed_labels == [explanation.predicted_label]
        assert row.tokens == [t.token for t in explanation.primary.tokens]
        np.testing.assert_allclose(row.scores[0], [t.score for t in explanation.primary.tokens], atol=1e-5)
        np.testing.assert_allclose(row.convergence_deltas, [explanation.primary.convergence_delta], atol=1e-5)
        parsed = json.loads(row.attributions_json)
        assert parsed["tokens"] == row.tokens
        assert parsed["attributions"][0]["label"] == row.predicted_label
        np.testing.assert_allclose(parsed["attributions"][0]["scores"], row.scores[0])
        # the completeness tolerance applies as in the jobs: steps used and the flag per label
        assert parsed["attributions"][0]["n_steps"] == explanation.primary.n_steps >= N_STEPS
        assert parsed["attributions"][0]["converged"] == explanation.primary.converged


def test_params_choose_targets_and_level_per_request(explainer):
    rows = english_rows(1)
    everything = explainer.predict(frame(rows), params={"target": "all", "level": "word"})
    for row in everything.itertuples():
        assert sorted(row.attributed_labels) == LABELS
        assert len(row.scores) == 3 and all(len(s) == len(row.tokens) for s in row.scores)
        assert "[CLS]" not in row.tokens  # words leave the special tokens out
    named = explainer.predict(frame(rows), params={"target": "space", "n_steps": 4})
    assert all(labels == ["space"] for labels in named.attributed_labels)
    true = explainer.predict(frame(rows), params={"target": "true"})
    assert [labels[0] for labels in true.attributed_labels] == [r["label"] for r in rows]


def test_word_scores_are_the_sums_of_their_pieces(explainer):
    rows = [{"text": "the soups today", "label": "cooking"}]
    tokens = explainer.predict(frame(rows)).iloc[0]
    words = explainer.predict(frame(rows), params={"level": "word"}).iloc[0]
    assert tokens.tokens == ["[CLS]", "the", "soup", "##s", "today", "[SEP]"]
    assert words.tokens == ["the", "soups", "today"]
    assert words.scores[0][1] == pytest.approx(tokens.scores[0][2] + tokens.scores[0][3], abs=1e-9)


def test_bad_params_and_inputs_are_clear_errors(explainer):
    rows = frame(english_rows(1)[:1])
    with pytest.raises(MlflowException, match="cooking, football, space"):
        explainer.predict(rows, params={"target": "weather"})
    with pytest.raises(MlflowException, match=r"unknown attribution method 'magic'; choose one of .*lig"):
        explainer.predict(rows, params={"method": "magic"})
    with pytest.raises(MlflowException, match="level must be one of token, word"):
        explainer.predict(rows, params={"level": "sentence"})
    with pytest.raises(MlflowException, match="n_steps must be between 1 and 4096") as raised:
        explainer.predict(rows, params={"n_steps": 100_000})  # refused before any work (was a 74.5 GiB allocation)
    assert raised.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="sentence"):
        explainer.predict(pd.DataFrame({"text": ["a goal"]}))


def test_rows_without_text_get_empty_results(explainer):
    out = explainer.predict(pd.DataFrame({"sentence": ["the goal today", None, "  "]}))
    assert out.predicted_label.notna().tolist() == [True, False, False]
    assert out.tokens[1] == [] and out.scores[2] == [] and out.attributions_json[1] == "null"


def test_signature_names_columns_params_and_defaults(logged):
    info = mlflow.models.get_model_info(f"runs:/{logged[0]}/{EXPLAINER_ARTIFACT}")
    inputs = {spec.name: spec.required for spec in info.signature.inputs.inputs}
    assert inputs == {"sentence": True, "category": False}
    assert info.signature.outputs.input_names() == list(OUTPUT_COLUMNS)
    defaults = {p.name: p.default for p in info.signature.params.params}
    assert defaults == {
        "method": "lig",
        "n_steps": N_STEPS,
        "target": "predicted",
        "level": "token",
        "time_budget": DEFAULT_TIME_BUDGET,
    }


def test_constructor_checks_its_defaults():
    with pytest.raises(ValueError, match="level must be one of"):
        ExplainerModel(level="paragraph")
    with pytest.raises(ValueError, match="must differ"):
        ExplainerModel(text_column="x", label_column="x")


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_explain_logs_the_explainer_on_request(store, tmp_path):
    model = save_tiny_english_model(tmp_path / "model")
    data = write_csv(tmp_path / "news.csv", english_rows(), columns=("sentence", "category"))
    common = ["--model", str(model), "--data", str(data), "--text-column", "sentence", "--label-column", "category"]
    fast = ["--n-explain", "2", "--n-steps", "4", "--method", "lig"]
    result = CliRunner().invoke(cli, ["explain", *common, *fast, "--log-explainer"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    uri = next(line.split()[1] for line in result.output.splitlines() if line.startswith("explainer: "))
    out = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"sentence": ["a rocket launch"]}))
    assert out.predicted_label[0] in LABELS and out.tokens[0] == ["[CLS]", "a", "rocket", "launch", "[SEP]"]
    result = CliRunner().invoke(cli, ["explain", *common, *fast], catch_exceptions=False)
    assert "explainer:" not in result.output  # off by default
