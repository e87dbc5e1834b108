"""Text in Pillow pictures: the font, measured and drawn with the glyphs rendered once per text and size.

The token strips and the bar charts draw the same probe words at every training step; rendering glyphs is
most of a picture's time, and a cached mask pastes in microseconds (pixel for pixel what
``ImageDraw.text`` draws at whole-pixel positions; tested).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageFont

__all__ = ["MUTED", "TEXT", "draw_text", "fit", "font_of", "text_length"]

TEXT = (31, 35, 40)
"""Colour of words and titles in the Pillow pictures."""

MUTED = (87, 96, 106)
"""Colour of headers, axes and tick labels in the Pillow pictures."""


def draw_text(image: Image.Image, xy: tuple[int, int], text: str, size: int, fill: tuple[int, int, int]) -> None:
    """``ImageDraw.text`` at the whole-pixel ``xy`` in :func:`font_of` ``size``."""
    mask, (dx, dy) = _text_mask(text, size)
    if mask.width and mask.height:
        image.paste(fill, (xy[0] + dx, xy[1] + dy), mask)


@lru_cache(maxsize=8192)
def text_length(text: str, size: int) -> float:
    """Width of ``text`` in pixels in :func:`font_of` ``size``."""
    return font_of(size).getlength(text)


def fit(text: str, size: int, width: float) -> str:
    """``text``, cut with ``…`` so that it is at most ``width`` pixels wide in :func:`font_of` ``size``."""
    if text_length(text, size) <= width:
        return text
    while text and text_length(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


@lru_cache(maxsize=8)
def font_of(size: int) -> ImageFont.FreeTypeFont:
    """matplotlib-fontja's IPAexGothic (Japanese and Latin) in ``size`` pixels, or Pillow's default font."""
    from PIL import ImageFont

    try:
        import matplotlib_fontja

        path = Path(matplotlib_fontja.__file__).parent / "fonts" / "ipaexg.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


@lru_cache(maxsize=8192)
def _text_mask(text: str, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """A text's anti-aliased glyphs and their offset from the drawing position."""
    from PIL import Image

    core, offset = font_of(size).getmask2(text, mode="L")
    return Image.Image()._new(core), offset
