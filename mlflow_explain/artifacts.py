"""Names of artifacts, tags and metrics, in one place so writer, comparer and tests agree."""

from __future__ import annotations

ARTIFACT_DIR = "explanations"
"""Folder of every explanation artifact in a run."""

TABLE_FILE = "attributions.json"
"""Long attribution table, logged with ``mlflow.log_table`` (``mlflow.load_table`` joins runs)."""

TABLE_CSV = "attributions.csv"
QUALITY_FILE = "quality.json"
"""Per-sentence quality figures (:mod:`mlflow_explain.quality`), logged with ``mlflow.log_table``."""

SENTENCES_FILE = "sentences.json"
"""Per-sentence table (``mlflow.log_table``) for the MLflow UI's artifact-evaluation view: one row per
sentence, keyed by :func:`mlflow_explain.sampling.sentence_key`, with an ``image`` column of token strips."""

SENTENCE_IMAGE_COLUMN = "image"
"""Column of :data:`SENTENCES_FILE` that holds each sentence's token strip (an ``mlflow.Image``)."""

STRIPS_DIR = "strips"
"""Local folder of the rendered token strips (``<key>.png``); they are logged inside the tables and image series."""

STRIP_FILE = f"{STRIPS_DIR}/{{key}}.png"
"""A sentence's token strip in the rendered folder, by its :func:`~mlflow_explain.sampling.sentence_key`."""

SUMMARY_IMAGE = "explanations.png"
"""Token strips of the whole sample in one picture, logged at the run's artifact root (with a copy of
:data:`HTML_FILE`) so that the compare page's Artifacts section shows runs side by side."""

HTML_FILE = "explanations.html"
WORDS_HTML_FILE = "explanations_words.html"

ROOT_FILES = (SUMMARY_IMAGE, HTML_FILE)
"""Rendered files that are also logged at the run's artifact root (the compare page lists only the root)."""
PLOTS_DIR = "plots"
SUMMARY_PLOT = "top_tokens.png"
SAMPLE_FILE = "sample.json"

MODEL_ARTIFACT = "model"
"""Artifact path of the logged classifier (``runs:/<run_id>/model``)."""

SAMPLE_HASH_TAG = "mlflow_explain.sample_hash"
"""Tag holding :func:`mlflow_explain.sampling.sample_hash` of the explained sentences."""

METHOD_TAG = "mlflow_explain.method"
IMAGE_KEY_SENTENCE = "explanations/sentence_{sentence_id:02d}_{key}"
"""Image series of one sentence: its position in the sample and its :func:`~mlflow_explain.sampling.sentence_key`,
so that the same key shows the same sentence in every run."""
IMAGE_KEY_SUMMARY = "explanations/top_tokens"

TRAINING_DIR = f"{ARTIFACT_DIR}/training"
"""Folder of the Trainer callback's artifacts."""

STEPS_DIR = f"{TRAINING_DIR}/steps"
"""One folder per explained training step, ``step_<step:06d>``, holding that step's ``attributions.json``
and ``sentences.json`` (the usual columns plus ``step`` and ``epoch``): each evaluation writes its own
files, so logging one costs the same at the 30th evaluation as at the first."""

STEP_FOLDER = "step_{step:06d}"

LEGACY_STEP_TABLE = f"{TRAINING_DIR}/{TABLE_FILE}"
"""Where runs logged before the per-step layout kept one growing table of every step (still read)."""

STEP_COLUMNS = ("step", "epoch")
IMAGE_KEY_TRAINING_SENTENCE = "explanations/training/sentence_{sentence_id:02d}_{key}"

COMPARISON_DIR = "comparison"
"""Folder of a comparison run's artifacts."""

COMPARED_RUNS_TAG = "mlflow_explain.compared_runs"
"""Tag of a comparison run: the compared run IDs, comma-separated."""

COMPARISON_HTML = "comparison.html"
"""Self-contained HTML page of a comparison run: each sentence, one row per compared version."""

COMPARISON_PLOT = "attribution_differences.png"
"""Per-token attribution differences against the reference, for the sentences that changed most."""

AGREEMENT_TABLE = "agreement.json"
"""Agreement figures of a comparison run, one row per sentence x compared pair (``mlflow.log_table``)."""

COMPARISON_FILES = (COMPARISON_HTML, COMPARISON_PLOT, AGREEMENT_TABLE)
"""Every file a comparison writes into its folder (``compare --output-dir``)."""
