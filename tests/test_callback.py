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

from mlflow_explain import artifacts
from mlflow_explain.callback import ExplainCallback, preserved_training_state
from mlflow_explain.config import ExplainConfig, TrainConfig
from mlflow_explain.data import Example, TextDataset
from mlflow_explain.modeling import load_pretrained, train

ROWS = english_rows(per_label=8)
DATASET = TextDataset(
    train=tuple(Example(r["text"], r["label"]) for r in ROWS[::2] + ROWS[1::4]),
    eval=tuple(Example(r["text"], r["label"]) for r in ROWS[3::4]),
    labels=("cooking", "football", "space"),
    source="test",
)
CONFIG = ExplainConfig(n_explain=3, n_steps=4)
TRAINING = TrainConfig(model="local", epochs=2, batch_size=4, learning_rate=1e-3, max_length=32, seed=7)


@pytest.fixture
def model_and_tokenizer(tmp_path):
    return load_pretrained(str(save_tiny_english_model(tmp_path / "model", seed=3)))


def _runs():
    experiment = mlflow.get_experiment_by_name("tests")
    return MlflowClient().search_runs([experiment.experiment_id])


def _training_table(run_id: str):
    return mlflow.load_table(f"{artifacts.TRAINING_DIR}/{artifacts.TABLE_FILE}", run_ids=[run_id])


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
    assert steps == sorted(steps) and len(steps) == 2  # one per evaluation (the final one is reused)
    table = _training_table(run.info.run_id)
    assert sorted(table.step.unique()) == steps
    assert sorted(table.epoch.unique()) == [1.0, 2.0]
    assert table.groupby("step").sentence_id.nunique().tolist() == [3, 3]
    names = {a.path for a in client.list_artifacts(run.info.run_id, artifacts.TRAINING_DIR)}
    assert f"{artifacts.TRAINING_DIR}/{artifacts.HTML_FILE}" in names
    assert f"{artifacts.TRAINING_DIR}/{artifacts.SUMMARY_PLOT}" in names
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert sum("training~sentence_000" in p and p.endswith(".png") for p in images) == 2
    assert run.data.tags[artifacts.SAMPLE_HASH_TAG]
    quality = client.get_metric_history(run.info.run_id, "probe_quality_comprehensiveness")
    assert [m.step for m in quality] == steps


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
    assert table.step.nunique() == 1  # every=2 with two evaluations: one explanation, reused at the end
    assert set(table.text) == {"rocket launch today", "bake the soup"}


@pytest.mark.parametrize(("images_every", "expected"), [(0, []), (2, [0, 2, 3]), (3, [0, 3])])
def test_images_every_thins_the_image_series(tracking, tmp_path, model_and_tokenizer, images_every, expected):
    model, tokenizer = model_and_tokenizer
    callback = ExplainCallback(tokenizer, DATASET, CONFIG, images_every=images_every)
    with mlflow.start_run() as run:
        train(model, tokenizer, DATASET, replace(TRAINING, epochs=4), tmp_path / "out", callbacks=[callback])
    assert callback.failures == []
    client = MlflowClient()
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "probe_explain_seconds")]
    assert len(steps) == 4  # every evaluation is still explained and tabled
    assert _training_table(run.info.run_id).step.nunique() == 4
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    logged = {p for p in images if "training~sentence_000" in p and p.endswith(".png")}
    # The first explanation and every images_every-th after it, and always the final one.
    assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in logged) == [steps[i] for i in expected]


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
        f"step-{steps_per_epoch:06d}",
        f"step-{2 * steps_per_epoch:06d}",
    ]
    assert (tmp_path / "kept" / kept[1] / artifacts.HTML_FILE).is_file()
    assert (tmp_path / "kept" / kept[1] / artifacts.TABLE_FILE).is_file()
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
