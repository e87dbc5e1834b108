"""Benchmark the native attribution engine against transformers-interpret.

Run by hand (it trains two small models and takes a few minutes on a 2-core CPU)::

    python benchmarks/bench_attribution.py
    python benchmarks/bench_attribution.py --ti-sentences 8 --repeats 2

Both sides explain the same sentences (the embedded evaluation sample) towards all labels on the
same device and threads, with two models: the embedded default ``tiny-bert-ja`` and a BERT built
from a config with 4 layers, hidden size 256 and 9 labels, both trained on the embedded data.
transformers-interpret runs through the ``interpret-lig`` backend: one
``SequenceClassificationExplainer`` call per sentence and label, on the same token ids. For each
model it prints sentences per second, the median absolute convergence delta (completeness error),
the largest score difference from transformers-interpret and the peak memory, then the speed
ratios against the two goals:

- ``lig-parity`` at the same ``n_steps``: at least 3x transformers-interpret's throughput;
- ``lig`` (the proposed default) at the fewest ``n_steps`` whose median completeness error is no
  worse than transformers-interpret's at ``--n-steps``: at least 5x. transformers-interpret's
  error includes the effect of its baseline's position and token type ids, which ``lig`` does not
  have, so the speed ratio at a fixed median error (``--delta-target``) is printed as well.

Times are wall-clock (and, for a machine shared with other work, CPU time of this process); the
timed runs of all methods alternate, and with ``--repeats`` above 1 each keeps its fastest run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import io
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlflow_explain.attribution import RawAttribution, get_attribution_method
from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.explainer import CHUNK
from mlflow_explain.modeling import TINY_BERT, build_embedded_model, encode_texts, max_input_length, train
from mlflow_explain.sampling import sample_examples

REFERENCE = "interpret-lig"
PARITY = "lig-parity"
NATIVE = "lig"
SPEED_GOAL = 3.0
COMPLETENESS_SPEED_GOAL = 5.0
STEP_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 64, 100)

BERT_4X256 = {
    **TINY_BERT,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
}
"""The larger model: 4 layers, hidden size 256 (plus the embedded model's vocabulary and 9 labels)."""


@dataclass(eq=False)
class Measurement:
    """One method at one ``n_steps`` on one model; times are the fastest of the repeats."""

    method: str
    n_steps: int
    n_sentences: int
    results: list[RawAttribution]
    seconds: float = float("inf")
    cpu_seconds: float = float("inf")
    peak_mb: float = float("nan")

    @property
    def sentences_per_second(self) -> float:
        return self.n_sentences / self.seconds

    @property
    def sentences_per_cpu_second(self) -> float:
        return self.n_sentences / self.cpu_seconds

    @property
    def median_delta(self) -> float:
        return float(np.median(np.abs(np.concatenate([r.deltas for r in self.results]))))

    def max_difference(self, other: Measurement) -> float:
        return max(float(np.abs(a.scores - b.scores).max()) for a, b in zip(self.results, other.results, strict=True))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dataset(DataConfig())
    texts = [e.text for e in sample_examples(dataset.eval, args.sentences, args.seed)]
    print(
        f"# device {device}, {torch.get_num_threads()} threads, {len(texts)} sentences from the embedded "
        f"evaluation sample, all labels, n_steps {args.n_steps}, Gauss-Legendre"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for name, shape, epochs, learning_rate in (
            ("tiny-bert-ja (embedded default)", None, None, None),
            ("bert-4x256 (4 layers, hidden 256, 9 labels)", BERT_4X256, args.large_epochs, 3e-4),
        ):
            model, tokenizer = _trained_model(dataset, shape, epochs, learning_rate, Path(workdir) / str(len(name)))
            model.to(device).eval()
            encoded = encode_texts(tokenizer, texts, max_input_length(model, tokenizer, TrainConfig().max_length))
            _benchmark(name, model, tokenizer, encoded, args)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=18, help="sentences from the evaluation sample (18)")
    parser.add_argument(
        "--ti-sentences", type=int, default=None, help="compare on the first N sentences only (default: all)"
    )
    parser.add_argument("--n-steps", type=int, default=50, help="integration steps of both sides (50)")
    parser.add_argument(
        "--delta-target", type=float, default=1e-3, help="a fixed median |delta| to reach as well (1e-3)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method; the fastest counts (1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--large-epochs", type=float, default=10, help="training epochs of the 4-layer model (10)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def _trained_model(dataset, shape: dict | None, epochs: float | None, learning_rate: float | None, workdir: Path):
    """The embedded default model, or a BERT of another ``shape`` with the same tokenizer, trained."""
    import transformers

    config = TrainConfig(epochs=epochs, learning_rate=learning_rate)
    model, tokenizer = build_embedded_model(dataset, config, workdir)
    if shape is not None:
        bert_config = model.config.to_dict() | shape
        transformers.set_seed(config.seed)
        model = transformers.BertForSequenceClassification(transformers.BertConfig(**bert_config))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = train(model, tokenizer, dataset, config, workdir / "trainer")
    print(
        f"# trained {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters in "
        f"{time.perf_counter() - started:.0f} s, evaluation accuracy {result.metrics['accuracy']:.2f}"
    )
    return model, tokenizer


def _benchmark(name: str, model, tokenizer, encoded, args: argparse.Namespace) -> None:
    compared = encoded[: args.ti_sentences] if args.ti_sentences else encoded
    runner = _Runner(model, tokenizer, compared)
    reference = runner.run(REFERENCE, args.n_steps)
    parity = runner.run(PARITY, args.n_steps)
    # The fewest steps at which the native engine's median completeness error is no worse than
    # transformers-interpret's, and no worse than a fixed target.
    goals = {
        f"TI's {reference.median_delta:.1e}": reference.median_delta,
        f"the fixed {args.delta_target:.0e}": args.delta_target,
    }
    fewest = {goal: runner.fewest_steps(NATIVE, limit) for goal, limit in goals.items()}
    measurements = [reference, parity, runner.run(NATIVE, args.n_steps)]
    for m in fewest.values():
        if m is not None and m not in measurements:
            measurements.append(m)
    runner.time(measurements, args.repeats)  # interleaved, so that every method sees the same load

    print(f"\n## {name}: {len(compared)} sentences x {runner.n_labels} labels")
    print(
        f"{'method':<12}{'n_steps':>8}{'sentences/s':>13}{'sentences/cpu-s':>17}{'median |delta|':>16}"
        f"{'max |score diff| vs TI':>24}{'peak MB':>9}"
    )
    for m in measurements:
        difference = f"{m.max_difference(reference):.1e}" if m.n_steps == reference.n_steps else "-"
        print(
            f"{'TI' if m.method == REFERENCE else m.method:<12}{m.n_steps:>8}{m.sentences_per_second:>13.2f}"
            f"{m.sentences_per_cpu_second:>17.2f}{m.median_delta:>16.2e}{difference:>24}{m.peak_mb:>9.0f}"
        )
    print(_ratio(f"{PARITY} / TI at n_steps {args.n_steps} (scores within 1e-3)", parity, reference, SPEED_GOAL))
    for goal, m in fewest.items():
        if m is None:
            print(f"{NATIVE} does not reach a median |delta| of {goal} within {max(STEP_GRID)} steps")
            continue
        what = f"{NATIVE} at n_steps {m.n_steps} (median |delta| <= {goal}) / TI at n_steps {args.n_steps}"
        print(_ratio(what, m, reference, COMPLETENESS_SPEED_GOAL if goal.startswith("TI") else None))


def _ratio(what: str, measurement: Measurement, reference: Measurement, goal: float | None) -> str:
    wall = measurement.sentences_per_second / reference.sentences_per_second
    cpu = measurement.sentences_per_cpu_second / reference.sentences_per_cpu_second
    verdict = "" if goal is None else f"; goal >= {goal:.0f}x: {'met' if wall >= goal else 'NOT met'}"
    return f"speed ratio {what}: {wall:.1f}x ({cpu:.1f}x in CPU time{verdict})"


class _Runner:
    """Runs backends on one model towards all labels, in the explainer's chunks of sentences."""

    def __init__(self, model, tokenizer, encoded):
        self.model, self.tokenizer, self.encoded = model, tokenizer, encoded
        self.n_labels = int(model.config.num_labels)
        self._runs: dict[tuple[str, int], Measurement] = {}

    def run(self, method: str, n_steps: int) -> Measurement:
        """Attribute once, untimed (and only once per method and ``n_steps``)."""
        if (method, n_steps) not in self._runs:
            results = self._attribute(method, n_steps, self.encoded)
            self._runs[method, n_steps] = Measurement(method, n_steps, len(self.encoded), results)
        return self._runs[method, n_steps]

    def fewest_steps(self, method: str, median_delta: float) -> Measurement | None:
        """The run with the fewest steps of :data:`STEP_GRID` whose median |delta| is at most ``median_delta``."""
        return next((m for m in (self.run(method, n) for n in STEP_GRID) if m.median_delta <= median_delta), None)

    def time(self, measurements: Sequence[Measurement], repeats: int) -> None:
        """Time each measurement ``repeats`` times, round-robin, after a warm-up sentence each."""
        for m in measurements:
            self._attribute(m.method, m.n_steps, self.encoded[:1])
        for _ in range(repeats):
            for m in measurements:
                with _peak_memory(self.model) as peak:
                    wall, cpu = time.perf_counter(), time.process_time()
                    self._attribute(m.method, m.n_steps, self.encoded)
                    _synchronize(self.model)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                m.seconds, m.cpu_seconds = min(m.seconds, wall), min(m.cpu_seconds, cpu)
                m.peak_mb = peak() if np.isnan(m.peak_mb) else max(m.peak_mb, peak())

    def _attribute(self, method: str, n_steps: int, encoded) -> list[RawAttribution]:
        backend = get_attribution_method(method)
        config = ExplainConfig(method=method, n_steps=n_steps, tolerance=None)  # both sides at equal steps
        targets = [list(range(self.n_labels))] * len(encoded)
        results = []
        for start in range(0, len(encoded), CHUNK):
            chunk = slice(start, start + CHUNK)
            results += backend.attribute(self.model, self.tokenizer, encoded[chunk], targets[chunk], config)
        return results


@contextlib.contextmanager
def _peak_memory(model) -> Iterator[Callable[[], float]]:
    """Measure the largest memory increase in the block, in MiB: GPU memory on CUDA, else the
    process's peak resident set size (reset through ``/proc/self/clear_refs``)."""
    gc.collect()
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        peak = {}
        yield lambda: peak["mb"]
        peak["mb"] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back so that the next peak is seen
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set size
    except OSError:
        yield lambda: float("nan")
        return
    start = _status_kb("VmRSS")
    peak = {}
    yield lambda: peak["mb"]
    peak["mb"] = (_status_kb("VmHWM") - start) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _synchronize(model) -> None:
    if next(model.parameters()).device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
