"""Pure renderers: explanations to a DataFrame, an HTML page, a matplotlib figure or a picture.

Nothing here touches MLflow, and only :mod:`mlflow_explain.render.files` touches the disk (it writes
what the renderers return into a folder); :mod:`mlflow_explain.tracking` logs that folder.
"""

from __future__ import annotations

from mlflow_explain.render.bars import token_importance_image
from mlflow_explain.render.compare import attribution_difference_figure, render_comparison_html
from mlflow_explain.render.html import render_html, score_to_color
from mlflow_explain.render.plot import figure_png, token_importance_figure, top_tokens_figure
from mlflow_explain.render.strip import image_png, sample_strips, token_strip
from mlflow_explain.render.table import attribution_table, sentence_table, spreadsheet_safe, top_words

__all__ = [
    "attribution_difference_figure",
    "attribution_table",
    "figure_png",
    "image_png",
    "render_comparison_html",
    "render_html",
    "sample_strips",
    "score_to_color",
    "sentence_table",
    "spreadsheet_safe",
    "token_importance_figure",
    "token_importance_image",
    "token_strip",
    "top_tokens_figure",
    "top_words",
]
