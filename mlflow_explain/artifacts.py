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

TRAINING_DIR = f"{ARTIFACT_DIR}/training"
"""Folder of the Trainer callback's artifacts; its ``attributions.json`` has ``step`` and ``epoch``
columns on top of the usual ones and grows with every evaluation."""

STEP_COLUMNS = ("step", "epoch")
IMAGE_KEY_TRAINING_SENTENCE = "explanations/training/sentence_{sentence_id:03d}"

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
