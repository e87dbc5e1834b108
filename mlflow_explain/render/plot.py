"""Explanations as matplotlib figures, with Japanese text rendered by matplotlib-fontja's font.

The functions return figures and keep no reference to them: the caller saves and closes them
(:func:`figure_png` does both). Nothing here calls ``plt.show()``.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlflow_explain.explanation import Explanation
from mlflow_explain.render._common import NEGATIVE_COLOR, POSITIVE_COLOR, Unit
from mlflow_explain.render.bars import MAX_BARS, SUMMARY_COLUMNS, importance_bars, top_token_panels, top_tokens_title

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MAX_BARS", "PNG_DPI", "figure_png", "token_importance_figure", "top_tokens_figure"]

PNG_DPI = 110
"""Resolution of every plot written as a picture (:func:`figure_png`)."""

FONT_FAMILY = ["IPAexGothic", "DejaVu Sans"]  # matplotlib-fontja's font, DejaVu for glyphs it lacks


def pyplot() -> ModuleType:
    """Import pyplot with matplotlib-fontja's Japanese font registered.

    Selects the non-interactive Agg backend unless pyplot is already in use or ``MPLBACKEND`` says
    otherwise (Jupyter sets it), so that rendering works on headless training machines.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers IPAexGothic with matplotlib's font manager)

    return plt


def figure_png(figure: Figure, *, dpi: int = PNG_DPI) -> bytes:
    """A figure as a PNG picture, cropped to what it draws; the figure is closed.

    Every plot the package writes or logs becomes a picture through this function.

    Args:
        figure: A figure from this package's renderers (or any matplotlib figure).
        dpi: Resolution. Defaults to :data:`PNG_DPI` (110).

    Returns:
        The PNG file's bytes.

    Example:
        >>> Path("sentence.png").write_bytes(figure_png(token_importance_figure(explanation)))  # doctest: +SKIP
    """
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(figure)
    return buffer.getvalue()


def token_importance_figure(explanation: Explanation, label: str | None = None, *, level: str = "token") -> Figure:
    """Draw the scores of one sentence towards one label as horizontal bars, in sentence order (matplotlib).

    Positive scores are green, negative ones red; special tokens are left out. A sentence with more
    than :data:`MAX_BARS` tokens keeps the ``MAX_BARS`` with the largest ``|score|`` (still in sentence
    order), and the title says so. The files a job writes draw the same chart with Pillow
    (:func:`~mlflow_explain.render.bars.token_importance_image`, about a hundred times faster); this
    figure is for notebooks and for restyling.

    Args:
        explanation: The sentence's explanation.
        label: The attributed label to draw, or ``None`` for ``explanation.primary`` (the predicted
            label when it was attributed). Defaults to ``None``.
        level: ``"token"`` for WordPiece tokens or ``"word"`` for merged words. Defaults to ``"token"``.

    Returns:
        A new figure; the caller closes it.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).
        KeyError: If ``label`` was not attributed for this sentence.

    Example:
        >>> png = figure_png(token_importance_figure(explanation, level="word"))  # doctest: +SKIP
    """
    shown, title = importance_bars(explanation, label, level)

    plt = pyplot()
    with plt.rc_context({"font.family": FONT_FAMILY}):
        fig = plt.figure(figsize=(7.0, max(2.5, 0.3 * len(shown) + 1.4)), layout="constrained")
        ax = fig.subplots()
        _bars(ax, shown)
        ax.set_xlabel("attribution score")
        ax.set_title(title, fontsize=10, parse_math=False)
    return fig


def top_tokens_figure(explanations: Sequence[Explanation], *, top_k: int = 10, level: str = "word") -> Figure:
    """Draw, for each predicted class, the words with the highest mean attribution.

    One panel per class of :func:`~mlflow_explain.render.bars.top_token_panels` (sentences grouped by
    the label of their primary attribution; a word's mean over the class's sentences that contain
    it). The summary a job writes is drawn with Pillow
    (:func:`~mlflow_explain.render.bars.top_tokens_image`); this figure is for notebooks.

    Args:
        explanations: Explanations to aggregate; sentences without attributions are skipped.
        top_k: Words (or tokens) per panel. Defaults to 10.
        level: ``"word"`` for merged words or ``"token"`` for WordPiece tokens; special tokens are
            left out either way. Defaults to ``"word"``.

    Returns:
        A new figure with one visible axes per class; the caller closes it.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` or ``top_k`` is below 1 (a
            ``ValueError``).

    Example:
        >>> png = figure_png(top_tokens_figure(explanations, top_k=5))  # doctest: +SKIP
    """
    panels = top_token_panels(explanations, top_k, level)
    n_cols = min(SUMMARY_COLUMNS, max(len(panels), 1))
    n_rows = max(math.ceil(len(panels) / n_cols), 1)
    plt = pyplot()
    with plt.rc_context({"font.family": FONT_FAMILY}):
        fig = plt.figure(figsize=(4.6 * n_cols, max(2.5, 0.32 * top_k + 1.3) * n_rows), layout="constrained")
        axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
        for ax, (title, shown) in zip(axes, panels, strict=False):
            _bars(ax, shown)
            ax.set_title(title, fontsize=10, parse_math=False)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        if not panels:
            fig.text(0.5, 0.5, "no explanations to aggregate", ha="center", va="center")
        fig.suptitle(top_tokens_title(top_k, level), parse_math=False)
    return fig


def _bars(ax: Axes, shown: Sequence[Unit]) -> None:
    """Horizontal bars, first unit at the top, coloured by sign."""
    positions = range(len(shown))
    ax.barh(
        positions,
        [u.score for u in shown],
        color=[POSITIVE_COLOR if u.score >= 0 else NEGATIVE_COLOR for u in shown],
    )
    ax.set_yticks(positions, [u.text for u in shown], parse_math=False)
    ax.invert_yaxis()
    ax.axvline(0.0, color="#57606a", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
