"""Two figures for the closing notes, run by hand (about 3 minutes on a 2-core CPU)::

    python benchmarks/bench_callback_quality.py

1. The Trainer callback's overhead: the embedded default model (``tiny-bert-ja``, default epochs)
   trained on the embedded data with and without :class:`~mlflow_explain.ExplainCallback`
   (default settings: 18 probe sentences, ``lig``, 50 steps, all labels, quality on), explaining on
   every evaluation (one per epoch) with the image series on every, every 10th or no explanation,
   and explaining on every 10th evaluation; the time it adds, relative to training without it.
2. The quality metrics of every attribution method on that trained model and the embedded
   evaluation sample, with their cost relative to explaining: the default ``quality`` metrics
   (faithfulness) and the opt-in ``randomization`` check, timed separately.

``--quality-only`` skips the callback part (the model is then trained once, without callbacks).

MLflow logs into a temporary sqlite store that is removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mlflow

from mlflow_explain import ExplainCallback, ExplainConfig
from mlflow_explain.attribution import list_attribution_methods
from mlflow_explain.config import DataConfig, TrainConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.explainer import explain_examples
from mlflow_explain.modeling import build_embedded_model, train
from mlflow_explain.quality import evaluate_quality, quality_metrics
from mlflow_explain.sampling import sample_examples


def _train(dataset, training, workdir: Path, callbacks) -> tuple[float, object, object]:
    model, tokenizer = build_embedded_model(dataset, training, workdir)
    callbacks = callbacks(tokenizer)
    started = time.perf_counter()
    with mlflow.start_run():
        train(model, tokenizer, dataset, training, workdir / "trainer", callbacks=callbacks)
    return time.perf_counter() - started, model, tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--quality-only", action="store_true", help="skip the callback overhead part")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", (tmp / "artifacts").as_uri()))
        dataset = load_dataset(DataConfig())
        training = TrainConfig()
        config = ExplainConfig(n_steps=args.n_steps)

        print(f"## Trainer callback overhead ({training.resolved_epochs:.0f} epochs, default ExplainConfig)")
        plain, model, tokenizer = _train(dataset, training, tmp / "plain", lambda tok: [])
        print(f"{'setting':44} {'train s':>8} {'overhead':>9}")
        print(f"{'no callback':44} {plain:8.1f} {'':>9}")
        for every, images_every in () if args.quality_only else ((1, 1), (1, 10), (1, 0), (10, 1)):
            seconds, _, _ = _train(
                dataset,
                training,
                tmp / f"every{every}-{images_every}",
                lambda tok, e=every, i=images_every: [ExplainCallback(tok, dataset, config, every=e, images_every=i)],
            )
            share = (seconds - plain) / plain
            setting = f"callback, every={every}, images_every={images_every}"
            print(f"{setting:44} {seconds:8.1f} {share:+8.0%}")

        print(f"\n## Quality metrics per method (embedded sample, {config.n_explain} sentences, all labels)")
        sample = sample_examples(dataset.eval, config.n_explain, config.sample_seed)
        header = ("method", "explain s", "quality s", "cost", "+rand. s", "cost")
        header += ("compr.", "compr.rand", "suff.", "suff.rand", "rand.rho")
        print("{:17} {:>9} {:>9} {:>6} {:>8} {:>6} {:>7} {:>10} {:>6} {:>9} {:>8}".format(*header))
        explain_examples(model, tokenizer, sample[:2], config, progress=False)  # warm up
        for method in list_attribution_methods():
            settings = replace(config, method=method)
            started = time.perf_counter()
            explanations = explain_examples(model, tokenizer, sample, settings, progress=False)
            explain_seconds = time.perf_counter() - started
            started = time.perf_counter()
            metrics = quality_metrics(evaluate_quality(model, tokenizer, explanations, settings))
            quality_seconds = time.perf_counter() - started
            started = time.perf_counter()
            randomized = evaluate_quality(model, tokenizer, explanations, settings, randomization=True)
            randomization_seconds = time.perf_counter() - started - quality_seconds
            metrics |= quality_metrics(randomized)
            print(
                f"{method:17} {explain_seconds:9.2f} {quality_seconds:9.2f} {quality_seconds / explain_seconds:6.0%} "
                f"{randomization_seconds:8.2f} {randomization_seconds / explain_seconds:6.0%} "
                f"{metrics['quality_comprehensiveness']:7.3f} {metrics['quality_comprehensiveness_random']:10.3f} "
                f"{metrics['quality_sufficiency']:6.3f} {metrics['quality_sufficiency_random']:9.3f} "
                f"{metrics.get('quality_randomization_spearman', float('nan')):8.3f}"
            )


if __name__ == "__main__":
    main()
