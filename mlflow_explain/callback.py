"""A ``transformers`` ``TrainerCallback`` that explains probe sentences during training.

Before training starts (step 0, the untrained model), on every evaluation (or every n-th) and at
the end of training, :class:`ExplainCallback` explains a fixed set of probe sentences with the
current model and logs, into the run that Trainer reports to:

* the step's attribution table and per-sentence table, with ``step`` and ``epoch`` columns, as files
  of their own under ``explanations/training/steps/step_<step>/`` (so logging a step costs the same
  at the 30th evaluation as at the first);
* each sentence's token strip as an image series keyed by the sentence
  (``mlflow.log_image(key=..., step=...)``), on every ``images_every``-th explanation and at the end;
* per-step metrics: explanation time, mean predicted-label probability, probe accuracy, the
  completeness error, with ``config.quality`` the quality metrics of :mod:`mlflow_explain.quality`,
  and the time logging the step took (``probe_log_seconds``);
* at the end, the per-sentence history of every step as one table (``mlflow.log_table``,
  ``explanations/training/sentences.json``), the HTML pages and the per-class summary plot of the
  final step, and the final step's summary picture and page at the run's artifact root.

Only explaining runs on the training thread (it needs the model's current weights); writing the
tables, drawing the strips and uploading run on one background thread, in order, while training
goes on, and are waited for at the end of training (:meth:`ExplainCallback.flush`).

Explaining must not change training: the callback saves and restores the random number
generators, the parameters' gradients and the model's train/eval mode around its work, so a
seeded run ends with the same weights with and without it. Any failure while explaining or
logging is reported as a warning and training goes on; explanations that could not be logged
are written to a local folder whose path is printed.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from mlflow_explain import artifacts
from mlflow_explain.config import ExplainConfig
from mlflow_explain.data import Example, TextDataset
from mlflow_explain.explanation import Explanation, summary_metrics
from mlflow_explain.quality import quality_metrics
from mlflow_explain.sampling import sample_examples, sample_hash, sentence_key

__all__ = ["TRAINING_CONFIG", "ExplainCallback"]

logger = logging.getLogger(__name__)

TRAINING_CONFIG = ExplainConfig(target="predicted+true")
"""The callback's default settings: :class:`ExplainConfig`'s, attributing the predicted and the true label.

