"""Explanations as small pictures: a sentence's words coloured by score, drawn with Pillow.

A *token strip* is the HTML page's row as an image: a header line (sentence key, true and
predicted label, the attributed label) over the sentence's words on the page's colours. It is
short and wide, so that it reads in a table cell of the MLflow UI's artifact-evaluation view and on
an image card of its chart view, and it draws in milliseconds (no matplotlib), so logging one per
sentence and training step costs little. :func:`sample_strips` stacks the strips of a sample into
the run's summary picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_explain.explanation import Explanation
from mlflow_explain.render._common import Unit, check_level, units
from mlflow_explain.render.html import score_to_color

if TYPE_CHECKING:
    from PIL import Image, ImageFont

__all__ = ["STRIP_WIDTH", "sample_strips", "token_strip"]

STRIP_WIDTH = 960
"""Default width of a token strip in pixels."""

_PAD = 8
_GAP = 4
_TEXT = (31, 35, 40)
_MUTED = (87, 96, 106)
_WRONG = (164, 14, 38)
_BORDER = (208, 215, 222)


def token_strip(
    explanation: Explanation,
    *,
    label: str | None = None,
    key: str | None = None,
    width: int = STRIP_WIDTH,
    max_lines: int = 2,
    font_size: int = 22,
    level: str = "word",
) -> Image.Image:
    """Draw one sentence's attribution as a short, wide picture.

    The header names the sentence (``key`` or its id), the true label, the predicted label with its
    probability (red when wrong) and the attributed label; below it the words (or tokens) on the
    colours of :func:`~mlflow_explain.render.html.score_to_color`, green for support, red against,
    scaled to the sentence's largest ``|score|``. Words that do not fit in ``max_lines`` lines are
    left out and the last line ends with ``… +N``.

    Args:
        explanation: The sentence's explanation.
        label: Attributed label to draw; ``None`` draws ``explanation.primary``. Defaults to None.
        key: Name of the sentence in the header (e.g. its sample key); defaults to ``#<sentence_id>``.
        width: Picture width in pixels. Defaults to :data:`STRIP_WIDTH`.
        max_lines: Lines of words at most. Defaults to 2.
        font_size: Size of the words in pixels; the header is 70 % of it. Defaults to 22.
        level: ``"word"`` (pieces merged, special tokens left out) or ``"token"``. Defaults to ``"word"``.

    Returns:
        An RGB :class:`PIL.Image.Image`.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).
        KeyError: If ``label`` was not attributed for this sentence.

    Example:
        >>> token_strip(explanation).save("sentence.png")  # doctest: +SKIP
    """
    from PIL import Image, ImageDraw

    check_level(level)
    attribution = explanation.primary if label is None else explanation.for_label(label)
    shown = [u for u in units(attribution, level) if not u.is_special]
    font, small = _font(font_size), _font(max(10, round(font_size * 0.7)))
    header = _header(explanation, attribution.label, key)
    lines = _wrap(shown, font, width - 2 * _PAD, max_lines)
    line_height = font_size + 2 * _GAP + 4
    header_height = round(font_size * 0.7) + 2 * _GAP
    height = _PAD + header_height + line_height * max(len(lines), 1) + _PAD
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    wrong = explanation.true_label is not None and explanation.true_label != explanation.predicted_label
    draw.text((_PAD, _PAD), header, font=small, fill=_WRONG if wrong else _MUTED)
    scale = max((abs(u.score) for u in shown), default=0.0)
    y = _PAD + header_height
    for line, hidden in lines:
        x = _PAD
        for unit in line:
            box = _box_width(unit.text, font)
            draw.rounded_rectangle(
                (x, y, x + box, y + font_size + 2 * _GAP),
                radius=4,
                fill=score_to_color(unit.score, scale),
                outline=_BORDER,
            )
            draw.text((x + _GAP, y + _GAP), unit.text, font=font, fill=_TEXT)
            x += box + _GAP
        if hidden:
            draw.text((x + _GAP, y + _GAP), f"… +{hidden}", font=font, fill=_MUTED)
        y += line_height
    return image


def sample_strips(
    explanations: Sequence[Explanation], *, keys: Sequence[str] | None = None, width: int = STRIP_WIDTH
) -> Image.Image:
    """Stack the token strips of a sample into one picture, one sentence under the other.

    Args:
        explanations: The explained sentences, in sample order.
        keys: Each sentence's name in its header; defaults to ``#<sentence_id>``.
        width: Picture width in pixels. Defaults to :data:`STRIP_WIDTH`.

    Returns:
        An RGB :class:`PIL.Image.Image` (a white strip saying so when there is no sentence).
    """
    from PIL import Image, ImageDraw

    keys = list(keys) if keys is not None else [None] * len(explanations)
    strips = [
        token_strip(e, key=k, width=width, max_lines=1, font_size=18)
        for e, k in zip(explanations, keys, strict=True)
        if e.attributions
    ]
    if not strips:
        image = Image.new("RGB", (width, 40), "white")
        ImageDraw.Draw(image).text((_PAD, _PAD), "no sentence explained", font=_font(16), fill=_MUTED)
        return image
    image = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        image.paste(strip, (0, y))
        y += strip.height
        ImageDraw.Draw(image).line((0, y - 1, width, y - 1), fill=_BORDER)
    return image


def _header(explanation: Explanation, label: str, key: str | None) -> str:
    name = key or f"#{explanation.sentence_id}"
    truth = explanation.true_label if explanation.true_label is not None else "?"
    return (
        f"{name} · true {truth} · predicted {explanation.predicted_label} "
        f"({explanation.predicted_probability:.2f}) · towards {label}"
    )


def _wrap(shown: list[Unit], font, width: int, max_lines: int) -> list[tuple[list[Unit], int]]:
    """Lay the units out in at most ``max_lines`` lines; the last line carries the count left out."""
    lines: list[list[Unit]] = [[]]
    used = 0
    for index, unit in enumerate(shown):
        box = _box_width(unit.text, font) + _GAP
        if lines[-1] and used + box > width:
            if len(lines) == max_lines:
                last = _make_room(lines[-1], font, width)
                hidden = len(shown) - index + len(lines[-1]) - len(last)
                return [*((line, 0) for line in lines[:-1]), (last, hidden)]
            lines.append([])
            used = 0
        lines[-1].append(unit)
        used += box
    return [(line, 0) for line in lines]


def _make_room(line: list[Unit], font, width: int) -> list[Unit]:
    """Drop units from the end of a full line until the ``… +N`` marker fits."""
    marker = font.getlength("… +999") + 2 * _GAP
    while line and sum(_box_width(u.text, font) + _GAP for u in line) + marker > width:
        line = line[:-1]
    return line


def _box_width(text: str, font) -> int:
    return round(font.getlength(text)) + 2 * _GAP


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """matplotlib-fontja's IPAexGothic (Japanese and Latin), or Pillow's default font."""
    from PIL import ImageFont

    try:
        import matplotlib_fontja

        path = Path(matplotlib_fontja.__file__).parent / "fonts" / "ipaexg.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)
