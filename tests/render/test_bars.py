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
    SUMMARY_COLUMNS,
    SUMMARY_PANEL_WIDTH,
    importance_bars,
    token_importance_image,
    top_token_panels,
    top_tokens_image,
)
from mlflow_explain.render.plot import token_importance_figure, top_tokens_figure


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


def test_the_summary_draws_one_chart_per_predicted_class_with_its_mean_scores(make_explanation):
    tokens = ["[CLS]", "選手", "が", "選手", "[SEP]"]
    explanations = [
        make_explanation(tokens, {"sports-watch": [0.0, 0.2, 0.1, 0.2, 0.0]}, predicted_label="sports-watch"),
        make_explanation(tokens, {"sports-watch": [0.0, 0.1, -0.3, 0.1, 0.0]}, predicted_label="sports-watch"),
        make_explanation(
            ["[CLS]", "独女", "[SEP]"], {"dokujo-tsushin": [0.0, 0.5, 0.0]}, predicted_label="dokujo-tsushin"
        ),
    ]
    panels = top_token_panels(explanations, 5, "word")
    # 選手: (0.2 + 0.2 + 0.1 + 0.1) / 2 sentences; が: (0.1 - 0.3) / 2
    assert [title for title, _ in panels] == ["dokujo-tsushin (1 sentence)", "sports-watch (2 sentences)"]
    assert [(u.text, u.score) for u in panels[1][1]] == [
        ("選手 (n=2)", pytest.approx(0.3)),
        ("が (n=2)", pytest.approx(-0.1)),
    ]

    image = top_tokens_image(explanations, top_k=5)
    assert image.mode == "RGB" and image.width == 2 * SUMMARY_PANEL_WIDTH  # two classes side by side
    left, right = (image.crop((x, 0, x + SUMMARY_PANEL_WIDTH, image.height)) for x in (0, SUMMARY_PANEL_WIDTH))
    assert _bar_rows(left) == ["+"] and _bar_rows(right) == ["+", "-"]


def test_the_summary_shows_what_the_matplotlib_figure_shows(explanations):
    import matplotlib.pyplot as plt

    figure = top_tokens_figure(explanations, top_k=3)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    panels = top_token_panels(explanations, 3, "word")
    assert [ax.get_title() for ax in visible] == [title for title, _ in panels]
    assert [[t.get_text() for t in ax.get_yticklabels()] for ax in visible] == [
        [u.text for u in shown] for _, shown in panels
    ]
    assert figure._suptitle.get_text() == "Top 3 words by mean attribution, per predicted class"
    plt.close(figure)


@pytest.mark.parametrize("n_classes", [1, 3, 4, 9])
def test_the_summary_wraps_its_charts_in_rows_of_three(one_per_class, n_classes):
    one_row = top_tokens_image(one_per_class(1)).height
    chart = top_tokens_image(one_per_class(4)).height - one_row
    heading = one_row - chart
    image = top_tokens_image(one_per_class(n_classes))
    columns = min(n_classes, SUMMARY_COLUMNS)
    rows = -(-n_classes // SUMMARY_COLUMNS)
    assert image.size == (columns * SUMMARY_PANEL_WIDTH, heading + rows * chart)
    for c in range(n_classes):
        row, column = divmod(c, SUMMARY_COLUMNS)
        x, y = column * SUMMARY_PANEL_WIDTH, heading + row * chart
        assert _bar_rows(image.crop((x, y, x + SUMMARY_PANEL_WIDTH, y + chart))) == ["+", "+"]


def test_a_summary_without_explanations_says_so_and_bad_arguments_are_refused(explanations):
    image = top_tokens_image([])
    assert image.width == SUMMARY_PANEL_WIDTH and _bar_rows(image) == []
    with pytest.raises(ConfigError, match="top_k"):
        top_tokens_image(explanations, top_k=0)
    with pytest.raises(ConfigError, match="level must be one of"):
        top_tokens_image(explanations, level="sentence")
