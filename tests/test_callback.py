"""ExplainCallback inside real Trainer runs on a tiny model, logging into a real sqlite store."""

from __future__ import annotations

import random
from dataclasses import replace

import mlflow
import numpy as np
import pytest
import torch
from builders import english_rows, save_tiny_english_model
from mlflow import MlflowClient
from transformers import TrainerState

from mlflow_explain import artifacts, ui_view
from mlflow_explain.callback import ExplainCallback, preserved_training_state
from mlflow_explain.config import ExplainConfig, TrainConfig
from mlflow_explain.data import Example, TextDataset
from mlflow_explain.modeling import load_pretrained, train
from mlflow_explain.sampling import sample_examples, sample_hash, sentence_key
from mlflow_explain.tracking import load_step_table

pytestmark = pytest.mark.slow  # real jobs and tracking stores: the full suite, not the fast lane

ROWS = english_rows(per_label=8)
DATASET = TextDataset(
    train=tuple(Example(r["text"], r["label"]) for r in ROWS[::2] + ROWS[1::4]),
    eval=tuple(Example(r["text"], r["label"]) for r in ROWS[3::4]),
    labels=("cooking", "football", "space"),
    source="test",
)
CONFIG = ExplainConfig(n_explain=3, n_steps=4)
DATASET_SAMPLE_KEYS = [
    sentence_key(e.text) for e in sample_examples(DATASET.eval, CONFIG.n_explain, CONFIG.sample_seed)
]
TRAINING = TrainConfig(model="local", epochs=2, batch_size=4, learning_rate=1e-3, max_length=32, seed=7)


@pytest.fixture
def model_and_tokenizer(tmp_path):
    return load_pretrained(str(save_tiny_english_model(tmp_path / "model", seed=3)))


def _runs():
    experiment = mlflow.get_experiment_by_name("tests")
    return MlflowClient().search_runs([experiment.experiment_id])


def _training_table(run_id: str):
    """The attribution rows of every explained step, read as ``compare --steps`` reads them."""
    _, table, _ = load_step_table(run_id)
    return table


def test_report_to_mlflow_explanations_land_in_the_trainer_run(tracking, tmp_path, monkeypatch, model_and_tokenizer):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    model, tokenizer = model_and_tokenizer
    callback = ExplainCallback(tokenizer, DATASET, CONFIG)
    train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[callback], report_to="mlflow")
    assert mlflow.active_run() is None  # MLflowCallback ended the run it started
    (run,) = _runs()
    assert run.info.run_id == callback.run_id and run.info.status == "FINISHED"
    assert callback.failures == []
    assert "eval_loss" in run.data.metrics and "train_loss" in run.data.metrics  # Trainer's own logging
    client = MlflowClient()
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "probe_explain_seconds")]
    # the untrained baseline at step 0, then one per evaluation (the final one is reused)
    assert steps == sorted(steps) and len(steps) == 3 and steps[0] == 0
    table = _training_table(run.info.run_id)
    assert sorted(table.step.unique()) == steps
    assert sorted(table.epoch.unique()) == [0.0, 1.0, 2.0]
    assert table.groupby("step").sentence_id.nunique().tolist() == [3, 3, 3]
    # each step is a folder of its own; the history of the per-sentence rows is one table at the end
    folders = [a.path for a in client.list_artifacts(run.info.run_id, artifacts.STEPS_DIR)]
    assert folders == [f"{artifacts.STEPS_DIR}/{artifacts.STEP_FOLDER.format(step=s)}" for s in steps]
    history = mlflow.load_table(f"{artifacts.TRAINING_DIR}/{artifacts.SENTENCES_FILE}", run_ids=[run.info.run_id])
    assert history.step.tolist() == [s for s in steps for _ in range(3)]
    assert history.groupby("step").key.apply(list).map(tuple).nunique() == 1  # the same sentences at every step
    names = {a.path for a in client.list_artifacts(run.info.run_id, artifacts.TRAINING_DIR)}
    assert f"{artifacts.TRAINING_DIR}/{artifacts.HTML_FILE}" in names
    assert f"{artifacts.TRAINING_DIR}/{artifacts.SUMMARY_PLOT}" in names
    assert not any(n.endswith(artifacts.TABLE_FILE) for n in names)  # no growing table any more
    root = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {artifacts.SUMMARY_IMAGE, artifacts.HTML_FILE} <= root
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    first = DATASET_SAMPLE_KEYS[0]
    assert sorted(_image_steps(images, f"training~sentence_00_{first}")) == steps
    assert run.data.tags[artifacts.SAMPLE_HASH_TAG] == sample_hash(callback.probe)
    quality = client.get_metric_history(run.info.run_id, "probe_quality_comprehensiveness")
    assert [m.step for m in quality] == steps
    # the prepared chart view of the experiment shows the probe sentences' image series
    view = client.get_experiment(run.info.experiment_id).tags[ui_view.TAG]
    assert ui_view.image_keys_of(view) == sorted(
        f"explanations/training/sentence_{i:02d}_{k}" for i, k in enumerate(DATASET_SAMPLE_KEYS)
    )
    assert callback.view_url.endswith(ui_view.view_path(run.info.experiment_id))


