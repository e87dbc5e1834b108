"""Explain a large file on Spark with the explainer model, and log a summary to MLflow.

The work runs in :func:`mlflow.pyfunc.spark_udf` over the explainer that the main job logs
(``runs:/<run_id>/explainer``): each Spark task loads the classifier once and explains its rows
in Arrow batches. :func:`explain_file` reads a CSV / TSV / Parquet / JSONL file, writes a Parquet
table (the input columns, a ``row_id`` and the explainer's :data:`~mlflow_explain.pyfunc.OUTPUT_COLUMNS`)
and returns a :class:`FileSummary`; :func:`run_explain_file` does that inside an MLflow run.

``pyspark`` is an optional extra: ``pip install "mlflow-explain[spark]"``.
"""

from __future__ import annotations

import codecs
import glob
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mlflow_explain.encoding import AUTO, check_encoding, check_files
from mlflow_explain.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["INPUT_FORMATS", "FileJob", "FileSummary", "explain_file", "run_explain_file", "spark_session"]

logger = logging.getLogger(__name__)

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "json", ".json": "json"}
"""Input formats by file (or folder) suffix; ``json`` means JSON Lines, one object per line."""

ROW_ID = "row_id"
"""Column added to the output: increasing in input order, unique, not consecutive."""

JAVA_CHARSETS = {
    "ascii": "US-ASCII",
    "cp1252": "windows-1252",
    "cp932": "windows-31j",
    "euc_jp": "EUC-JP",
    "iso2022_jp": "ISO-2022-JP",
    "iso8859-1": "ISO-8859-1",
    "shift_jis": "Shift_JIS",
    "utf-16": "UTF-16",
    "utf-16-be": "UTF-16BE",
    "utf-16-le": "UTF-16LE",
    "utf-32": "UTF-32",
    "utf-32-be": "UTF-32BE",
    "utf-32-le": "UTF-32LE",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",  # Spark drops the byte order mark itself
}
"""Java charset names by Python codec name (as ``codecs.lookup`` spells it); others are passed on as they are."""

SPARK_CHARSETS = {"US-ASCII", "ISO-8859-1", "UTF-8", "UTF-16", "UTF-16BE", "UTF-16LE", "UTF-32"}
"""Charsets that Spark 4 reads without ``spark.sql.legacy.javaCharsets`` (which is set while reading others)."""

ARROW_BATCH_ROWS = 100
"""Most rows per Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``, 10,000 by default) while
explaining: each batch is one call of the explainer, which refuses more than
:data:`~mlflow_explain.pyfunc.MAX_ROWS` rows or :data:`~mlflow_explain.pyfunc.MAX_CHARACTERS` characters
and stops at its ``time_budget``. A smaller setting of the session is kept. The explainer works through a
batch eight sentences at a time, so larger batches would not be faster."""


@dataclass(frozen=True)
class FileJob:
    """What to explain, with which explainer, and where to write it.

    Args:
        input: A CSV / TSV / Parquet / JSONL file or folder, on any file system Spark reads.
        output: Folder of the Parquet table to write.
        model: URI of an explainer model (``runs:/<run_id>/explainer``, ``models:/...``).
        text_column: Input column holding the text. Defaults to the explainer's text column.
        label_column: Input column holding the true label. Defaults to the explainer's label
            column when the input has it.
        input_format: ``auto`` (from the suffix), ``csv``, ``tsv``, ``parquet`` or ``json``.
            Defaults to ``"auto"``.
        params: Explainer params (``method``, ``n_steps``, ``target``, ``level``, ``time_budget``);
            those left out keep the explainer's defaults, except ``time_budget``, which is
            :data:`~mlflow_explain.pyfunc.MAX_TIME_BUDGET` for each batch of :data:`ARROW_BATCH_ROWS`
            rows (the served default would fail long jobs).
        partitions: Spark partitions to explain in; 0 uses twice the default parallelism (every
            core busy, stragglers balanced). Defaults to 0.
        overwrite: Replace ``output`` if it exists. Defaults to False.
        encoding: Encoding of CSV, TSV and JSON input: ``auto`` detects UTF-8, CP932 or EUC-JP in the
            local input files (a remote input is read as UTF-8), or a Python codec name. Local files are
            checked in full, so bytes that are not valid fail the job before Spark reads them. Defaults
            to ``"auto"``.

    Raises:
        ConfigError: If a setting is out of range.
    """

    input: str
    output: str
    model: str
    text_column: str | None = None
    label_column: str | None = None
    input_format: str = "auto"
    params: Mapping[str, object] = field(default_factory=dict)
    partitions: int = 0
    overwrite: bool = False
    encoding: str = AUTO

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        formats = ("auto", *sorted(set(INPUT_FORMATS.values())))
        if self.input_format not in formats:
            raise ConfigError(f"input_format must be one of {', '.join(formats)}; got {self.input_format!r}.")
        if self.partitions < 0:
            raise ConfigError(f"partitions must be 0 (automatic) or more, got {self.partitions}.")

    @property
    def resolved_format(self) -> str:
        """The input format, from the suffix when ``input_format`` is ``auto``.

        Raises:
            ConfigError: If the suffix names no supported format.
        """
        if self.input_format != "auto":
            return self.input_format
        suffix = PurePosixPath(self.input.rstrip("/")).suffix.lower()
        try:
            return INPUT_FORMATS[suffix]
        except KeyError:
            raise ConfigError(
                f"cannot tell the format of {self.input!r} from its suffix; name it "
                f"{', '.join(INPUT_FORMATS)} or pass --input-format."
            ) from None


