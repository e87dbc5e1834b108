"""Token strips: the pictures the MLflow UI shows in table cells and on image cards."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mlflow_explain.render.strip import (
    CONTENT_HEIGHT,
    STRIP_HEIGHT,
    STRIP_WIDTH,
    image_png,
    sample_strips,
    token_strip,
)


def _content_rows(image) -> np.ndarray:
    """Rows of the picture that hold anything but white."""
    pixels = np.asarray(image.convert("L"))
    return np.where((pixels < 250).any(axis=1))[0]


def test_a_strip_is_the_ui_thumbnail_size_with_its_content_in_the_visible_band(explanations):
    for explanation in explanations:
        strip = token_strip(explanation, key="553bd9fe")
        assert strip.size == (STRIP_WIDTH, STRIP_HEIGHT) == (256, 256)
        assert _content_rows(strip).max() < CONTENT_HEIGHT


def test_a_long_sentence_is_cut_with_a_count_and_stays_in_the_band(make_explanation):
    tokens = ["[CLS]", *(f"単語{i}" for i in range(80)), "長" * 90, "[SEP]"]
    scores = [0.0, *np.linspace(-1, 1, 81), 0.0]
    explanation = make_explanation(
        tokens,
        {"a-very-long-label-name-for-the-header": scores},
        predicted_label="a-very-long-label-name-for-the-header",
    )
    strip = token_strip(explanation)
    assert strip.size == (256, 256) and _content_rows(strip).max() < CONTENT_HEIGHT
    tall = token_strip(explanation, height=None, max_lines=40)  # everything, as tall as it needs
    assert tall.height > 256 and tall.width == 256


def test_scores_colour_the_words_green_and_red(make_explanation):
    explanation = make_explanation(["[CLS]", "勝利", "敗北", "[SEP]"], {"dokujo-tsushin": [0.0, 1.0, -1.0, 0.0]})
    pixels = np.asarray(token_strip(explanation, height=None)).reshape(-1, 3).astype(int)
    green = ((pixels[:, 1] - pixels[:, 0] > 80) & (pixels[:, 1] - pixels[:, 2] > 80)).sum()
    red = ((pixels[:, 0] - pixels[:, 1] > 80) & (pixels[:, 0] - pixels[:, 2] > 80)).sum()
    assert green > 100 and red > 100


def test_sample_strips_stack_one_line_per_sentence(explanations):
    summary = sample_strips(explanations)
    one = [token_strip(e, width=960, height=None, max_lines=2, font_size=18) for e in explanations]
    assert summary.size == (960, sum(s.height for s in one))
    assert sample_strips([]).size[0] == 960  # says that nothing was explained


def test_image_png_keeps_every_pixel(explanations):
    import io

    from PIL import Image

    strip = token_strip(explanations[0])
    with Image.open(io.BytesIO(image_png(strip))) as picture:
        assert picture.format == "PNG"
        assert np.array_equal(np.asarray(picture.convert("RGB")), np.asarray(strip))


@pytest.mark.parametrize("size", [10, 14, 18])
@pytest.mark.parametrize("text", ["サッカー日本代表", "… +12", "#3 · true sports · predicted movie (0.91)"])
def test_a_cached_text_is_drawn_pixel_for_pixel_as_pillow_draws_it(text, size):
    from PIL import ImageDraw

    from mlflow_explain.render._text import draw_text, font_of

    drawn = Image.new("RGB", (300, 40), (200, 230, 200))
    pasted = drawn.copy()
    ImageDraw.Draw(drawn).text((5, 7), text, font=font_of(size), fill=(31, 35, 40))
    draw_text(pasted, (5, 7), text, size, (31, 35, 40))
    assert np.array_equal(np.asarray(drawn), np.asarray(pasted))
    assert np.asarray(drawn).min() < 100  # the text is there
