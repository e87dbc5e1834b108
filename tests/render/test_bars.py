"""Token-importance bar charts drawn with Pillow: the per-sentence plots every job writes."""

from __future__ import annotations

import numpy as np
import pytest

from mlflow_explain.errors import ConfigError
from mlflow_explain.render.bars import (
    BAR_CHART_WIDTH,
    MAX_BARS,
    NEGATIVE,
    POSITIVE,
    importance_bars,
    token_importance_image,
)
from mlflow_explain.render.plot import token_importance_figure


def _bar_rows(image) -> list[str]:
    """Top to bottom, the sign of each band of rows that holds bar colour: '+' green, '-' red."""
    pixels = np.asarray(image)
    signs = [
        "+" if (row == POSITIVE).all(axis=1).any() else "-" if (row == NEGATIVE).all(axis=1).any() else ""
        for row in pixels
    ]
    return [current for previous, current in zip(["", *signs], signs, strict=False) if current and current != previous]


def test_one_bar_per_non_special_token_in_sentence_order_coloured_by_sign(make_explanation):
    tokens = ["[CLS]", "サッカー", "日本", "代表", "の", "[SEP]"]
    explanation = make_explanation(tokens, {"dokujo-tsushin": [0.0, 0.5, -0.25, 0.75, -0.1, 0.0]})
    image = token_importance_image(explanation)
    assert image.mode == "RGB" and image.width == BAR_CHART_WIDTH
    assert _bar_rows(image) == ["+", "-", "+", "-"]
    shown, title = importance_bars(explanation, None, "token")
    assert [u.text for u in shown] == ["サッカー", "日本", "代表", "の"]
    assert title.splitlines()[1] == "attribution towards dokujo-tsushin"


def test_the_chart_shows_what_the_matplotlib_figure_shows(explanations):
    import matplotlib.pyplot as plt

    for explanation in explanations:
        figure = token_importance_figure(explanation, level="word")
        (ax,) = figure.axes
        shown, title = importance_bars(explanation, None, "word")
        assert [t.get_text() for t in ax.get_yticklabels()] == [u.text for u in shown]
        assert ax.get_title() == title
        plt.close(figure)
        image = token_importance_image(explanation, level="word")
        assert len(_bar_rows(image)) == sum(1 for u in shown if round(abs(u.score), 3) > 0)


def test_a_long_sentence_keeps_its_largest_scores_in_order(make_explanation):
    n = 100
    tokens = ["[CLS]", *(f"語{i}" for i in range(n)), "[SEP]"]
    scores = [0.0, *((i - 50) / 100 for i in range(n)), 0.0]
    explanation = make_explanation(tokens, {"dokujo-tsushin": scores})
    shown, title = importance_bars(explanation, None, "token")
    assert len(shown) == MAX_BARS and f"showing {MAX_BARS} of {n} tokens" in title
    assert [u.text for u in shown] == [f"語{i}" for i in [*range(31), *range(71, 100)]]  # a tie at 0.2: the first
    assert token_importance_image(explanation).height > 60 * 20  # a row per bar


def test_bad_arguments_say_what_is_wrong(explanations):
    with pytest.raises(ConfigError, match="level must be one of"):
        token_importance_image(explanations[0], level="char")
    with pytest.raises(KeyError):
        token_importance_image(explanations[0], "it-life-hack")


def test_all_zero_scores_draw_an_empty_chart(make_explanation):
    image = token_importance_image(make_explanation(["[CLS]", "の", "[SEP]"], {"dokujo-tsushin": [0.0, 0.0, 0.0]}))
    assert _bar_rows(image) == []
