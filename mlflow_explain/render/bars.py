"""A sentence's token importances as a bar chart drawn with Pillow: the run's per-sentence plots.

:func:`token_importance_image` draws what :func:`~mlflow_explain.render.plot.token_importance_figure`
draws (one horizontal bar per token in sentence order, green for support, red against, the same title
and the same :data:`~mlflow_explain.render.plot.MAX_BARS` cut) in a few milliseconds, where a matplotlib
figure takes about 0.3 s to lay out and encode: a job writes one per explained sentence, at the end of
training too. The matplotlib figure stays for notebooks and for anyone who wants to restyle it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mlflow_explain.explanation import Explanation
from mlflow_explain.render._common import NEGATIVE_COLOR, POSITIVE_COLOR, Unit, check_level, units
from mlflow_explain.render._text import MUTED, TEXT, draw_text, fit, text_length

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["BAR_CHART_WIDTH", "importance_bars", "token_importance_image"]

BAR_CHART_WIDTH = 770
"""Width of :func:`token_importance_image` in pixels (the matplotlib figure's 7 inches at 110 dpi)."""

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
    from PIL import Image, ImageDraw

    shown, title = importance_bars(explanation, label, level)
    size, small = font_size, max(9, font_size - 2)
    pad, row = 10, font_size + 9
    title_lines = title.split("\n")
    label_width = max((text_length(u.text, size) for u in shown), default=0.0)
    left = pad + min(int(label_width) + 8, width // 3)
    right = width - pad - 4
    top = pad + len(title_lines) * (size + 5) + 6
    bottom = top + max(len(shown), 1) * row
    height = bottom + 2 * (small + 6) + pad
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
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
