"""Names of artifacts, tags and metrics, in one place so writer, comparer and tests agree."""

from __future__ import annotations

ARTIFACT_DIR = "explanations"
"""Folder of every explanation artifact in a run."""

TABLE_FILE = "attributions.json"
"""Long attribution table, logged with ``mlflow.log_table`` (``mlflow.load_table`` joins runs)."""

TABLE_CSV = "attributions.csv"
SENTENCES_FILE = "sentences.json"
HTML_FILE = "explanations.html"
WORDS_HTML_FILE = "explanations_words.html"
PLOTS_DIR = "plots"
SUMMARY_PLOT = "top_tokens.png"
SAMPLE_FILE = "sample.json"

MODEL_ARTIFACT = "model"
"""Artifact path of the logged classifier (``runs:/<run_id>/model``)."""

SAMPLE_HASH_TAG = "mlflow_explain.sample_hash"
"""Tag holding :func:`mlflow_explain.sampling.sample_hash` of the explained sentences."""

METHOD_TAG = "mlflow_explain.method"
IMAGE_KEY_SENTENCE = "explanations/sentence_{sentence_id:03d}"
IMAGE_KEY_SUMMARY = "explanations/top_tokens"
