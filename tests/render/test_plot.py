from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import matplotlib
import pytest

from mlflow_explain.render.plot import (
    MAX_BARS,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    token_importance_figure,
    top_tokens_figure,
)


@pytest.fixture
def close_figures():
    """Closes every figure a test hands to ``keep``."""
    import matplotlib.pyplot as plt

    figures = []
    yield figures.append
    for fig in figures:
        plt.close(fig)


def glyph_warnings(fig) -> list[str]:
    """Draw the figure to PNG and return the messages of missing-glyph warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def bar_colors(ax) -> list[tuple[float, ...]]:
    return [tuple(p.get_facecolor()) for p in ax.patches]


def test_token_figure_has_one_bar_per_non_special_token(explanations, close_figures):
    explanation = explanations[0]
    fig = token_importance_figure(explanation)
    close_figures(fig)
    (ax,) = fig.axes

    non_special = [t for t in explanation.primary.tokens if not t.is_special]
    assert len(ax.patches) == len(non_special) == 8
    assert [t.get_text() for t in ax.get_yticklabels()] == [t.token for t in non_special]
    assert [p.get_width() for p in ax.patches] == [t.score for t in non_special]
    title = ax.get_title()
    assert "Sentence 0" in title
    assert "dokujo-tsushin" in title
    assert "(0.91)" in title


def test_token_figure_colours_by_sign(explanations, close_figures):
    fig = token_importance_figure(explanations[0])
    close_figures(fig)
    (ax,) = fig.axes

    positive = matplotlib.colors.to_rgba(POSITIVE_COLOR)
    negative = matplotlib.colors.to_rgba(NEGATIVE_COLOR)
    scores = [p.get_width() for p in ax.patches]
    assert bar_colors(ax) == [positive if s >= 0 else negative for s in scores]
    assert negative in bar_colors(ax)


def test_token_figure_other_label_and_word_level(explanations, close_figures):
    fig = token_importance_figure(explanations[0], "sports-watch", level="word")
    close_figures(fig)
    (ax,) = fig.axes

    words = explanations[0].for_label("sports-watch").words
    assert len(ax.patches) == len(words) == 7
    assert "プロポーズ" in [t.get_text() for t in ax.get_yticklabels()]
    assert "attribution towards sports-watch" in ax.get_title()


def test_token_figure_rejects_unknown_label_and_level(explanations):
    with pytest.raises(KeyError, match="not attributed"):
        token_importance_figure(explanations[0], "it-life-hack")
    with pytest.raises(ValueError, match="'token', 'word'"):
        token_importance_figure(explanations[0], level="char")


def test_long_sentence_keeps_the_largest_scores_in_order(make_explanation, close_figures):
    n = 100
    tokens = ["[CLS]", *(f"語{i}" for i in range(n)), "[SEP]"]
    scores = [0.0, *((i - 50) / 100 for i in range(n)), 0.0]  # |score| largest at both ends
    fig = token_importance_figure(make_explanation(tokens, {"dokujo-tsushin": scores}))
    close_figures(fig)
    (ax,) = fig.axes

    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ax.patches) == MAX_BARS
    assert f"showing {MAX_BARS} of {n} tokens" in ax.get_title()
    kept = sorted(range(n), key=lambda i: -abs(i - 50))[:MAX_BARS]
    assert labels == [f"語{i}" for i in sorted(kept)]


def test_top_tokens_figure_one_panel_per_predicted_class(explanations, close_figures):
    fig = top_tokens_figure(explanations, top_k=3)
    close_figures(fig)

    visible = [ax for ax in fig.axes if ax.get_visible()]
    # sentences 0 and 3 are predicted dokujo-tsushin, 1 and 2 sports-watch
    assert [ax.get_title() for ax in visible] == [
        "dokujo-tsushin (2 sentences)",
        "sports-watch (2 sentences)",
    ]
    assert all(len(ax.patches) == 3 for ax in visible)
    sports = [t.get_text() for t in visible[1].get_yticklabels()]
    assert sports == ["ワールドカップ (n=1)", "勝利 (n=1)", "alert (n=1)"]


def test_top_tokens_mean_over_sentences_containing_the_word(make_explanation, close_figures):
    tokens = ["[CLS]", "選手", "が", "選手", "[SEP]"]
    explanations = [
        make_explanation(tokens, {"sports-watch": [0.0, 0.2, 0.1, 0.2, 0.0]}, predicted_label="sports-watch"),
        make_explanation(tokens, {"sports-watch": [0.0, 0.1, -0.3, 0.1, 0.0]}, predicted_label="sports-watch"),
    ]
    fig = top_tokens_figure(explanations, top_k=5)
    close_figures(fig)
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]

    # 選手: (0.2 + 0.2 + 0.1 + 0.1) / 2 sentences; が: (0.1 - 0.3) / 2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["選手 (n=2)", "が (n=2)"]
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.3, -0.1])


@pytest.mark.parametrize("n_classes", [1, 2, 4, 9, 10])
def test_top_tokens_figure_scales_to_many_classes(one_per_class, close_figures, n_classes):
    explanations = one_per_class(n_classes)
    fig = top_tokens_figure(explanations)
    close_figures(fig)

    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n_classes
    assert all(len(ax.patches) == 2 for ax in visible)
    assert glyph_warnings(fig) == []


def test_top_tokens_figure_rejects_bad_arguments(explanations):
    with pytest.raises(ValueError, match="top_k"):
        top_tokens_figure(explanations, top_k=0)
    with pytest.raises(ValueError, match="'token', 'word'"):
        top_tokens_figure(explanations, level="sentence")


def test_top_tokens_figure_without_explanations(close_figures):
    fig = top_tokens_figure([])
    close_figures(fig)

    assert [ax for ax in fig.axes if ax.get_visible()] == []
    assert any("no explanations" in t.get_text() for t in fig.texts)


def test_japanese_renders_without_missing_glyphs(explanations, close_figures):
    figures = [token_importance_figure(e) for e in explanations]
    figures.append(top_tokens_figure(explanations, level="token"))
    for fig in figures:
        close_figures(fig)

    for fig in figures:
        assert glyph_warnings(fig) == []


def test_japanese_font_survives_an_rc_reset(explanations, close_figures):
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # e.g. a plotting library resetting the style
        fig = token_importance_figure(explanations[1])
        close_figures(fig)

        assert glyph_warnings(fig) == []


def test_dollar_signs_are_shown_literally(make_explanation, close_figures):
    fig = token_importance_figure(make_explanation(["[CLS]", "$x$", "円", "[SEP]"], {"x": [0.0, 0.1, 0.2, 0.0]}))
    close_figures(fig)
    (ax,) = fig.axes

    label = ax.get_yticklabels()[0]
    assert label.get_text() == "$x$"
    assert label.get_parse_math() is False


def test_figures_are_left_to_the_caller(explanations):
    import matplotlib.pyplot as plt

    fig = token_importance_figure(explanations[0])
    assert fig.number in plt.get_fignums()
    plt.close(fig)
    assert fig.number not in plt.get_fignums()


def test_headless_process_gets_the_agg_backend():
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    code = (
        "import matplotlib\nfrom mlflow_explain.render.plot import pyplot\npyplot()\nprint(matplotlib.get_backend())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)

    assert result.stdout.strip().lower() == "agg"


def test_figure_png_is_the_figure_as_a_png_and_closes_it(explanations):
    import matplotlib.pyplot as plt
    from PIL import Image

    from mlflow_explain.render.plot import PNG_DPI, figure_png

    sizes = []
    for dpi in (PNG_DPI, 2 * PNG_DPI):
        fig = token_importance_figure(explanations[0])
        png = figure_png(fig, dpi=dpi)
        assert not plt.fignum_exists(fig.number)
        with Image.open(io.BytesIO(png)) as picture:
            assert picture.format == "PNG"
            sizes.append(picture.size)
    # About the 7-inch figure at the resolution (cropped to what it draws), and scaled by it.
    assert 6 * PNG_DPI < sizes[0][0] < 8 * PNG_DPI
    assert abs(sizes[1][0] - 2 * sizes[0][0]) <= 4 and abs(sizes[1][1] - 2 * sizes[0][1]) <= 4
