"""The CLI turns options into settings objects and exit codes, without running any job."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlflow_explain import jobs
from mlflow_explain.cli import cli
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.jobs import JobResult


@pytest.fixture
def captured(monkeypatch):
    """Replace the jobs by recorders: each call's settings land in the returned list."""
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return JobResult(run_id="r" * 32, metrics={"eval_accuracy": 1.0}, view_url="http://ui")

    monkeypatch.setattr(jobs, "run_main", record)
    monkeypatch.setattr(jobs, "run_explain", record)
    return calls


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_main_defaults_are_the_configs_defaults(captured):
    assert invoke("main").exit_code == 0
    (((data, training, explaining), _),) = captured
    assert (data, training, explaining) == (DataConfig(), TrainConfig(), ExplainConfig())


def test_main_options_reach_every_field(captured):
    result = invoke(
        "main", "--data", "news.csv", "--text-column", "s", "--label-column", "c", "--eval-data", "ev.csv",
        "--eval-fraction", "0.3", "--text-field", "body", "--encoding", "cp932", "--model", "./m", "--epochs", "2",
        "--learning-rate", "5e-5", "--batch-size", "8", "--max-length", "64", "--seed", "7", "--explain-every", "2",
        "--n-explain", "5", "--n-steps", "20", "--tolerance", "none", "--max-steps", "128", "--method", "occlusion",
        "--target", "predicted", "--integration", "riemann_middle", "--n-samples", "9", "--quality=false",
        "--internal-batch-size", "32", "--top-k", "3", "--sample-seed", "11", "--multi-label", "true",
        "--label-separator", ";", "--threshold", "0.3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (((data, training, explaining), _),) = captured
    assert data == DataConfig("news.csv", "s", "c", "ev.csv", 0.3, "body", 11, "cp932", True, ";")
    assert training == TrainConfig("./m", 2.0, 8, 5e-5, 64, 7, 2)
    assert explaining == ExplainConfig(
        n_explain=5, n_steps=20, method="occlusion", target="predicted", internal_batch_size=32, sample_seed=11,
        top_k=3, integration="riemann_middle", n_samples=9, quality=False, tolerance=None, max_steps=128,
        threshold=0.3,
    )  # fmt: skip


@pytest.mark.parametrize(("value", "multi_label"), [("auto", None), ("true", True), ("false", False)])
def test_multi_label_is_auto_true_or_false(captured, value, multi_label):
    assert invoke("main", "--multi-label", value).exit_code == 0
    assert invoke("explain", "--model", "./m", "--multi-label", value).exit_code == 0
    (((main_data, _, _), _), ((_, explain_data, _, _), _)) = captured
    assert main_data.multi_label is explain_data.multi_label is multi_label


@pytest.mark.parametrize(
    ("args", "quality", "randomization"),
    [
        (["--quality", "false"], False, False),  # as MLproject's "--quality {quality}" would pass it
        (["--quality=true", "--randomization=true"], True, True),  # as MLproject passes it
        (["--no-quality"], False, False),
        (["--randomization"], True, True),
    ],
)
def test_switches_take_bare_and_valued_forms(captured, args, quality, randomization):
    assert invoke("main", *args).exit_code == 0
    (((_, _, explaining), _),) = captured
    assert (explaining.quality, explaining.randomization) == (quality, randomization)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--epochs", "-1"], 2, "epochs must be positive"),
        (["--learning-rate", "fast"], 2, "'fast' is neither a number nor 'auto'"),
        (["--quality=maybe"], 2, "'maybe' is not true or false"),
        (["--target", "everything"], 2, "'everything' is not one of"),
        (["--tolerance", "tight"], 2, "'tight' is not a number (or 'none')"),
        (["--explain-every", "-2"], 2, "-2 is not in the range x>=0"),
        (["--n-steps", "0"], 1, "Error: n_steps must be between 1 and 4096"),
        (["--encoding", "bogus"], 1, "Error: encoding must be 'auto' or a Python text codec"),
        (["--multi-label", "maybe"], 2, "'maybe' is not one of 'auto', 'true', 'false'"),
        (["--label-separator", ""], 1, "Error: label_separator is empty; give the characters between the labels"),
        (["--threshold", "1"], 1, "Error: threshold must be a probability between 0 and 1 (exclusive), got 1.0"),
    ],
)
def test_bad_options_exit_with_the_reason_before_any_job(captured, args, code, message):
    result = invoke("main", *args)
    assert result.exit_code == code and message in result.output, result.output
    assert captured == [] and "Traceback" not in result.output


def test_explain_passes_the_model_and_an_optional_max_length(captured):
    assert invoke("explain", "--model", "runs:/abc/model", "--max-length", "", "--log-explainer=true").exit_code == 0
    assert invoke("explain", "--model", "./m", "--max-length", "96").exit_code == 0
    (first_args, first_kwargs), (second_args, _) = captured
    assert first_args[0] == "runs:/abc/model" and first_args[3] is None and first_kwargs == {"log_explainer": True}
    assert second_args[0] == "./m" and second_args[3] == 96
