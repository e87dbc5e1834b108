"""Explanations as small pictures: a sentence's words coloured by score, drawn with Pillow.

A *token strip* is the HTML page's row as an image: a header (sentence key, true and predicted
label, the attributed label) over the sentence's words on the page's colours. It is small enough to
be shown unscaled in a table cell of the MLflow UI's artifact-evaluation view and on an image card of
its chart view, and it draws in milliseconds (no matplotlib), so logging one per sentence and
training step costs little. :func:`sample_strips` stacks the strips of a sample into
the run's summary picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlflow_explain.explanation import Explanation
from mlflow_explain.render._common import Unit, check_level, units
from mlflow_explain.render._text import MUTED, TEXT, draw_text, fit, font_of, text_length
from mlflow_explain.render.html import score_to_color

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "CONTENT_HEIGHT",
    "STRIP_HEIGHT",
    "STRIP_WIDTH",
    "SUMMARY_WIDTH",
    "header_parts",
    "image_png",
    "sample_strips",
    "token_strip",
]

STRIP_WIDTH = 256
"""Default width of a token strip in pixels: the largest the MLflow UI shows a logged image without scaling."""

STRIP_HEIGHT = 256
"""Default least height of a token strip: with :data:`STRIP_WIDTH`, the square the MLflow UI's cells expect."""

CONTENT_HEIGHT = 128
"""Height the default strip's content stays within (the band an artifact-evaluation cell shows)."""

SUMMARY_WIDTH = 960
"""Default width of :func:`sample_strips`, the run's summary picture (shown at full size)."""

_WRONG = (164, 14, 38)
_BORDER = (208, 215, 222)