@dataclass(frozen=True)
class FileSummary:
    """What an :func:`explain_file` job did.

    Args:
        n_rows: Rows in the input.
        n_explained: Rows explained (and written).
        explain_seconds: Wall time of explaining and writing.
        params: The explainer params used (defaults filled in).
        text_column: The input column that was explained.
        label_column: The input column of true labels, or ``None``.
        quality: ``mean_predicted_probability``, ``sample_accuracy`` (rows with a label) and the
            median / largest absolute ``convergence_delta`` where the method reports one.
        encoding: The encoding the input was read with (a Python codec name), None for Parquet.
    """

    n_rows: int
    n_explained: int
    explain_seconds: float
    params: dict[str, object]
    text_column: str
    label_column: str | None
    quality: dict[str, float]
    encoding: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """Counts, timings and quality figures, as logged to MLflow."""
        return {
            "n_rows": float(self.n_rows),
            "n_explained": float(self.n_explained),
            "n_skipped": float(self.n_rows - self.n_explained),
            "explain_seconds": self.explain_seconds,
            "sentences_per_second": self.n_explained / self.explain_seconds if self.explain_seconds else 0.0,
            **self.quality,
        }


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """Get the active Spark session or start one.

    Args:
        master: Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, ...). Without
            it, the session that ``spark-submit`` or Databricks provides, else ``local[*]``.
        conf: More Spark settings (``spark.driver.memory``, ...).

    Returns:
        The session.

    Raises:
        ConfigError: If ``pyspark`` is not installed.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise ConfigError(
            'explaining on Spark needs pyspark: pip install "mlflow-explain[spark]" (or pip install -e ".[spark]")'
        ) from err
    builder = SparkSession.builder.appName("mlflow-explain")
    if master:
        builder = builder.master(master)
    settings = dict(conf or {})
    if SparkSession.getActiveSession() is None:
        os.environ.update(worker_python(master, settings, os.environ))  # PySpark reads it from the environment
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def worker_python(master: str | None, conf: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment that makes local Spark workers run this interpreter, when nothing else chose one.

    Local workers otherwise start ``python3`` from ``PATH``, which lacks torch and MLflow when this
    environment is not activated (``.venv/bin/mlflow-explain explain-file ...``). Cluster masters,
    and sessions whose JVM ``spark-submit`` started (``PYSPARK_GATEWAY_PORT``), keep their Python.

    Args:
        master: The Spark master URL, or ``None`` (``local[*]`` when no ``spark-submit`` gave one).
        conf: The Spark settings given by the user.
        environ: The environment variables.

    Returns:
        ``{"PYSPARK_PYTHON": sys.executable}``, or nothing.
    """
    local = master is None or master.startswith("local")
    chosen = "spark.pyspark.python" in conf or any(n in environ for n in ("PYSPARK_PYTHON", "PYSPARK_GATEWAY_PORT"))
    return {"PYSPARK_PYTHON": sys.executable} if local and not chosen else {}


