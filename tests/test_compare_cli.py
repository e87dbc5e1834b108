"""``mlflow-explain compare`` against a real sqlite store, on runs logged from hand-built explanations."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner
from compare_builders import explanation, table
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.cli import cli
from mlflow_explain.explanation import TABLE_COLUMNS
from mlflow_explain.render.files import write_step_tables
from mlflow_explain.tracking import log_explanations

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

TOKENS = ["日本", "代表", "が", "勝利"]
TABLE_PATH = f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}"
STEP_TABLE_PATH = artifacts.LEGACY_STEP_TABLE
COMPARISON_FILES = {
    f"{artifacts.COMPARISON_DIR}/{name}"
    for name in (artifacts.COMPARISON_HTML, artifacts.COMPARISON_PLOT, artifacts.AGREEMENT_TABLE)
}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def log_run(scores: list[float], *, sample_hash: str = "sample-1", predicted: str = "sports", **params) -> str:
    """A run as `main` leaves it, minus the model: explanations, sample hash tag and parameters."""
    explanations = [
        explanation(0, TOKENS, {"sports": scores, "movie": [0.0] * 4}, predicted=predicted, text="日本代表が勝利<b>"),
        explanation(1, ["映画", "が", "公開"], {"sports": [0.3, 0.1, 0.2], "movie": [0.5, 0.0, 0.4]}),
    ]
    with mlflow.start_run() as run:
        mlflow.log_params({"model": "tiny-bert-ja", "method": "interpret-lig", **params})
        mlflow.set_tag(artifacts.SAMPLE_HASH_TAG, sample_hash)
        log_explanations(explanations)
    return run.info.run_id


def runs() -> list:
    return MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("tests").experiment_id], order_by=["attributes.start_time ASC"]
    )


def artifact_paths(run_id: str, path: str = "") -> set[str]:
    client, out = MlflowClient(), set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(run_id, info.path) if info.is_dir else {info.path}
    return out


def test_compare_two_runs_logs_a_tagged_comparison_run(tracking, tmp_path):
    first = log_run([0.1, 0.2, 0.3, 0.4], n_steps="50")
    second = log_run([0.4, 0.3, 0.2, 0.1], predicted="movie", n_steps="20")
    MlflowClient().log_metric(first, "quality_comprehensiveness", 0.71)  # shown next to the run on the page

    # mlflow.load_table joins the attribution tables of the runs: the reason they are logged with log_table.
    joined = mlflow.load_table(TABLE_PATH, run_ids=[first, second], extra_columns=["run_id"])
    assert set(TABLE_COLUMNS) | {"run_id"} == set(joined.columns)
    assert len(joined) == 2 * (2 * 6 + 2 * 5)  # runs x labels x tokens ([CLS]/[SEP] included) per sentence
    wide = joined[(joined.attributed_label == "sports") & ~joined.is_special.astype(bool)].pivot_table(
        index=["sentence_id", "position"], columns="run_id", values="attribution"
    )
    assert wide.shape == (4 + 3, 2)
    sentence_0 = wide.loc[0]
    assert list(sentence_0[second]) == pytest.approx(list(sentence_0[first])[::-1])

    # As MLproject passes them: comma-separated IDs, empty options.
    out = tmp_path / "out"
    result = invoke(
        "compare", f"{first},{second}", "--steps", "", "--force=false", "--top-k", "2", "--output-dir", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "-> " in result.output and "prediction changed 50%" in result.output

    all_runs = runs()
    assert len(all_runs) == 3  # no stray run
    comparison = all_runs[-1]
    assert comparison.info.status == "FINISHED"
    assert comparison.info.run_id in result.output
    assert comparison.info.run_name == f"compare: {all_runs[0].info.run_name} vs {all_runs[1].info.run_name}"
    assert comparison.data.tags[artifacts.COMPARED_RUNS_TAG] == f"{first},{second}"
    assert artifact_paths(comparison.info.run_id) >= COMPARISON_FILES
    metrics = comparison.data.metrics
    assert metrics["spearman_mean_vs_run1"] == pytest.approx(0.0)  # -1 for sentence 0, +1 for sentence 1
    assert metrics["top_k_overlap_mean_vs_run1"] == pytest.approx(0.5)
    assert metrics["prediction_changed_share_vs_run1"] == 0.5
    assert metrics["prediction_changed_share"] == 0.5 and metrics["n_sentences"] == 2
    assert comparison.data.params == {
        "comparison": "runs",
        "top_k": "2",
        "force": "False",
        "reference": f"{all_runs[0].info.run_name} ({first[:8]})",
    }

    html = mlflow.artifacts.load_text(
        f"runs:/{comparison.info.run_id}/{artifacts.COMPARISON_DIR}/{artifacts.COMPARISON_HTML}"
    )
    assert '<meta charset="utf-8">' in html and "n_steps=20" in html and "日本代表が勝利&lt;b&gt;" in html
    assert "comprehensiveness=0.71" in html
    # The agreement table is a registered table too.
    agreement = mlflow.load_table(
        f"{artifacts.COMPARISON_DIR}/{artifacts.AGREEMENT_TABLE}", run_ids=[comparison.info.run_id]
    )
    assert sorted(agreement.spearman) == pytest.approx([-1.0, 1.0])
    # --output-dir keeps the same files locally.
    assert {p.name for p in out.iterdir()} == {
        artifacts.COMPARISON_HTML,
        artifacts.COMPARISON_PLOT,
        artifacts.AGREEMENT_TABLE,
    }


def test_refusals_name_the_run_and_what_to_do(tracking):
    first = log_run([0.1, 0.2, 0.3, 0.4], sample_hash="sample-1")
    second = log_run([0.1, 0.2, 0.3, 0.4], sample_hash="sample-2")
    with mlflow.start_run() as bare:  # a run without explanations
        mlflow.log_param("model", "x")

    result = invoke("compare", first, second)
    assert result.exit_code == 1
    assert "did not explain the same sample" in result.output and "--force" in result.output
    assert "sample-1" in result.output and "sample-2" in result.output
    assert "Traceback" not in result.output

    result = invoke("compare", first, "0123456789abcdef0123456789abcdef")
    assert result.exit_code == 1
    assert "run '0123456789abcdef0123456789abcdef' does not exist" in result.output
    assert "Check the run ID" in result.output

    result = invoke("compare", first, bare.info.run_id)
    assert result.exit_code == 1
    assert f"({bare.info.run_id[:8]}) has no attribution table {TABLE_PATH}" in result.output

    result = invoke("compare", "--steps", first)
    assert result.exit_code == 1 and "has no attribution table" in result.output and "Trainer callback" in result.output

    assert "at least two run IDs" in invoke("compare", first).output
    assert "either RUN_IDS or --steps" in invoke("compare", first, "--steps", first).output
    result = invoke("compare", first, second, "--force=maybe")
    assert result.exit_code == 2 and "'maybe' is not true or false" in result.output
    assert len(runs()) == 3  # nothing logged by any refused comparison

    # --force compares the runs anyway, on the sentences whose text they share: a flag, before or after the
    # run IDs, or with a value as MLproject writes it.
    for args in (["--force", first, second], [first, second, "--force"], [first, "--force=true", second]):
        result = invoke("compare", *args)
        assert result.exit_code == 0, (args, result.output)
        comparison = runs()[-1]
        assert comparison.data.tags[artifacts.COMPARED_RUNS_TAG] == f"{first},{second}"
        assert comparison.data.params["force"] == "True"
        assert comparison.data.metrics["spearman_mean_vs_run1"] == pytest.approx(1.0)
    assert len(runs()) == 6
    assert invoke("compare", "--no-force", first, second).exit_code == 1


@pytest.mark.parametrize("layout", ["per-step files", "legacy growing table"])
def test_compare_steps_of_one_callback_run(tracking, tmp_path, layout):
    def at(scores, predicted="sports"):
        return [explanation(0, TOKENS, {"sports": scores, "movie": [0.0] * 4}, predicted=predicted)]

    with mlflow.start_run() as run:
        mlflow.set_tag(artifacts.SAMPLE_HASH_TAG, "probe")
        for step, epoch, explained, comprehensiveness in (
            (10, 1.0, at([1, 2, 3, 4]), 0.1),
            (20, 2.0, at([1, 2, 4, 3]), 0.2),
            (30, 3.0, at([4, 3, 2, 1], predicted="movie"), 0.3),
        ):
            if layout == "per-step files":  # as the Trainer callback logs them now: a folder per step
                paths, _ = write_step_tables(explained, tmp_path / str(step), step=step, epoch=epoch)
                for path in paths:
                    mlflow.log_artifact(str(path), f"{artifacts.STEPS_DIR}/{artifacts.STEP_FOLDER.format(step=step)}")
            else:  # as runs logged before it have them: log_table appends to one table
                frame = table(*explained)
                frame.insert(0, "epoch", epoch)
                frame.insert(0, "step", step)
                mlflow.log_table(frame, artifact_file=STEP_TABLE_PATH)
            mlflow.log_metric("probe_quality_comprehensiveness", comprehensiveness, step=step)
    result = invoke("compare", "--steps", run.info.run_id, "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert "step 10 (epoch 1) -> step 30 (epoch 3)" in result.output

    comparison = runs()[-1]
    assert comparison.info.run_name == f"compare steps: {run.info.run_name}"
    html = mlflow.artifacts.load_text(
        f"runs:/{comparison.info.run_id}/{artifacts.COMPARISON_DIR}/{artifacts.COMPARISON_HTML}"
    )
    # each step shows its own explanation quality, not the last step's
    assert all(f"comprehensiveness={value}" in html for value in ("0.10", "0.20", "0.30"))
    assert comparison.data.tags[artifacts.COMPARED_RUNS_TAG] == run.info.run_id
    assert comparison.data.params["comparison"] == "steps"
    metrics = comparison.data.metrics
    assert metrics["spearman_mean_vs_step20"] == pytest.approx(0.8)
    assert metrics["spearman_mean_step20_to_step30"] == pytest.approx(-0.8)
    assert metrics["prediction_changed_share_vs_step30"] == 1.0
    history = MlflowClient().get_metric_history(comparison.info.run_id, "spearman_mean_vs_reference")
    assert [(m.step, round(m.value, 6)) for m in history] == [(20, 0.8), (30, -1.0)]
    previous = MlflowClient().get_metric_history(comparison.info.run_id, "spearman_mean_vs_previous")
    assert [(m.step, round(m.value, 6)) for m in previous] == [(30, -0.8)]
    assert artifact_paths(comparison.info.run_id) >= COMPARISON_FILES


def test_output_dir_never_overwrites_unasked_and_never_touches_other_files(tracking, tmp_path):
    first = log_run([0.1, 0.2, 0.3, 0.4])
    second = log_run([0.4, 0.3, 0.2, 0.1])
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(cli, ["compare", first, second, "--output-dir", str(a_file)])
    assert result.exit_code == 1 and a_file.read_text("utf-8") == "mine"
    assert result.output == f"Error: --output-dir {a_file} is a file, not a folder; give a new or existing folder.\n"

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert invoke("compare", first, second, "--output-dir", str(out)).exit_code == 0  # no clash: written next to it
    page = out / artifacts.COMPARISON_HTML
    page.write_text("edited by hand", encoding="utf-8")
    n_runs = len(runs())
    result = CliRunner().invoke(cli, ["compare", first, second, "--output-dir", str(out)])
    assert result.exit_code == 1 and len(runs()) == n_runs  # refused before any work: no comparison run
    assert result.output.startswith(f"Error: --output-dir {out} already holds comparison.html, ")
    assert result.output.count("\n") == 1 and page.read_text("utf-8") == "edited by hand"

    assert invoke("compare", first, second, "--output-dir", str(out), "--overwrite").exit_code == 0
    assert page.read_text("utf-8").startswith("<!DOCTYPE html>") and (out / "keep.txt").read_text("utf-8") == "mine"
