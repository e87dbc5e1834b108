"""The ``mlflow-explain`` command line; MLproject's entry points call these commands."""

from __future__ import annotations

import logging
import sys

import click

from mlflow_explain.attribution import list_attribution_methods
from mlflow_explain.config import (
    DEFAULT_MODEL,
    EMBEDDED_DATA,
    FIXED_STEPS,
    INTEGRATION_METHODS,
    LABEL_SET_SEPARATOR,
    START_STEPS,
    TARGETS,
    DataConfig,
    ExplainConfig,
    TrainConfig,
)
from mlflow_explain.errors import MlflowExplainError

__all__ = ["cli"]


class _AutoPositive(click.ParamType):
    """A positive number, or ``auto`` (or nothing) for the model-dependent default."""

    def __init__(self, name: str) -> None:
        self.name = name

    what = "a number"

    def convert(self, value, param, ctx):
        number = self.number(value, param, ctx)
        if number is not None and number <= 0:
            self.fail(f"{self.name} must be positive, got {value}", param, ctx)
        return number

    def number(self, value, param, ctx) -> float | None:
        """The value as a float, or ``None`` for ``auto`` or nothing."""
        if value is None or (isinstance(value, str) and value.strip().lower() in ("auto", "")):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither {self.what} nor 'auto'", param, ctx)


class _AutoCount(_AutoPositive):
    """A whole number (its range is the settings object's to check), or ``auto`` (or nothing) for the default."""

    what = "a whole number"

    def convert(self, value, param, ctx):
        number = self.number(value, param, ctx)
        if number is None:
            return None
        if not number.is_integer():
            self.fail(f"{self.name} must be a whole number, got {value}", param, ctx)
        return int(number)


def _optional_float(value: str | float | None, option: str) -> float | None:
    if value is None or str(value).strip().lower() in ("", "none", "off", "0"):
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (or 'none')", param_hint=option) from None


def _optional_int(value: str | int | None) -> int | None:
    return None if value in (None, "", 0, "0", "none", "None") else int(value)


_N_STEPS_HELP = (
    f"Integrated Gradients points a path starts with; 'auto' is {START_STEPS} with a tolerance, {FIXED_STEPS} without."
)
_ENCODING_HELP = "Encoding of the input files: auto (UTF-8 with or without BOM, CP932, EUC-JP) or a Python codec."