def explain_file(spark: SparkSession, job: FileJob) -> FileSummary:
    """Explain every row of a file on Spark and write a Parquet table of the explanations.

    Rows whose text is missing or blank are counted and left out. Before the Spark job starts,
    the explainer is loaded on the driver and explains the first row, so a bad param or model
    fails in seconds, not in the first task.

    Args:
        spark: The Spark session.
        job: Input, output, explainer and params.

    Returns:
        Counts, time and quality figures.

    Raises:
        DataError: If the input cannot be read (or holds bytes that are not valid in its encoding),
            lacks a column, or the output exists.
        ModelError: If ``job.model`` is not an explainer model.
        ConfigError: If a param is invalid.

    Example:
        >>> job = FileJob("big.csv", "out.parquet", "runs:/<run_id>/explainer")
        >>> explain_file(spark_session("local[2]"), job).n_explained  # doctest: +SKIP
        250000
    """
    check_output(job)
    encoding = _input_encoding(job)
    with _java_charset_allowed(spark, encoding):
        return _explain_file(spark, job, encoding)


def _explain_file(spark: SparkSession, job: FileJob, encoding: str | None) -> FileSummary:
    """:func:`explain_file` once the output is checked and the input's encoding is known."""
    import mlflow
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    from mlflow_explain.pyfunc import OUTPUT_COLUMNS, SPARK_RESULT_TYPE

    model_text, model_label, defaults = _explainer_settings(job.model)
    params = _udf_params(defaults, job.params)
    frame = _read(spark, job, encoding)
    text = job.text_column or model_text
    label = job.label_column or (model_label if model_label in frame.columns else None)
    missing = [c for c in (text, label) if c and c not in frame.columns]
    if missing:
        raise DataError(
            f"{job.input}: no column {', '.join(map(repr, missing))}; its columns: {', '.join(frame.columns)}."
        )
    clashes = sorted({ROW_ID, *OUTPUT_COLUMNS} & set(frame.columns))
    if clashes:
        raise DataError(f"{job.input}: columns {', '.join(clashes)} would be overwritten by the output; rename them.")

    columns = [F.col(text).cast("string").alias(model_text)]
    if label:
        columns.append(F.col(label).cast("string").alias(model_label))
    n_rows = frame.count()
    frame = frame.withColumn(ROW_ID, F.monotonically_increasing_id())
    frame = frame.where(F.col(text).isNotNull() & (F.trim(F.col(text)) != ""))
    _check_params(frame.select(*columns).limit(1).toPandas(), job.model, params)
    partitions = job.partitions or 2 * spark.sparkContext.defaultParallelism
    explain = mlflow.pyfunc.spark_udf(
        spark, job.model, result_type=SPARK_RESULT_TYPE, env_manager="local", params=dict(params)
    )
    explained = (
        frame.repartition(partitions)
        .withColumn("_explanation", explain(F.struct(*columns)))
        .select(*frame.columns, "_explanation.*")
    )
    started = time.perf_counter()
    try:
        with _arrow_batches(spark, ARROW_BATCH_ROWS):
            explained.write.mode("overwrite" if job.overwrite else "errorifexists").parquet(job.output)
    except AnalysisException as err:
        raise DataError(f"cannot write {job.output}: {err.getMessage()}. Pass --overwrite to replace it.") from err
    seconds = time.perf_counter() - started
    written = spark.read.parquet(job.output)
    n_explained, quality = _quality(written, label)
    return FileSummary(n_rows, n_explained, seconds, params, text, label, quality, encoding)


_SPARK_OUTPUT_FILES = ("_SUCCESS",)
_SPARK_OUTPUT_SUFFIXES = (".parquet", ".crc")


def check_output(job: FileJob) -> None:
    """Refuse an output that would replace the input or files that this job did not write.

    ``--overwrite`` replaces an earlier output of ``explain-file`` only: a folder that Spark wrote
    (``part-*.parquet``, ``_SUCCESS`` and their ``.crc`` files). Remote outputs (``hdfs://``, ``s3://``,
    ...) are left to Spark's own ``errorifexists`` / ``overwrite`` rules.

    Args:
        job: The job (its ``input``, ``output`` and ``overwrite``).

    Raises:
        DataError: If the output is, or holds, the input, is a file, or holds files of another origin.
    """
    output = _local_path(job.output)
    if output is None:
        return
    source = _local_path(job.input)
    if source is not None and (source == output or output in source.parents):
        raise DataError(
            f"--output {job.output} is or holds the input {job.input}; write the explanations to another folder."
        )
    if not output.exists() or not job.overwrite:
        return  # Spark refuses an existing output without --overwrite
    if not output.is_dir():
        raise DataError(f"--output {job.output} is a file, not an earlier output of explain-file; choose a folder.")
    foreign = sorted(
        str(path.relative_to(output))
        for path in output.rglob("*")
        if path.is_file() and path.name not in _SPARK_OUTPUT_FILES and not path.name.endswith(_SPARK_OUTPUT_SUFFIXES)
    )
    if foreign or not (output / "_SUCCESS").exists():
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "") if foreign else "no _SUCCESS marker"
        raise DataError(
            f"--output {job.output} holds files that explain-file did not write ({listed}); --overwrite replaces only "
            "an earlier output of explain-file. Choose another folder."
        )