Those are the labels its pictures and tables show (the predicted label's attribution; the true one's
beside it when the model is wrong); the other seven of nine labels would be four times the work on the
training thread. Pass ``ExplainConfig()`` for all labels."""


class ExplainCallback(TrainerCallback):
    """Explain probe sentences on every evaluation and at the end of training, and log to MLflow.

    It logs into the active MLflow run when training starts: the run that transformers'
    ``MLflowCallback`` started (``report_to="mlflow"``), or the one the caller started with
    ``mlflow.start_run()``. With no active run it starts one and ends it after training. Every
    write names that run explicitly, so logging still lands in it after ``MLflowCallback`` has
    ended it. Only the main process (``state.is_world_process_zero``) explains and logs.

    Args:
        tokenizer: The model's tokenizer.
        probe: The probe sentences (examples with their true labels), or a data set whose
            evaluation split is sampled with ``config.n_explain`` and ``config.sample_seed``, the same
            deterministic sample the main job explains.
        config: Explanation settings. Defaults to :data:`TRAINING_CONFIG` (the predicted and the true label).
        every: Explain on every ``every``-th evaluation. Defaults to 1.
        images_every: Log the per-sentence token strips as image series on every
            ``images_every``-th explanation (the step-0 baseline included) and for the final step;
            0 logs none. Defaults to 1.
        max_length: Longest input in tokens; defaults to the model's maximum.
        fallback_dir: Where explanations that could not be logged are written. Defaults to
            ``<output_dir>/unlogged-explanations`` of the Trainer.

    Example:
        >>> callback = ExplainCallback(tokenizer, dataset, ExplainConfig(n_explain=9))  # doctest: +SKIP
        >>> Trainer(model, args, callbacks=[callback], ...).train()  # doctest: +SKIP
    """

    def __init__(
        self,
        tokenizer,
        probe: TextDataset | Sequence[Example],
        config: ExplainConfig | None = None,
        *,
        every: int = 1,
        images_every: int = 1,
        max_length: int | None = None,
        fallback_dir: str | Path | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}.")
        if images_every < 0:
            raise ValueError(f"images_every must be 0 (no images) or more, got {images_every}.")
        self.tokenizer = tokenizer
        self.config = config or TRAINING_CONFIG
        if isinstance(probe, TextDataset):
            probe = sample_examples(probe.eval, self.config.n_explain, self.config.sample_seed)
        self.probe = list(probe)
        if not self.probe:
            raise ValueError("the probe holds no sentences; give examples or a data set with an evaluation split.")
        self.every = every
        self.images_every = images_every
        self.max_length = max_length
        self.fallback_dir = Path(fallback_dir) if fallback_dir else None
        self.run_id: str | None = None
        self.failures: list[str] = []
        self._own_run = False
        self._evaluations = 0
        self._explanations = 0
        self._last: tuple[int, list[Explanation]] | None = None
        self._images_step: int | None = None  # the last step whose images were logged
        self._history: list = []  # per-sentence tables of the logged steps (DataFrames)
        self._cuts: dict[tuple[str, str], tuple[float, ...]] = {}  # where each pair's refinement ended
        self.view_url: str | None = None  # the prepared chart view in the MLflow UI, set at the end
        self._worker = _Worker()

    @classmethod
    def from_texts(cls, tokenizer, texts: Sequence[str], labels: Sequence[str], **kwargs) -> ExplainCallback:
        """Build the callback from probe texts and their true labels.

        Args:
            tokenizer: The model's tokenizer.
            texts: Probe sentences.
            labels: Their true labels, one per text.
            **kwargs: Passed to the constructor (``config``, ``every``, ...).

        Returns:
            The callback.
        """
        if len(texts) != len(labels):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels; give one label per text.")
        return cls(tokenizer, [Example(t, lab) for t, lab in zip(texts, labels, strict=True)], **kwargs)

    # --- Trainer hooks ---------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from mlflow_explain import tracking

        try:
            self.run_id, self._own_run = tracking.active_or_new_run()
            tracking.tag_run(self.run_id, {artifacts.SAMPLE_HASH_TAG: sample_hash(self.probe)})
        except Exception as err:  # training must go on without explanations (see module docstring)
            self._warn("could not reach MLflow at the start of training", err)
            return
        model = kwargs.get("model")
        if model is not None:  # the baseline: the image slider opens on a picture, the history on the untrained model
            self._explain_and_log(args, state, model)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        self._evaluations += 1
        if self._evaluations % self.every == 0:
            self._explain_and_log(args, state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        if self._last is None or self._last[0] != state.global_step:
            self._explain_and_log(args, state, model)
        self.flush()
        if self._last is not None and self.run_id is not None:
            if self.images_every and self._images_step != self._last[0]:
                try:
                    self._log_images(*self._last)
                except Exception as err:  # see _explain_and_log
                    self._warn(f"could not log the plots of step {self._last[0]}", err)
            self._log_history()
            self._log_final_pages(args, *self._last)
        if self._own_run:
            from mlflow_explain import tracking

            tracking.end_active_run()

    # --- work ------------------------------------------------------------------------------------

    def _explain_and_log(self, args, state, model) -> None:
        from mlflow_explain.pipeline import explain_sample

        step, epoch = int(state.global_step), float(state.epoch or 0.0)
        try:
            with preserved_training_state(model):
                result = explain_sample(
                    model,
                    self.tokenizer,
                    self.probe,
                    self.config,
                    max_length=self.max_length,
                    progress=False,
                    start_cuts=self._cuts,
                )
        except Exception as err:  # out of memory, a bad probe text, ...: warn and let training go on
            self._warn(f"could not explain the probe sentences at step {step}", err)
            return
        # The next evaluation starts each pair where this one's refinement ended: the weights move little
        # between evaluations, and a saturated pair need not be cut again from the whole path.
        self._cuts |= {
            (e.text, a.label): a.cuts for e in result.explanations for a in e.attributions if a.cuts is not None
        }
        self._last = (step, result.explanations)
        self._explanations += 1
        images = bool(self.images_every) and (self._explanations - 1) % self.images_every == 0
        self._worker.submit(lambda: self._log_explained(args, step, epoch, result, images))

    def flush(self) -> None:
        """Wait until everything explained so far is logged (the end of training does it)."""
        self._worker.join()

    def _log_explained(self, args, step: int, epoch: float, result, images: bool) -> None:
        """Log one step's explanations (on the background thread); on failure keep them locally and warn."""
        from mlflow_explain.tracking import log_run_metrics, retry_budget

        explanations = result.explanations
        try:
            started = time.perf_counter()
            with retry_budget():  # a dead server costs seconds per step, not minutes
                self._log_step(explanations, step, epoch, result.seconds, result.qualities)
                if images:
                    self._log_images(step, explanations)
                # What logging this step cost (files, metrics, images): flat over the steps by design.
                log_run_metrics(self._run(), {"probe_log_seconds": time.perf_counter() - started}, step=step)
        except Exception as err:  # tracking store down, ...: keep the explanations locally
            folder = self._keep_locally(args, explanations, f"step-{step:06d}")
            self._warn(f"could not log the explanations of step {step}; they are kept in {folder}", err)
            print(f"mlflow-explain: explanations of step {step} kept in {folder}", flush=True)

    def _log_step(
        self, explanations: list[Explanation], step: int, epoch: float, seconds: float, qualities: list | None
    ) -> None:
        import tempfile

        from mlflow_explain.tracking import log_run_files, log_run_metrics, write_step_tables

        with tempfile.TemporaryDirectory(prefix="mlflow-explain-step-") as folder:
            written, sentences = write_step_tables(explanations, folder, step=step, epoch=epoch, quality=qualities)
            destination = f"{artifacts.STEPS_DIR}/{artifacts.STEP_FOLDER.format(step=step)}"
            log_run_files(self._run(), written, destination)
        self._history.append(sentences)
        values = {f"probe_{k}": v for k, v in summary_metrics(explanations).items()}
        values["probe_explain_seconds"] = seconds
        values |= {f"probe_{k}": v for k, v in quality_metrics(qualities or []).items()}
        log_run_metrics(self.run_id, values, step=step)

    def _log_images(self, step: int, explanations: list[Explanation]) -> None:
        from mlflow_explain.render import token_strip
        from mlflow_explain.tracking import log_run_images

        images = {}
        for explanation in explanations:
            if not explanation.attributions:
                continue
            key = sentence_key(explanation.text)
            name = artifacts.IMAGE_KEY_TRAINING_SENTENCE.format(sentence_id=explanation.sentence_id, key=key)
            images[name] = token_strip(explanation, key=key)
        log_run_images(self._run(), images, step=step)
        self._images_step = step

    def _log_history(self) -> None:
        """At the end of training: every step's per-sentence rows as one table, and the probe's cards in the view."""
        import pandas as pd

        from mlflow_explain.tracking import (
            log_run_table,
            run_experiment_id,
            sentence_image_keys,
            share_explanation_view,
        )

        if not self._history:
            return
        try:
            history = pd.concat(self._history, ignore_index=True)
            with _no_artifact_progress_bars():
                log_run_table(self._run(), history, f"{artifacts.TRAINING_DIR}/{artifacts.SENTENCES_FILE}")
            if self.images_every and self._last is not None:
                experiment_id = run_experiment_id(self.run_id)
                keys = sentence_image_keys(self._last[1], artifacts.IMAGE_KEY_TRAINING_SENTENCE)
                self.view_url = share_explanation_view(experiment_id, keys)
        except Exception as err:  # see _explain_and_log; the per-step files hold the same rows
            self._warn("could not log the per-sentence history table", err)

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("no MLflow run to log into (MLflow was unreachable when training started)")
        return self.run_id

    def _log_final_pages(self, args, step: int, explanations: list[Explanation]) -> None:
        import tempfile

        from mlflow_explain.tracking import log_run_files, write_explanations

        with tempfile.TemporaryDirectory(prefix="mlflow-explain-final-") as folder:
            try:
                written = write_explanations(
                    explanations,
                    folder,
                    title="Token attributions at the end of training",
                    subtitle=f"step {step} · method {self.config.method} · n_steps {self.config.n_steps}",
                    top_k=self.config.top_k,
                )
                pages = (
                    artifacts.HTML_FILE,
                    artifacts.WORDS_HTML_FILE,
                    f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}",
                )
                log_run_files(self._run(), [written[name] for name in pages], artifacts.TRAINING_DIR)
                # The compare page shows the root.
                log_run_files(self.run_id, [written[name] for name in artifacts.ROOT_FILES])
            except Exception as err:  # see _explain_and_log
                kept = self._keep_locally(args, explanations, f"final-step-{step:06d}")
                self._warn(f"could not log the final explanation pages; they are kept in {kept}", err)
                print(f"mlflow-explain: final explanations kept in {kept}", flush=True)

    def _keep_locally(self, args, explanations: list[Explanation], name: str) -> Path:
        from mlflow_explain.tracking import write_explanations

        base = self.fallback_dir or Path(getattr(args, "output_dir", None) or ".") / "unlogged-explanations"
        folder = base / name
        write_explanations(explanations, folder)
        return folder.resolve()

    def _warn(self, what: str, err: BaseException) -> None:
        message = f"ExplainCallback {what}: {type(err).__name__}: {err}. Training goes on."
        self.failures.append(message)
        logger.warning(message)


