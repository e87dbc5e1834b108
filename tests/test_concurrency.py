"""Every attribution method explains correctly when threads share one model and tokenizer.

Served requests run ``predict`` in threads of one process (MLflow's server hands each to a thread),
so the classifier and its tokenizer are shared: Captum's hooks on the embedding layer
(``interpret-lig``) and a fast tokenizer's truncation setting are state of all callers. Each
concurrent result must equal the result of the same call made alone.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from builders import english_rows, save_tiny_english_model

from mlflow_explain.attribution import list_attribution_methods
from mlflow_explain.attribution._engine import (
    TimeBudgetExceeded,
    check_time_budget,
    exclusive_use,
    remaining_time,
    shared_use,
    time_budget,
)
from mlflow_explain.modeling import load_pretrained
from mlflow_explain.pyfunc import explain_frame

THREADS = 8


class _Thing:
    """Something to lock (the registry keeps weak references, which plain ``object()`` does not allow)."""


TEXTS = [
    *(row["text"] for row in english_rows(2)),
    " ".join(["the goal today"] * 15),  # 47 tokens: truncated to the tokenizer's 32
    "a rocket " * 30,  # 62 tokens: truncated
    "   ",  # no text: an empty row
]


def params(method: str) -> dict:
    return {"method": method, "n_steps": 8, "target": "all", "level": "token"}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny BERT with a fast tokenizer (``model_max_length=32``), on one torch thread per caller."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_pretrained(str(save_tiny_english_model(tmp_path_factory.mktemp("concurrency") / "classifier")))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS})


@pytest.fixture(scope="module")
def alone(classifier, frame) -> dict[str, pd.DataFrame]:
    """Each method's result for :data:`TEXTS`, computed with no other thread running."""
    return {method: explain_frame(*classifier, frame, params(method)) for method in list_attribution_methods()}


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same labels, tokens and truncation; scores, deltas and probabilities within float rounding.

    Rounding differs a little between runs alone and beside others: while another thread explains,
    the model computes through the exact shortcuts that it installed (``_shortcuts``), whose float32
    rounding is not the plain model's (about 1e-6 in a probability).
    """
    assert actual.predicted_label.tolist() == expected.predicted_label.tolist()
    assert actual.tokens.tolist() == expected.tokens.tolist()
    assert actual.truncated.tolist() == expected.truncated.tolist()
    assert actual.attributed_labels.tolist() == expected.attributed_labels.tolist()
    for a, b in zip(actual.itertuples(), expected.itertuples(), strict=True):
        np.testing.assert_allclose(np.asarray(a.scores, dtype=float), np.asarray(b.scores, dtype=float), atol=1e-5)
        np.testing.assert_allclose(a.convergence_deltas, b.convergence_deltas, atol=1e-5)
        if b.predicted_probability is None:
            assert a.predicted_probability is None
        else:
            assert a.predicted_probability == pytest.approx(b.predicted_probability, abs=1e-5)


def explain_concurrently(classifier, frame, methods: list[str]) -> list[pd.DataFrame]:
    """Explain ``frame`` once per entry of ``methods``, :data:`THREADS` calls at a time, all released together."""
    start = threading.Barrier(min(THREADS, len(methods)))

    def call(method: str) -> pd.DataFrame:
        start.wait(timeout=120)
        return explain_frame(*classifier, frame, params(method))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # submit, not map: a failure cancels no waiting call
        futures = [pool.submit(call, method) for method in methods]
        return [future.result() for future in futures]


@pytest.mark.parametrize("method", list_attribution_methods())
def test_threads_sharing_one_model_get_the_result_of_a_call_made_alone(method, classifier, frame, alone):
    for result in explain_concurrently(classifier, frame, [method] * THREADS):
        assert_same(result, alone[method])
    assert alone[method].truncated.tolist() == [False] * 6 + [True, True, False]


def test_threads_with_different_methods_do_not_disturb_each_other(classifier, frame, alone):
    methods = list_attribution_methods()
    mixed = [methods[i % len(methods)] for i in range(2 * THREADS)]  # interpret-lig's hooks beside the others
    for method, result in zip(mixed, explain_concurrently(classifier, frame, mixed), strict=True):
        assert_same(result, alone[method])


def test_an_exclusive_user_runs_alone_and_shared_users_together():
    obj, events, lock = _Thing(), [], threading.Lock()

    def use(kind: str, name: str) -> None:
        with (exclusive_use if kind == "exclusive" else shared_use)(obj):
            with lock:
                events.append(("in", kind, name))
            time.sleep(0.05)
            with lock:
                events.append(("out", kind, name))

    with ThreadPoolExecutor(max_workers=6) as pool:
        kinds = ["shared", "exclusive", "shared"] * 2
        list(pool.map(use, kinds, [f"user {i}" for i in range(len(kinds))]))
    inside: set[tuple[str, str]] = set()
    for step, kind, name in events:
        if step == "in":
            assert not any(k == "exclusive" for k, _ in inside), "someone entered during an exclusive use"
            assert kind == "shared" or not inside, "an exclusive use began while others were inside"
            inside.add((kind, name))
        else:
            inside.discard((kind, name))


def test_uses_are_reentrant_within_a_thread():
    obj = _Thing()
    with exclusive_use(obj), exclusive_use(obj), shared_use(obj):
        pass
    with shared_use(obj), shared_use(obj), pytest.raises(RuntimeError, match="deadlock"), exclusive_use(obj):
        pass
    with exclusive_use(obj):  # nothing is left held
        pass


def test_waiting_for_a_busy_model_ends_with_the_time_budget():
    obj, entered, release = _Thing(), threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive_use(obj):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        entered.wait(10)
        started = time.monotonic()
        with time_budget(0.2), pytest.raises(TimeBudgetExceeded, match=r"time budget of 0\.2 s"), shared_use(obj):
            pass
        assert time.monotonic() - started < 2
    finally:
        release.set()
        holder.join()
    with shared_use(obj):  # the timed-out waiter left nothing behind
        pass


def test_a_budget_holds_in_its_own_thread_and_the_earlier_deadline_wins():
    assert remaining_time() is None
    check_time_budget()  # no budget: nothing happens
    with time_budget(60):
        with time_budget(3600):
            assert remaining_time() <= 60
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(remaining_time).result() is None  # other threads have no budget
        with time_budget(0.0), pytest.raises(TimeBudgetExceeded):
            check_time_budget()
        check_time_budget()  # the outer budget is back
    assert remaining_time() is None