def token_strip(
    explanation: Explanation,
    *,
    label: str | None = None,
    key: str | None = None,
    width: int = STRIP_WIDTH,
    height: int | None = STRIP_HEIGHT,
    max_lines: int = 4,
    font_size: int = 14,
    level: str = "word",
) -> Image.Image:
    """Draw one sentence's attribution as a small picture.

    The header names the sentence (``key`` or its id), the true label, the predicted label with its
    probability (red when wrong) and the attributed label; below it the words (or tokens) on the
    colours of :func:`~mlflow_explain.render.html.score_to_color`, green for support, red against,
    scaled to the sentence's largest ``|score|``. Header and words wrap to ``width``; words that do not
    fit in ``max_lines`` lines are left out and the last line ends with ``… +N``.

    The default size is what the MLflow UI shows whole and unscaled. It displays logged images as
    thumbnails of at most 256 pixels (``mlflow.tracking.multimedia.COMPRESSED_IMAGE_SIZE``), on the
    chart view's image cards and in the artifact-evaluation view's cells; a cell (MLflow 3.17) centres
    the thumbnail in a 343-pixel square and shows only its upper 174 pixels, so of a 256 x 256 picture
    the top 131 pixels show (measured in Chromium), and a shorter picture would sit at the cell's bottom
    edge, cut. :data:`STRIP_HEIGHT` pads the picture to that square; the defaults keep the content
    (up to three header lines, four lines of words) within the top :data:`CONTENT_HEIGHT` pixels.

    Args:
        explanation: The sentence's explanation.
        label: Attributed label to draw; ``None`` draws ``explanation.primary``. Defaults to None.
        key: Name of the sentence in the header (e.g. its sample key); defaults to ``#<sentence_id>``.
        width: Picture width in pixels. Defaults to :data:`STRIP_WIDTH` (256).
        height: Least picture height: the content is drawn at the top and white space fills the rest;
            ``None`` makes the picture as tall as its content. Defaults to :data:`STRIP_HEIGHT` (256).
        max_lines: Lines of words at most. Defaults to 4.
        font_size: Size of the words in pixels; the header is 75 % of it. Defaults to 14.
        level: ``"word"`` (pieces merged, special tokens left out) or ``"token"``. Defaults to ``"word"``.

    Returns:
        An RGB :class:`PIL.Image.Image` of ``width`` pixels, at least ``height`` tall.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).
        KeyError: If ``label`` was not attributed for this sentence.

    Example:
        >>> Path("sentence.png").write_bytes(image_png(token_strip(explanation, key="553bd9fe")))  # doctest: +SKIP
    """
    from PIL import Image, ImageDraw

    check_level(level)
    attribution = explanation.primary if label is None else explanation.for_label(label)
    font, small = font_of(font_size), font_of(max(9, round(font_size * 0.75)))
    pad, gap = max(4, font_size // 3), max(2, font_size // 6)
    inner = width - 2 * pad
    shown = [
        Unit(fit(u.text, font.size, inner - 2 * gap), u.score, False)
        for u in units(attribution, level)
        if not u.is_special
    ]
    header = _wrap_text(header_parts(explanation, attribution.label, key), small, inner)
    lines = _wrap(shown, font, inner, max_lines, gap)
    header_line, word_line = small.size + gap, font_size + 2 * gap + 2
    content = pad + header_line * len(header) + gap + word_line * max(len(lines), 1) + pad
    image = Image.new("RGB", (width, max(content, height or 0)), "white")
    draw = ImageDraw.Draw(image)
    wrong = explanation.true_label is not None and explanation.true_label != explanation.predicted_label
    y = pad
    for text in header:
        draw_text(image, (pad, y), text, small.size, _WRONG if wrong else MUTED)
        y += header_line
    y += gap
    scale = max((abs(u.score) for u in shown), default=0.0)
    for line, hidden in lines:
        x = pad
        for unit in line:
            box = _box_width(unit.text, font, gap)
            color = score_to_color(unit.score, scale)
            draw.rounded_rectangle((x, y, x + box, y + font_size + 2 * gap), radius=3, fill=color, outline=_BORDER)
            draw_text(image, (x + gap, y + gap), unit.text, font_size, TEXT)
            x += box + gap
        if hidden:
            draw_text(image, (x + gap, y + gap), f"… +{hidden}", font_size, MUTED)
        y += word_line
    return image


def sample_strips(
    explanations: Sequence[Explanation], *, keys: Sequence[str] | None = None, width: int = SUMMARY_WIDTH
) -> Image.Image:
    """Stack the token strips of a sample into one picture, one sentence under the other.

    Args:
        explanations: The explained sentences, in sample order.
        keys: Each sentence's name in its header; defaults to ``#<sentence_id>``.
        width: Picture width in pixels. Defaults to :data:`SUMMARY_WIDTH` (960).

    Returns:
        An RGB :class:`PIL.Image.Image` (a white strip saying so when there is no sentence).
    """
    from PIL import Image, ImageDraw

    keys = list(keys) if keys is not None else [None] * len(explanations)
    strips = [
        token_strip(e, key=k, width=width, height=None, max_lines=2, font_size=18)
        for e, k in zip(explanations, keys, strict=True)
        if e.attributions
    ]
    if not strips:
        image = Image.new("RGB", (width, 40), "white")
        ImageDraw.Draw(image).text((8, 8), "no sentence explained", font=font_of(16), fill=MUTED)
        return image
    image = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        image.paste(strip, (0, y))
        y += strip.height
        ImageDraw.Draw(image).line((0, y - 1, width, y - 1), fill=_BORDER)
    return image


def image_png(image: Image.Image) -> bytes:
    """A Pillow picture (a token strip, :func:`sample_strips`) as a PNG file's bytes.

    Args:
        image: The picture.

    Returns:
        The PNG file's bytes.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return buffer.getvalue()


def header_parts(explanation: Explanation, label: str, key: str | None = None) -> list[str]:
    """The pieces of a strip's header: the sentence's name, its true label, the prediction, the attributed label.

    A multi-label model's true and predicted label sets read ``true movie|sports`` and
    ``predicted movie (0.91)|sports (0.73)``.

    Args:
        explanation: The sentence's explanation.
        label: The attributed label drawn.
        key: Name of the sentence; defaults to ``#<sentence_id>``.

    Returns:
        The pieces, in order (the header joins them with `` · `` into lines).
    """
    name = key or f"#{explanation.sentence_id}"
    truth = explanation.true_label if explanation.true_label is not None else "?"
    pairs = explanation.predicted_labels or ((explanation.predicted_label, explanation.predicted_probability),)
    return [
        f"{name}",
        f"true {truth}",
        "predicted " + "|".join(f"{predicted} ({probability:.2f})" for predicted, probability in pairs),
        f"towards {label}",
    ]


def _wrap_text(parts: list[str], font, width: int) -> list[str]:
    """Join ``parts`` with `` · `` into as few lines of ``width`` pixels as they need."""
    lines: list[str] = []
    for part in (fit(p, font.size, width) for p in parts):
        candidate = f"{lines[-1]} · {part}" if lines else part
        if lines and text_length(candidate, font.size) <= width:
            lines[-1] = candidate
        else:
            lines.append(part)
    return lines


def _wrap(shown: list[Unit], font, width: int, max_lines: int, gap: int) -> list[tuple[list[Unit], int]]:
    """Lay the units out in at most ``max_lines`` lines; the last line carries the count left out."""
    lines: list[list[Unit]] = [[]]
    used = 0
    for index, unit in enumerate(shown):
        box = _box_width(unit.text, font, gap) + gap
        if lines[-1] and used + box > width:
            if len(lines) == max_lines:
                last = _make_room(lines[-1], font, width, gap)
                hidden = len(shown) - index + len(lines[-1]) - len(last)
                return [*((line, 0) for line in lines[:-1]), (last, hidden)]
            lines.append([])
            used = 0
        lines[-1].append(unit)
        used += box
    return [(line, 0) for line in lines]


def _make_room(line: list[Unit], font, width: int, gap: int) -> list[Unit]:
    """Drop units from the end of a full line until the ``… +N`` marker fits."""
    marker = text_length("… +999", font.size) + 2 * gap
    while line and sum(_box_width(u.text, font, gap) + gap for u in line) + marker > width:
        line = line[:-1]
    return line


def _box_width(text: str, font, gap: int) -> int:
    return round(text_length(text, font.size)) + 2 * gap