def data_options(func):
    """Options shared by the commands that read a data set."""
    options = [
        click.option(
            "--data",
            default=EMBEDDED_DATA,
            show_default=True,
            help="'embedded', a CSV/TSV/JSONL file, a livedoor-layout folder, a save_to_disk folder or a Hub data set.",
        ),
        click.option("--text-column", default="text", show_default=True, help="Column holding the text."),
        click.option("--label-column", default="label", show_default=True, help="Column holding the label."),
        click.option("--eval-data", default="", help="Separate evaluation file (default: split from --data)."),
        click.option(
            "--eval-fraction",
            default=0.2,
            show_default=True,
            type=float,
            help="Share held out for evaluation when the data has no split.",
        ),
        click.option(
            "--text-field",
            default="title",
            show_default=True,
            type=click.Choice(["title", "body"]),
            help="Livedoor-layout folders: explain the title or the body.",
        ),
        click.option("--encoding", default="auto", show_default=True, help=_ENCODING_HELP),
        click.option(
            "--multi-label",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "true", "false"]),
            help="Label sets per text (sigmoid per label, BCE); auto: when the labels are lists or hold the separator.",
        ),
        click.option(
            "--label-separator",
            default=LABEL_SET_SEPARATOR,
            show_default=True,
            help="What separates the labels of a label set in a CSV/TSV cell.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_TRUE = ("true", "1", "yes", "y", "on")
_FALSE = ("false", "0", "no", "n", "off")


def switch_option(flag: str, default: bool, help: str):
    """A true/false switch: ``--flag`` / ``--no-flag`` anywhere on the line, or ``--flag=true|false``.

    The ``=`` form is what MLproject entry points write (``--quality={quality}``); :class:`_Command`
    turns it (and ``--flag true``) into the bare switch before click parses the line.
    """
    return click.option(f"{flag}/--no-{flag.removeprefix('--')}", default=default, show_default=True, help=help)


class _Command(click.Command):
    """A command whose switches also take a value: ``--force=true``, ``--quality false``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        switches = {
            param.opts[0]: param
            for param in self.params
            if isinstance(param, click.Option) and param.is_flag and param.secondary_opts
        }
        rewritten: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "--":
                rewritten += [arg, *rest]
                break
            name, sep, value = arg.partition("=")
            if name not in switches:
                rewritten.append(arg)
                continue
            if not sep:
                ahead = next(rest, None)
                if ahead is not None and ahead.strip().lower() in ("true", "false"):
                    value = ahead
                else:
                    rewritten.append(name)
                    if ahead is not None:
                        rewritten.append(ahead)
                    continue
            rewritten.append(_switch(switches[name], value, ctx))
        return super().parse_args(ctx, rewritten)


def _switch(param: click.Option, value: str, ctx: click.Context) -> str:
    text = value.strip().lower()
    if text in _TRUE:
        return param.opts[0]
    if text in _FALSE or text == "":
        return param.secondary_opts[0]
    raise click.BadParameter(
        f"{value!r} is not true or false; give {param.opts[0]} or {param.secondary_opts[0]} "
        f"(or {param.opts[0]}=true / =false)",
        ctx,
        param,
    )


def explain_options(func):
    """Options shared by the commands that explain: one per :class:`ExplainConfig` field.

    It is more than 60 lines long because it is a declarative list, one option per field, which reads best whole.
    """
    options = [
        click.option("--n-explain", default=18, show_default=True, type=int, help="Sentences to explain."),
        click.option("--n-steps", default="auto", show_default=True, type=_AutoCount("n_steps"), help=_N_STEPS_HELP),
        click.option(
            "--tolerance",
            default="0.01",
            show_default=True,
            help="Completeness tolerance (probability units): pairs above it get more points where their "
            "error is; 'none' integrates once.",
        ),
        click.option(
            "--max-steps",
            default=512,
            show_default=True,
            type=int,
            help="Most integration points a refined pair may use.",
        ),
        click.option(
            "--method",
            default="lig",
            show_default=True,
            help=f"Attribution method: {', '.join(list_attribution_methods())}.",
        ),
        click.option(
            "--target",
            default="all",
            show_default=True,
            type=click.Choice(TARGETS),
            help="Labels to attribute per sentence.",
        ),
        click.option(
            "--integration",
            default="gausslegendre",
            show_default=True,
            type=click.Choice(INTEGRATION_METHODS),
            help="Integration rule of Integrated Gradients.",
        ),
        click.option(
            "--n-samples", default=25, show_default=True, type=int, help="Permutations per sentence (shapley-sampling)."
        ),
        switch_option(
            "--quality", True, "Compute the faithfulness metrics (comprehensiveness, sufficiency): true/false."
        ),
        switch_option(
            "--randomization",
            False,
            "Also run the model-randomisation sanity check (needs --quality; ~1/3 more explanation time).",
        ),
        click.option("--internal-batch-size", default="", help="Largest interpolation batch (default: automatic)."),
        click.option("--top-k", default=10, show_default=True, type=int, help="Tokens per class in the summary plot."),
        click.option(
            "--sample-seed",
            default=42,
            show_default=True,
            type=int,
            help="Seed of the evaluation split (when the data has none) and of the explained sample; "
            "keep it fixed to compare runs.",
        ),
        click.option(
            "--threshold",
            default=0.5,
            show_default=True,
            type=float,
            help="Multi-label models: predict each label whose probability is at or above it (at least the top one).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs.")
def cli(verbose: bool) -> None:
    """Explain Hugging Face text classifiers and track the explanations in MLflow."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


cli.command_class = _Command


@cli.command()
@data_options
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help=f"'{DEFAULT_MODEL}' (embedded, trained from scratch), a Hub id or a local model folder.",
)
@click.option(
    "--epochs",
    default="auto",
    show_default=True,
    type=_AutoPositive("epochs"),
    help="Training epochs; 'auto' is 3, or for the embedded model enough for 400 steps (at most 30).",
)
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option(
    "--learning-rate",
    default="auto",
    show_default=True,
    type=_AutoPositive("learning_rate"),
    help="Peak learning rate; 'auto' is 1e-3 for the embedded model, 3e-5 otherwise.",
)
@click.option("--max-length", default=128, show_default=True, type=int, help="Longest input in tokens.")
@click.option(
    "--explain-every",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Also explain the sample during training, every N evaluations (epochs); 0: only after training.",
)
@click.option(
    "--seed", default=42, show_default=True, type=int, help="Seed of training (weight initialisation, data order)."
)
@explain_options
def main(**options) -> None:
    """Train (or fine-tune) a classifier, then explain a fixed sample of evaluation sentences."""
    from mlflow_explain.jobs import run_main

    def build():
        return (
            _data_config(options),
            TrainConfig(
                model=options["model"],
                epochs=options["epochs"],
                batch_size=options["batch_size"],
                learning_rate=options["learning_rate"],
                max_length=options["max_length"],
                seed=options["seed"],
                explain_every=options["explain_every"],
            ),
            _explain_config(options),
        )

    result = _run(lambda: run_main(*build()))
    if result is None:  # another process than the main one of a distributed launch: the main one reports
        return
    click.echo(f"run {result.run_id}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items())))
    click.echo(f"model: {result.model_uri}")
    click.echo(f"explainer: {result.explainer_uri}")
    click.echo(f"explanations in the MLflow UI: {result.view_url}")


@cli.command()
@click.option(
    "--model",
    required=True,
    help="MLflow model URI (runs:/<id>/model, models:/<name>/<version>), local folder or Hub id.",
)
@data_options
@click.option("--max-length", default="", help="Longest input in tokens (default: the model's maximum).")
@switch_option(
    "--log-explainer", False, "Also log the explainer pyfunc model (runs:/<id>/explainer) for serving and Spark."
)
@explain_options
def explain(**options) -> None:
    """Load a trained classifier and explain a fixed sample of evaluation sentences."""
    from mlflow_explain.jobs import run_explain

    result = _run(
        lambda: run_explain(
            options["model"],
            _data_config(options),
            _explain_config(options),
            _optional_int(options["max_length"]),
            log_explainer=options["log_explainer"],
        )
    )
    click.echo(f"run {result.run_id}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items())))
    if result.explainer_uri:
        click.echo(f"explainer: {result.explainer_uri}")
    click.echo(f"explanations in the MLflow UI: {result.view_url}")


@cli.command()
def methods() -> None:
    """List the attribution methods."""
    from mlflow_explain.attribution import get_attribution_method

    for name in list_attribution_methods():
        click.echo(f"{name}\t{get_attribution_method(name).description}")


@cli.command()
@click.argument("run_ids", nargs=-1)
@click.option(
    "--steps",
    default="",
    metavar="RUN_ID",
    help="Compare the evaluation steps of this run (trained with the Trainer callback) instead of several runs.",
)
@switch_option(
    "--force", False, "Compare runs that explained different samples, on the sentences whose text they share."
)
@click.option("--top-k", default=5, show_default=True, type=int, help="Tokens per sentence in the top-k overlap.")
@click.option("--output-dir", default="", help="Also write the page, plot and agreement table to this folder.")
@switch_option("--overwrite", False, "Replace the comparison files of an earlier --output-dir (nothing else there).")
def compare(run_ids: tuple[str, ...], steps: str, force: bool, top_k: int, output_dir: str, overwrite: bool) -> None:
    """Compare the explanations of runs (RUN_IDS, space- or comma-separated; the first is the reference).

    Logs a new run tagged with the compared run IDs: an HTML page, a plot of the attribution
    differences and the agreement figures (Spearman, top-k overlap, changed predictions).
    """
    from mlflow_explain import tracking
    from mlflow_explain.compare import compare_runs, compare_steps
    from mlflow_explain.errors import ConfigError
    from mlflow_explain.render.files import check_comparison_dir

    ids = [run_id.strip() for argument in run_ids for run_id in argument.split(",") if run_id.strip()]

    def job():
        if steps and ids:
            raise ConfigError("give either RUN_IDS or --steps RUN_ID, not both")
        if output_dir:
            check_comparison_dir(output_dir, overwrite)
        if steps:
            comparison = compare_steps(*tracking.load_step_table(steps), top_k=top_k)
        else:
            if len(ids) < 2:
                raise ConfigError(f"compare needs at least two run IDs (or --steps RUN_ID); got {len(ids)}")
            comparison = compare_runs(*tracking.load_run_tables(ids), top_k=top_k, force=force)
        return comparison, tracking.log_comparison(comparison, local_dir=output_dir or None)

    comparison, run_id = _run(job)
    reference = comparison.versions[0].name
    click.echo(f"comparison run {run_id}: {len(comparison.versions)} {comparison.kind}, reference {reference}")
    for row in comparison.summary.itertuples():
        click.echo(
            f"  {row.name_a} -> {row.name_b}: {row.n_sentences} sentence(s), Spearman {row.spearman_mean:.3f}, "
            f"top-{comparison.top_k} overlap {row.top_k_overlap_mean:.3f}, "
            f"prediction changed {row.prediction_changed_share:.0%}"
        )
    if output_dir:
        click.echo(f"written to {output_dir}")


@cli.command("explain-file")
@click.option("--input", "input_path", required=True, help="CSV / TSV / Parquet / JSONL file or folder to explain.")
@click.option("--output", required=True, help="Folder of the Parquet table of explanations to write.")
@click.option("--model", required=True, help="Explainer model URI: runs:/<id>/explainer, models:/<name>/<version>.")
@click.option("--text-column", default="", help="Column holding the text (default: the explainer's).")
@click.option("--label-column", default="", help="Column holding the true label (default: the explainer's).")
@click.option(
    "--input-format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "csv", "tsv", "parquet", "json"]),
    help="Input format; auto reads the suffix (.jsonl and .json are JSON Lines).",
)
@click.option("--encoding", default="auto", show_default=True, help=_ENCODING_HELP)
@click.option("--method", default="", help="Attribution method (default: the explainer's, lig).")
@click.option("--n-steps", default=0, type=click.IntRange(min=0), help="Integration steps (default: the explainer's).")
@click.option("--target", default="", help="all, predicted, true, predicted+true or a label name (default: predicted).")
@click.option("--level", default="", help="token or word (default: token).")
@click.option("--partitions", default=0, show_default=True, type=click.IntRange(min=0), help="0: 2 x Spark cores.")
@switch_option("--overwrite", False, "Replace --output.")
@click.option("--master", default="", help="Spark master URL (default: spark-submit's, Databricks' or local[*]).")
@click.option(
    "--conf",
    multiple=True,
    metavar="KEY=VALUE",
    callback=lambda ctx, param, items: _key_values(items, param, ctx),
    help="Spark setting, repeatable (as spark-submit --conf).",
)
def explain_file(**options) -> None:
    """Explain every row of a large file on Spark with an explainer model; write a Parquet table.

    Runs mlflow.pyfunc.spark_udf over the explainer that `main` logs (runs:/<id>/explainer) and logs
    counts, time and quality figures to an MLflow run.
    """
    from mlflow_explain.spark import FileJob, run_explain_file

    def job():
        file_job = FileJob(
            input=options["input_path"],
            output=options["output"],
            model=options["model"],
            text_column=options["text_column"] or None,
            label_column=options["label_column"] or None,
            input_format=options["input_format"],
            params={name: options[name] for name in ("method", "n_steps", "target", "level") if options[name]},
            partitions=options["partitions"],
            overwrite=options["overwrite"],
            encoding=options["encoding"],
        )
        return run_explain_file(file_job, master=options["master"] or None, conf=options["conf"])

    run_id, summary = _run(job)
    click.echo(f"run {run_id}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.metrics.items())))
    click.echo(f"written to {options['output']}")


def _key_values(items: tuple[str, ...], param, ctx) -> dict[str, str]:
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (key, sep, _) in zip(items, pairs, strict=True) if not (key and sep)]
    if bad:
        raise click.BadParameter(f"expected KEY=VALUE, got {', '.join(map(repr, bad))}", ctx, param)
    return {key: value for key, _, value in pairs}


def _data_config(options: dict) -> DataConfig:
    return DataConfig(
        data=options["data"],
        text_column=options["text_column"],
        label_column=options["label_column"],
        eval_data=options["eval_data"] or None,
        eval_fraction=options["eval_fraction"],
        text_field=options["text_field"],
        sample_seed=options["sample_seed"],
        encoding=options["encoding"],
        multi_label={"auto": None, "true": True, "false": False}[options["multi_label"]],
        label_separator=options["label_separator"],
    )


def _explain_config(options: dict) -> ExplainConfig:
    return ExplainConfig(
        n_explain=options["n_explain"],
        n_steps=options["n_steps"],
        method=options["method"],
        target=options["target"],
        internal_batch_size=_optional_int(options["internal_batch_size"]),
        sample_seed=options["sample_seed"],
        top_k=options["top_k"],
        integration=options["integration"],
        n_samples=options["n_samples"],
        quality=options["quality"],
        randomization=options["randomization"],
        tolerance=_optional_float(options["tolerance"], "--tolerance"),
        max_steps=options["max_steps"],
        threshold=options["threshold"],
    )


def _run(job):
    """Run a job within the tracking retry budget; turn our errors into a one-line message and exit code 1.

    The run is marked FAILED (or the message says it could not be).
    """
    from mlflow_explain.tracking import retry_budget

    try:
        with retry_budget():
            return job()
    except MlflowExplainError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    cli()