def _local_path(location: str) -> Path | None:
    """The local path of ``location`` (a path or a ``file:`` URI), or None for remote storage."""
    if "://" in location and not location.startswith("file://"):
        return None
    return Path(location.removeprefix("file://").removeprefix("file:")).expanduser().resolve()


def run_explain_file(job: FileJob, master: str | None = None, conf: Mapping[str, str] | None = None):
    """Explain a file on Spark inside an MLflow run, logging params, counts, time and quality figures.

    Args:
        job: Input, output, explainer and params.
        master: Spark master URL; see :func:`spark_session`.
        conf: More Spark settings.

    Returns:
        ``(run_id, summary)``.

    Raises:
        MlflowExplainError: On bad input, model or params, or tracking errors.
    """
    from mlflow_explain import tracking

    check_output(job)  # before Spark starts: nothing is worked on that cannot be written
    tracking.check_tracking_store()
    with tracking.job_run() as run, _session(master, conf) as (spark, start_seconds):
        with tracking.tracking_errors():
            tracking.log_new_params(
                {"input": job.input, "output": job.output, "model": job.model, "master": spark.conf.get("spark.master")}
            )
        summary = explain_file(spark, job)
        with tracking.tracking_errors(f"the explanations are written to {job.output}"):
            columns = {"text_column": summary.text_column, "label_column": summary.label_column or ""}
            if summary.encoding:
                columns["encoding"] = summary.encoding
            tracking.log_new_params({**columns, **summary.params})
            tracking.log_file_summary({**summary.metrics, "spark_start_seconds": start_seconds}, job.output)
        return run.info.run_id, summary


@contextmanager
def _session(master: str | None, conf: Mapping[str, str] | None) -> Iterator[tuple[SparkSession, float]]:
    """A Spark session and the seconds it took to start; stopped after unless it was already running."""
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    started = time.perf_counter()
    spark = spark_session(master, conf)
    seconds = time.perf_counter() - started
    try:
        yield spark, seconds
    finally:
        if existing is None:
            spark.stop()