@contextmanager
def preserved_training_state(model: torch.nn.Module) -> Iterator[None]:
    """Run a block without leaving a trace on training.

    Saves and restores the Python, NumPy and torch (CPU and CUDA) random states, the parameters'
    ``.grad`` tensors and the model's train/eval mode.

    Args:
        model: The model being trained.

    Yields:
        Nothing; the state is restored when the block exits, also on error.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    grads = {name: (p.grad.detach().clone() if p.grad is not None else None) for name, p in model.named_parameters()}
    modes = {name: module.training for name, module in model.named_modules()}
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        for name, p in model.named_parameters():
            saved = grads[name]
            if saved is None:
                p.grad = None
            elif p.grad is None:
                p.grad = saved
            else:
                p.grad.copy_(saved)
        for name, module in model.named_modules():
            module.training = modes[name]


@contextmanager
def _no_artifact_progress_bars() -> Iterator[None]:
    """Silence MLflow's artifact progress bars in the block, unless the user configured them."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if name in os.environ:
        yield
        return
    os.environ[name] = "false"
    try:
        yield
    finally:
        os.environ.pop(name, None)


class _Worker:
    """Runs jobs in the order given on one daemon thread, started on the first job.

    A job that raises is logged and the next one runs: the jobs handle their own failures, this only
    keeps the thread alive. Jobs still queued when the interpreter exits (training that raised, so that
    ``on_train_end`` never came) are run before it does.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mlflow-explain-logging", daemon=True)
                self._thread.start()
                atexit.register(self.join)  # a training that raised still gets its explanations logged
        self._jobs.put(job)

    def join(self) -> None:
        """Wait until every submitted job has run."""
        self._jobs.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # see the class docstring
                logger.exception("ExplainCallback: a logging job failed")
            finally:
                self._jobs.task_done()