def test_report_to_none_inside_a_user_run(tracking, tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    probe = [Example("rocket launch today", "space"), Example("bake the soup", "cooking")]
    callback = ExplainCallback(tokenizer, probe, CONFIG, every=2)
    with mlflow.start_run() as run:
        train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[callback])
        assert mlflow.active_run().info.run_id == run.info.run_id  # the user's run stays open
    (logged,) = _runs()
    assert logged.info.run_id == run.info.run_id == callback.run_id
    table = _training_table(run.info.run_id)
    assert table.step.nunique() == 2  # the baseline and, with every=2 and two evaluations, one more
    assert set(table.text) == {"rocket launch today", "bake the soup"}


@pytest.mark.parametrize(("images_every", "expected"), [(0, []), (2, [0, 2, 4]), (3, [0, 3, 4])])
def test_images_every_thins_the_image_series(tracking, tmp_path, model_and_tokenizer, images_every, expected):
    model, tokenizer = model_and_tokenizer
    callback = ExplainCallback(tokenizer, DATASET, CONFIG, images_every=images_every)
    with mlflow.start_run() as run:
        train(model, tokenizer, DATASET, replace(TRAINING, epochs=4), tmp_path / "out", callbacks=[callback])
    assert callback.failures == []
    client = MlflowClient()
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "probe_explain_seconds")]
    assert len(steps) == 5  # the baseline and every evaluation are still explained and tabled
    assert _training_table(run.info.run_id).step.nunique() == 5
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    # The baseline and every images_every-th explanation after it, and always the final one.
    assert sorted(_image_steps(images, "training~sentence_00_")) == [steps[i] for i in expected]


def _image_steps(paths: list[str], key: str) -> list[int]:
    """Steps of the logged images whose key contains ``key`` (one PNG per image)."""
    return [int(p.split("+step+")[1].split("+")[0]) for p in paths if key in p and p.endswith(".png")]


def test_without_any_run_the_callback_starts_and_ends_its_own(tracking, tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    callback = ExplainCallback.from_texts(tokenizer, ["goal for the striker"], ["football"], config=CONFIG)
    train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[callback])
    assert mlflow.active_run() is None
    (run,) = _runs()
    assert run.info.run_id == callback.run_id and run.info.status == "FINISHED"


def _seeded_training(tmp_path, name, callbacks):
    from transformers import set_seed

    set_seed(11)
    model, tokenizer = load_pretrained(str(save_tiny_english_model(tmp_path / name, seed=5)))
    model.config.hidden_dropout_prob = 0.3  # dropout draws from the RNG the callback must not disturb
    result = train(model, tokenizer, DATASET, TRAINING, tmp_path / f"{name}-out", callbacks=callbacks(tokenizer))
    losses = [h["loss"] for h in result.history if "loss" in h]
    return model.state_dict(), losses


def test_the_callback_does_not_change_training(tracking, tmp_path):
    class RandomnessHungry(ExplainCallback):
        """Also draws random numbers while explaining, as sampling methods do."""

        def _explain_and_log(self, args, state, model):
            with preserved_training_state(model):
                torch.rand(1000)
                random.random()
                np.random.rand(10)
            super()._explain_and_log(args, state, model)

    with mlflow.start_run():
        plain_weights, plain_losses = _seeded_training(tmp_path, "plain", lambda tok: [])
        weights, losses = _seeded_training(tmp_path, "explained", lambda tok: [RandomnessHungry(tok, DATASET, CONFIG)])
    assert losses == plain_losses and len(losses) == 2
    for name, tensor in plain_weights.items():
        assert torch.equal(tensor, weights[name]), name


def test_preserved_training_state_restores_rng_grads_and_mode(model_and_tokenizer):
    model, _ = model_and_tokenizer
    model.train()
    param = next(model.parameters())
    param.grad = torch.ones_like(param)
    expected_draw = None
    torch.manual_seed(0)
    with preserved_training_state(model):
        torch.rand(5)
        model.eval()
        param.grad.mul_(3)
        model.zero_grad(set_to_none=True)
    expected_draw = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), expected_draw)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(param.grad, torch.ones_like(param))