def _explainer_settings(model: str) -> tuple[str, str | None, dict[str, object]]:
    """The explainer's text and label columns and its default params, from its MLmodel file."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    from mlflow_explain.tracking import EXPLAINER_METADATA_KEY

    hint = "log one with `mlflow-explain main` (runs:/<run_id>/explainer) or `mlflow-explain explain --log-explainer`"
    try:
        info = get_model_info(model)
    except (MlflowException, OSError) as err:
        raise ModelError(f"cannot load the explainer model {model!r}: {err}; {hint}.") from err
    settings = (info.metadata or {}).get(EXPLAINER_METADATA_KEY)
    if settings is None or info.signature is None or info.signature.params is None:
        raise ModelError(f"{model!r} is not an explainer model; {hint}.")
    defaults = {p.name: p.default for p in info.signature.params.params}
    return settings["text_column"], settings["label_column"], defaults


def _udf_params(defaults: Mapping[str, object], given: Mapping[str, object]) -> dict[str, object]:
    """The params of every batch: the explainer's defaults, the largest time budget, then the job's own."""
    from mlflow_explain.pyfunc import MAX_TIME_BUDGET

    params = dict(defaults)
    if "time_budget" in params:  # explainers logged before the budget existed have no such param
        params["time_budget"] = MAX_TIME_BUDGET
    return {**params, **given}


@contextmanager
def _arrow_batches(spark: SparkSession, rows: int) -> Iterator[None]:
    """At most ``rows`` rows per Arrow batch (one explainer call) inside the block; the session's setting after."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key)
    current = int(previous)
    spark.conf.set(key, str(min(current, rows) if current > 0 else rows))  # 0 or less: no limit
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def _read(spark: SparkSession, job: FileJob, encoding: str | None) -> DataFrame:
    from pyspark.errors import AnalysisException, IllegalArgumentException

    reader = spark.read
    kind = job.resolved_format
    charset = _java_charset(encoding) if encoding else "UTF-8"
    try:
        if kind in ("csv", "tsv"):
            # Quotes are doubled inside quoted fields (RFC 4180, Python's csv, pandas), and fields may span lines.
            options = {"header": "true", "multiLine": "true", "escape": '"', "sep": "\t" if kind == "tsv" else ","}
            return reader.options(**options, encoding=charset).csv(job.input)
        if kind == "json":
            # Spark splits JSON Lines in a charset other than UTF-8 only at a line separator that is named.
            options = {"encoding": charset} | ({} if charset == "UTF-8" else {"lineSep": "\n"})
            return reader.options(**options).json(job.input)
        return reader.parquet(job.input)
    except AnalysisException as err:
        raise DataError(f"cannot read {job.input} as {kind}: {err.getMessage()}") from err
    except IllegalArgumentException as err:  # a charset that Spark does not read (JSON Lines: not UTF-16 or UTF-32)
        reason = (err.getMessage() or str(err)).splitlines()[0]
        raise DataError(
            f"cannot read {job.input} as {kind} in {encoding} (Java charset {charset}): {reason}; "
            "give another --encoding or save the file as UTF-8."
        ) from err


def _input_encoding(job: FileJob) -> str | None:
    """The encoding to read the input with: None for Parquet, else ``job.encoding`` checked in the local files."""
    if job.resolved_format == "parquet":
        return None
    files = _local_files(job.input)
    if files is None and job.encoding == AUTO:
        logger.warning("%s is not on this machine, so its encoding is not detected: it is read as UTF-8.", job.input)
    return check_files(files or [], job.encoding)


def _local_files(location: str) -> list[Path] | None:
    """The files that Spark reads for a local ``location`` (a file, a folder or a glob), or None when remote."""
    path = _local_path(location)
    if path is None:
        return None
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        hidden = ("_", ".")  # Spark skips _SUCCESS, .crc files and the like
        return [p for p in files if not any(part.startswith(hidden) for part in p.relative_to(path).parts)]
    return sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())


def _java_charset(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return JAVA_CHARSETS.get(name, name)


@contextmanager
def _java_charset_allowed(spark: SparkSession, encoding: str | None) -> Iterator[None]:
    """Let Spark 4 read ``encoding`` inside the block, when it is none of :data:`SPARK_CHARSETS`."""
    key = "spark.sql.legacy.javaCharsets"
    if encoding is None or _java_charset(encoding).upper() in SPARK_CHARSETS:
        yield
        return
    previous = spark.conf.get(key, None)
    spark.conf.set(key, "true")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def _check_params(first: object, model: str, params: Mapping[str, object]) -> None:
    """Explain the first row on the driver, so that bad params fail before the Spark job."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if len(first) == 0:
        return
    try:
        mlflow.pyfunc.load_model(model).predict(first, params=dict(params))
    except MlflowException as err:
        raise ConfigError(f"the explainer refused the params {dict(params)}: {err.message}") from err


def _quality(written: DataFrame, label: str | None) -> tuple[int, dict[str, float]]:
    """Row count and quality figures of the written table, named as :func:`.explanation.summary_metrics` names them."""
    from pyspark.sql import functions as F

    aggregates = [F.count("*").alias("n"), F.mean("predicted_probability").alias("mean_predicted_probability")]
    if label:
        right = F.when(
            F.col(label).isNotNull(), (F.col(label).cast("string") == F.col("predicted_label")).cast("double")
        )
        aggregates.append(F.mean(right).alias("sample_accuracy"))
    row = written.agg(*aggregates).first().asDict()
    deltas = written.select(F.explode("convergence_deltas").alias("delta")).select(F.abs("delta").alias("delta"))
    row |= (
        deltas.agg(F.median("delta").alias("convergence_delta_median"), F.max("delta").alias("convergence_delta_max"))
        .first()
        .asDict()
    )
    n = int(row.pop("n"))
    return n, {key: float(value) for key, value in row.items() if value is not None}
