"""Token importances as bar charts drawn with Pillow: the run's per-sentence plots and its summary plot.

:func:`token_importance_image` draws what :func:`~mlflow_explain.render.plot.token_importance_figure`
draws (one horizontal bar per token in sentence order, green for support, red against, the same title
and the same :data:`~mlflow_explain.render.plot.MAX_BARS` cut) in a few milliseconds, where a matplotlib
figure takes about 0.3 s to lay out and encode: a job writes one per explained sentence, at the end of
training too. :func:`top_tokens_image` draws the summary (the words with the highest mean attribution per
predicted class) as :func:`~mlflow_explain.render.plot.top_tokens_figure` does, so a job never needs
matplotlib. The matplotlib figures stay for notebooks and for anyone who wants to restyle them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlflow_explain.errors import ConfigError
from mlflow_explain.explanation import Explanation
from mlflow_explain.render._common import NEGATIVE_COLOR, POSITIVE_COLOR, Unit, check_level, units
from mlflow_explain.render._text import MUTED, TEXT, draw_text, fit, text_length

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "BAR_CHART_WIDTH",
    "SUMMARY_COLUMNS",
    "SUMMARY_PANEL_WIDTH",
    "importance_bars",
    "token_importance_image",
    "top_token_panels",
    "top_tokens_image",
]

BAR_CHART_WIDTH = 770
"""Width of :func:`token_importance_image` in pixels (the matplotlib figure's 7 inches at 110 dpi)."""

SUMMARY_PANEL_WIDTH = 506
"""Width of one class's chart in :func:`top_tokens_image` (the matplotlib panel's 4.6 inches at 110 dpi)."""

SUMMARY_COLUMNS = 3
"""Class charts per row of :func:`top_tokens_image`."""

MAX_BARS = 60
"""Most bars a chart draws; longer sentences keep their largest ``|score|`` (in sentence order)."""

POSITIVE = tuple(int(POSITIVE_COLOR[i : i + 2], 16) for i in (1, 3, 5))
NEGATIVE = tuple(int(NEGATIVE_COLOR[i : i + 2], 16) for i in (1, 3, 5))
_GRID = (225, 228, 232)


def importance_bars(explanation: Explanation, label: str | None, level: str) -> tuple[list[Unit], str]:
    """The units a token-importance chart shows, and its title.

    Args:
        explanation: The sentence's explanation.
        label: Attributed label, or ``None`` for ``explanation.primary``.
        level: ``"token"`` or ``"word"``.

    Returns:
        ``(units, title)``: the non-special units in sentence order (the :data:`MAX_BARS` with the largest
        ``|score|`` of a longer sentence) and the two-line title.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).
        KeyError: If ``label`` was not attributed for this sentence.
    """
    check_level(level)
    attribution = explanation.primary if label is None else explanation.for_label(label)
    shown = [u for u in units(attribution, level) if not u.is_special]
    n_total = len(shown)
    if n_total > MAX_BARS:
        keep = sorted(sorted(range(n_total), key=lambda i: -abs(shown[i].score))[:MAX_BARS])
        shown = [shown[i] for i in keep]
    truth = explanation.true_label if explanation.true_label is not None else "?"
    title = (
        f"Sentence {explanation.sentence_id}: true {truth} / predicted {explanation.predicted_label} "
        f"({explanation.predicted_probability:.2f})\nattribution towards {attribution.label}"
    )
    if n_total > MAX_BARS:
        title += f" (showing {MAX_BARS} of {n_total} {level}s with the largest |score|)"
    return shown, title


def token_importance_image(
    explanation: Explanation,
    label: str | None = None,
    *,
    level: str = "token",
    width: int = BAR_CHART_WIDTH,
    font_size: int = 13,
) -> Image.Image:
    """Draw the scores of one sentence towards one label as horizontal bars, in sentence order.

    Args:
        explanation: The sentence's explanation.
        label: The attributed label to draw, or ``None`` for ``explanation.primary`` (the predicted
            label when it was attributed). Defaults to ``None``.
        level: ``"token"`` for WordPiece tokens or ``"word"`` for merged words. Defaults to ``"token"``.
        width: Picture width in pixels. Defaults to :data:`BAR_CHART_WIDTH`.
        font_size: Size of the labels in pixels. Defaults to 13.

    Returns:
        An RGB :class:`PIL.Image.Image`.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).
        KeyError: If ``label`` was not attributed for this sentence.

    Example:
        >>> Path("sentence.png").write_bytes(image_png(token_importance_image(explanation)))  # doctest: +SKIP
    """
    shown, title = importance_bars(explanation, label, level)
    return _chart(shown, title.split("\n"), width, font_size)


def top_token_panels(explanations: Sequence[Explanation], top_k: int, level: str) -> list[tuple[str, list[Unit]]]:
    """Per predicted class, the words with the highest mean attribution: what a top-tokens summary draws.

    Sentences are grouped by the label of their primary attribution (the predicted label when it
    was attributed), classes in label order. A word's score in a sentence is the sum of its
    occurrences there; its mean is taken over the class's sentences that contain it.

    Args:
        explanations: Explanations to aggregate; sentences without attributions are skipped.
        top_k: Words (or tokens) per class, at least 1.
        level: ``"word"`` or ``"token"``; special tokens are left out either way.

    Returns:
        ``(title, units)`` per class: ``"<class> (<n> sentences)"`` and the ``top_k`` best units, best
        first, each named ``"<word> (n=<sentences that contain it>)"`` with its mean score.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` or ``top_k`` is below 1 (a
            ``ValueError``).
    """
    check_level(level)
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1; got {top_k}")
    # class -> word -> one summed score per sentence that contains the word
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    n_sentences: dict[str, int] = defaultdict(int)
    for explanation in explanations:
        if not explanation.attributions:
            continue
        attribution = explanation.primary
        n_sentences[attribution.label] += 1
        in_sentence: dict[str, float] = defaultdict(float)
        for unit in units(attribution, level):
            if not unit.is_special:
                in_sentence[unit.text] += unit.score
        for text, score in in_sentence.items():
            scores[attribution.label][text].append(score)
    panels = []
    for name in sorted(n_sentences):
        means = {text: sum(v) / len(v) for text, v in scores[name].items()}
        best = sorted(means.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        shown = [Unit(f"{text} (n={len(scores[name][text])})", mean, False) for text, mean in best]
        count = n_sentences[name]
        panels.append((f"{name} ({count} sentence{'' if count == 1 else 's'})", shown))
    return panels


def top_tokens_title(top_k: int, level: str) -> str:
    """The title above a top-tokens summary."""
    return f"Top {top_k} {level}s by mean attribution, per predicted class"


def top_tokens_image(
    explanations: Sequence[Explanation],
    *,
    top_k: int = 10,
    level: str = "word",
    panel_width: int = SUMMARY_PANEL_WIDTH,
    font_size: int = 13,
) -> Image.Image:
    """Draw, for each predicted class, the words with the highest mean attribution: the run's summary plot.

    One bar chart per class (:func:`top_token_panels`), :data:`SUMMARY_COLUMNS` to a row, under one
    title; what :func:`~mlflow_explain.render.plot.top_tokens_figure` draws, drawn with Pillow.

    Args:
        explanations: Explanations to aggregate; sentences without attributions are skipped.
        top_k: Words (or tokens) per panel. Defaults to 10.
        level: ``"word"`` for merged words or ``"token"`` for WordPiece tokens. Defaults to ``"word"``.
        panel_width: Width of one class's chart in pixels. Defaults to :data:`SUMMARY_PANEL_WIDTH`.
        font_size: Size of the labels in pixels. Defaults to 13.

    Returns:
        An RGB :class:`PIL.Image.Image`.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` or ``top_k`` is below 1 (a
            ``ValueError``).

    Example:
        >>> Path("top_tokens.png").write_bytes(image_png(top_tokens_image(explanations, top_k=5)))  # doctest: +SKIP
    """
    from PIL import Image

    panels = top_token_panels(explanations, top_k, level)
    charts = [_chart(shown, [title], panel_width, font_size, rows=top_k, labels=0.45) for title, shown in panels]
    columns = min(SUMMARY_COLUMNS, max(len(charts), 1))
    width = columns * panel_width
    pad, size = 10, font_size + 2
    heading = top_tokens_title(top_k, level) if charts else "no explanations to aggregate"
    top = pad + size + 10
    row_height = max((chart.height for chart in charts), default=0)
    height = top + math.ceil(len(charts) / columns) * row_height + (0 if charts else size + 2 * pad)
    image = Image.new("RGB", (width, height), "white")
    draw_text(image, ((width - int(text_length(heading, size))) // 2, pad), heading, size, TEXT)
    for i, chart in enumerate(charts):
        image.paste(chart, ((i % columns) * panel_width, top + (i // columns) * row_height))
    return image


def _chart(
    shown: Sequence[Unit], title_lines: Sequence[str], width: int, font_size: int, rows: int = 0, labels: float = 1 / 3
) -> Image.Image:
    """Horizontal bars of ``shown``, first at the top, under ``title_lines``; room for at least ``rows`` bars.

    The bar labels take at most the share ``labels`` of the width (longer ones end in an ellipsis).
    """
    from PIL import Image, ImageDraw

    size, small = font_size, max(9, font_size - 2)
    pad, row = 10, font_size + 9
    label_width = max((text_length(u.text, size) for u in shown), default=0.0)
    left = pad + min(int(label_width) + 8, int(width * labels))
    right = width - pad - 4
    top = pad + len(title_lines) * (size + 5) + 6
    bottom = top + max(len(shown), rows, 1) * row
    height = bottom + 2 * (small + 6) + pad
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
        line = fit(line, size, width - 2 * pad)
        draw_text(image, ((width - int(text_length(line, size))) // 2, pad + i * (size + 5)), line, size, TEXT)

    low, high = _limits([u.score for u in shown])
    ticks = _ticks(low, high)

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * (right - left)

    for tick in ticks:
        x = round(x_of(tick))
        draw.line((x, top, x, bottom), fill=_GRID)
        text = f"{tick:g}"
        draw_text(image, (x - int(text_length(text, small)) // 2, bottom + 4), text, small, MUTED)
    axis_label = "attribution score"
    draw_text(
        image, ((left + right - int(text_length(axis_label, size))) // 2, bottom + small + 10), axis_label, size, MUTED
    )
    zero = round(x_of(0.0))
    for i, unit in enumerate(shown):
        y = top + i * row
        text = fit(unit.text, size, left - pad - 8)
        draw_text(image, (left - 6 - int(text_length(text, size)), y + (row - size) // 2 - 1), text, size, TEXT)
        end = round(x_of(unit.score))
        if end != zero:
            draw.rectangle(
                (min(zero, end), y + 3, max(zero, end), y + row - 3), fill=POSITIVE if unit.score >= 0 else NEGATIVE
            )
    draw.rectangle((left, top, right, bottom), outline=MUTED)
    draw.line((zero, top, zero, bottom), fill=MUTED, width=1)
    return image


def _limits(scores: list[float]) -> tuple[float, float]:
    """The x range: zero and every score, with 5 % margins (``[-1, 1]`` when all are 0)."""
    low, high = min([0.0, *scores]), max([0.0, *scores])
    if high - low <= 0.0:
        return -1.0, 1.0
    margin = 0.05 * (high - low)
    return low - (margin if low < 0 else 0.0), high + (margin if high > 0 else 0.0)


def _ticks(low: float, high: float) -> list[float]:
    """About five round tick values within ``[low, high]`` (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    raw = (high - low) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + k * step, 12) for k in range(int((high - first) / step + 1e-9) + 1)]