def test_failures_warn_and_training_goes_on(tracking, tmp_path, caplog, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    bad_method = ExplainCallback(tokenizer, DATASET, ExplainConfig(n_explain=2, method="nope"))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the artifact folder should be")
    experiment = mlflow.create_experiment("broken", artifact_location=(blocker / "artifacts").as_uri())
    unloggable = ExplainCallback(tokenizer, DATASET, CONFIG, fallback_dir=tmp_path / "kept")
    with mlflow.start_run(experiment_id=experiment):
        result = train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[bad_method, unloggable])
    assert result.history[-1]["epoch"] == 2.0  # training finished
    assert any("unknown attribution method 'nope'" in f for f in bad_method.failures)
    assert any("could not log the explanations of step" in f for f in unloggable.failures)
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    steps_per_epoch = result.history[-1]["step"] // 2
    assert kept == [
        f"final-step-{2 * steps_per_epoch:06d}",
        "step-000000",  # the baseline before training
        f"step-{steps_per_epoch:06d}",
        f"step-{2 * steps_per_epoch:06d}",
    ]
    assert (tmp_path / "kept" / kept[2] / artifacts.HTML_FILE).is_file()
    assert (tmp_path / "kept" / kept[2] / artifacts.TABLE_FILE).is_file()
    assert "Training goes on" in caplog.text


def test_only_the_main_process_explains(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    callback = ExplainCallback(tokenizer, DATASET, CONFIG)
    state = TrainerState()
    state.is_world_process_zero = False
    callback.on_train_begin(None, state, None)
    callback.on_evaluate(None, state, None, model=model)
    callback.on_train_end(None, state, None, model=model)
    assert callback.run_id is None and callback._last is None


def test_bad_constructor_arguments(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="every must be at least 1"):
        ExplainCallback(tokenizer, DATASET, every=0)
    with pytest.raises(ValueError, match="images_every must be 0"):
        ExplainCallback(tokenizer, DATASET, images_every=-1)
    with pytest.raises(ValueError, match="one label per text"):
        ExplainCallback.from_texts(tokenizer, ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="probe holds no sentences"):
        ExplainCallback(tokenizer, [])


def test_logging_runs_in_the_background_and_is_flushed_at_the_end(tracking, tmp_path, monkeypatch, model_and_tokenizer):
    import threading
    import time

    from mlflow_explain import tracking as tracking_layer

    model, tokenizer = model_and_tokenizer
    log_run_files, threads, evaluations = tracking_layer.log_run_files, [], []

    def slow_upload(run_id, paths, artifact_path=None):  # a slow tracking server
        threads.append((artifact_path or "", threading.current_thread().name))
        time.sleep(1.0)
        return log_run_files(run_id, paths, artifact_path)

    monkeypatch.setattr(tracking_layer, "log_run_files", slow_upload)
    callback = ExplainCallback(tokenizer, DATASET, CONFIG)
    on_evaluate = callback.on_evaluate

    def timed_evaluate(*args, **kwargs):
        started = time.perf_counter()
        on_evaluate(*args, **kwargs)
        evaluations.append(time.perf_counter() - started)

    monkeypatch.setattr(callback, "on_evaluate", timed_evaluate)
    with mlflow.start_run() as run:
        train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[callback], report_to="none")
    assert callback.failures == []
    assert len(evaluations) == 2 and max(evaluations) < 1.0  # the training thread did not wait for the uploads
    step_uploads = [name for path, name in threads if path.startswith(artifacts.STEPS_DIR)]
    assert step_uploads == ["mlflow-explain-logging"] * 3  # baseline and two evaluations, on the worker thread
    logged = MlflowClient().get_metric_history(run.info.run_id, "probe_log_seconds")
    assert len(logged) == 3 and min(m.value for m in logged) >= 1.0  # every step was logged before training ended
    assert len(_training_table(run.info.run_id).step.unique()) == 3


def test_each_evaluation_starts_from_where_the_last_ones_refinement_ended(
    tracking, tmp_path, monkeypatch, model_and_tokenizer
):
    from mlflow_explain import pipeline

    model, tokenizer = model_and_tokenizer
    given, results = [], []
    explain_sample = pipeline.explain_sample

    def spy(*args, start_cuts=None, **kwargs):
        given.append(dict(start_cuts or {}))
        results.append(explain_sample(*args, start_cuts=start_cuts, **kwargs))
        return results[-1]

    monkeypatch.setattr(pipeline, "explain_sample", spy)
    callback = ExplainCallback(tokenizer, DATASET, ExplainConfig(n_explain=3, tolerance=1e-3, n_steps=4))
    with mlflow.start_run():
        train(model, tokenizer, DATASET, TRAINING, tmp_path / "out", callbacks=[callback])
    assert len(given) == 3 and given[0] == {}  # the baseline, then two evaluations
    for before, after in zip(results, given[1:], strict=False):
        expected = {(e.text, a.label): a.cuts for e in before.explanations for a in e.attributions}
        assert expected and {k: after[k] for k in expected} == expected
