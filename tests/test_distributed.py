"""Distributed training: `torchrun --nproc_per_node 2` (gloo, CPU, 127.0.0.1) of the main job and of a Trainer."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_explain import artifacts

pytestmark = pytest.mark.slow  # two training processes per test

JOB = ("main", "--epochs", "2", "--n-explain", "4", "--explain-every", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path: Path, uri: str, *command: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun`` on this machine only, or a plain process when ``processes`` is 1."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT")},
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "ddp",
        "TQDM_DISABLE": "1",
    }
    if processes == 1:
        prefix = [sys.executable]
    else:
        prefix = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
        prefix += ["--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    return subprocess.run(
        [*prefix, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def artifact_tree(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact path, with training steps, and the timestamps and random ids of image names, replaced."""
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found += artifact_tree(client, run_id, item.path)
        else:
            name = re.sub(r"\+timestamp\+\d+\+[0-9a-f-]{36}", "+timestamp+T+ID", item.path)
            name = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", name)
            found.append(re.sub(r"step([_+])\d+", r"step\1N", name))
    return sorted(found)


def test_torchrun_of_the_main_job_trains_with_ddp_and_logs_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    single = launch(tmp_path, uri, "-m", "mlflow_explain.cli", *JOB, processes=1)
    assert single.returncode == 0, single.stderr[-3000:]
    done = launch(tmp_path, uri, "-m", "mlflow_explain.cli", *JOB)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr  # DDP, not two separate trainings
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id], order_by=["start_time ASC"])
    assert len(runs) == 2  # one per launch: the second process of the torchrun logged nothing
    alone, distributed = runs
    assert distributed.info.status == "FINISHED"
    assert distributed.data.params["world_size"] == "2" and "world_size" not in alone.data.params
    assert distributed.data.metrics["ddp_weight_spread"] == 0.0  # both processes ended with the same weights
    assert artifact_tree(client, distributed.info.run_id) == artifact_tree(client, alone.info.run_id)
    # the callback explained on rank 0 only, as often as alone; each process took half of every epoch's batches
    steps = [m.step for m in client.get_metric_history(distributed.info.run_id, "probe_explain_seconds")]
    steps_alone = [m.step for m in client.get_metric_history(alone.info.run_id, "probe_explain_seconds")]
    assert len(steps) == len(steps_alone) == 3 and steps == [s // 2 for s in steps_alone]
    assert done.stdout.count("\nrun ") + done.stdout.startswith("run ") == 1  # only the main process reports


USER_SCRIPT = """
import mlflow, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from builders import english_dataset, save_tiny_english_model
from mlflow_explain.callback import ExplainCallback
from mlflow_explain.config import ExplainConfig, TrainConfig
from mlflow_explain.modeling import load_pretrained, train

data = english_dataset()
model, tokenizer = load_pretrained(str(save_tiny_english_model(Path({folder!r}), seed=3)))
callback = ExplainCallback(tokenizer, data, ExplainConfig(n_explain=3, n_steps=4))
config = TrainConfig(model="local", epochs=2, batch_size=4, learning_rate=1e-3, max_length=32, seed=7)
train(model, tokenizer, data, config, Path({folder!r}) / "out", callbacks=[callback], report_to="mlflow")
print("failures", callback.failures)
"""


def test_a_users_trainer_with_the_callback_under_torchrun_logs_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "user.py"
    tests = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(USER_SCRIPT.format(tests=tests, folder=str(tmp_path / "model"))))
    done = launch(tmp_path, uri, str(script))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in done.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert run.info.status == "FINISHED" and "failures []" in done.stdout
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "probe_explain_seconds")]
    assert steps[0] == 0 and len(steps) == 3  # baseline and two evaluations, from rank 0 only
    assert f"{artifacts.TRAINING_DIR}/{artifacts.SENTENCES_FILE}" in artifact_tree(client, run.info.run_id)
