"""The comparison page and difference plot: self-contained, escaped, one colour scale, drawable."""

from __future__ import annotations

import re
import warnings

import matplotlib.pyplot as plt
import pytest
from compare_builders import explanation, step_table, table

from mlflow_explain.compare import Version, compare_runs, compare_steps
from mlflow_explain.errors import ConfigError
from mlflow_explain.render import attribution_difference_figure, render_comparison_html, score_to_color
from mlflow_explain.render.compare import MAX_SERIES

HOSTILE = '<script>alert("x")</script> & "quotes"'
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def comparison():
    reference = table(
        explanation(0, ["日本", "代表", "が", "勝利"], {"sports": [0.1, 0.2, 0.3, 0.4], "movie": [0.0] * 4}),
        explanation(1, ["ワールド", "##カップ", "で", "勝利"], {"sports": [0.5, 0.1, 0.0, 0.2]}),
        explanation(2, ["<", "script", ">", "&"], {HOSTILE_LABEL: [0.2, -0.1, 0.0, 0.1]}, text=HOSTILE),
    )
    other = table(
        explanation(
            0, ["日本", "代表", "が", "勝利"], {"sports": [0.4, 0.3, 0.2, 0.1], "movie": [0.0] * 4}, predicted="movie"
        ),
        explanation(1, ["ワール", "##ドカップ", "で", "勝利"], {"sports": [0.2, 0.2, 0.1, 0.05]}),
        explanation(2, ["<", "script", ">", "&"], {HOSTILE_LABEL: [0.2, -0.8, 0.0, -0.5]}, text=HOSTILE),
    )
    versions = [
        Version(
            "first <b>run</b>", run_id="a" * 32, params={"model": "tiny-bert-ja", "n_steps": "50"}, sample_hash="h"
        ),
        Version(
            "second",
            run_id="b" * 32,
            params={"model": "<evil>", "method": "interpret-lig"},
            sample_hash="h",
            metrics={"quality_comprehensiveness": 0.5, "quality_sufficiency": 0.25},
        ),
    ]
    return compare_runs(versions, [reference, other], top_k=2)


def colours(html: str) -> dict[str, set[str]]:
    """Token title (its exact score) -> background colours it was given on the page."""
    found: dict[str, set[str]] = {}
    for colour, score in re.findall(r'<mark class="tok" style="background-color: ([^"]+)" title="([^"]+)">', html):
        found.setdefault(score, set()).add(colour)
    return found


def test_page_is_self_contained_and_escaped(comparison):
    html = render_comparison_html(comparison)
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "<script" not in html.lower()
    assert not re.search(r"<[^>]*\s(src|href)=", html)  # no external reference
    assert "<img" not in html and "<evil>" not in html and "<b>run" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "first &lt;b&gt;run&lt;/b&gt;" in html and "model=&lt;evil&gt;" in html
    assert "日本" in html and "ワールドカップ" in html


def test_page_shows_each_version_with_its_prediction_parameters_and_agreement(comparison):
    html = render_comparison_html(comparison)
    assert html.count('<tbody class="sentence') == 3
    assert html.count('<tr class="attribution">') == 6  # 3 sentences x 2 runs
    assert "model=tiny-bert-ja · n_steps=50" in html and "method=interpret-lig" in html
    assert 'movie <span class="prob">(0.90)</span>' in html
    assert "prediction changed" in html  # sentence 0's prediction moved from sports to movie
    assert "vs reference: ρ -1.00 · top-2 0.00 · Δp +0.00" in html
    assert "compared word by word" in html  # sentence 1: the tokenizers differ
    assert '<div class="legend">' in html and "Legend" in html
    assert "a" * 32 in html  # the run ID


def test_page_shows_each_runs_quality_metrics(comparison):
    html = render_comparison_html(comparison)
    assert "explanation quality" in html
    assert "comprehensiveness=0.50 · sufficiency=0.25" in html
    assert html.count("<td>n/a</td>") == 1  # the first run logged none


def test_one_colour_scale_for_the_whole_page(comparison):
    html = render_comparison_html(comparison)
    found = colours(html)
    # The largest |score| anywhere (-0.8, second run, sentence 2) gets the strongest colour...
    assert found["-0.8"] == {score_to_color(-0.8, 0.8)}
    # ... and every other score is coloured relative to it, whichever row it is in.
    assert found["0.4"] == {score_to_color(0.4, 0.8)}
    assert found["0.2"] == {score_to_color(0.2, 0.8)}
    assert "(0.8)" in html  # the legend names the scale


def test_steps_page_lists_steps_and_previous_step_agreement():
    def at(scores):
        return table(explanation(0, ["日本", "代表"], {"sports": scores}))

    steps = step_table({(5, 0.5): at([0.1, 0.2]), (10, 1.0): at([0.2, 0.1]), (15, 1.5): at([0.3, 0.1])})
    html = render_comparison_html(compare_steps(Version("run", run_id="r" * 32, params={"model": "m"}), steps))
    assert "step 5 (epoch 0.5)" in html and "step 15 (epoch 1.5)" in html
    assert "vs previous: ρ" in html
    assert html.count('<span class="params">') == 0  # parameters are shown once, in the version table
    assert "model=m" in html


def test_difference_figure_draws_the_most_changed_sentences_without_missing_glyphs(comparison):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = attribution_difference_figure(comparison, n_sentences=2)
        fig.canvas.draw()
    try:
        assert not [w for w in caught if "Glyph" in str(w.message)]
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 2
        titles = [ax.get_title() for ax in axes]
        assert titles[0].startswith("#2 ") and titles[1].startswith("#0 ")  # largest change first
        labels = [t.get_text() for t in axes[1].get_yticklabels()]
        assert labels == ["日本", "代表", "が", "勝利"]
        widths = [round(p.get_width(), 6) for p in axes[1].patches]
        assert widths == [0.3, 0.1, -0.1, -0.3]
    finally:
        plt.close(fig)


def test_difference_figure_limits_versions_and_rejects_bad_counts():
    tables = [table(explanation(0, ["日本", "代表"], {"sports": [0.1, 0.1 * i]})) for i in range(7)]
    comparison = compare_runs([Version(f"v{i}", sample_hash="h") for i in range(7)], tables)
    fig = attribution_difference_figure(comparison)
    try:
        assert len(fig.axes[0].patches) == 2 * MAX_SERIES
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1] == "v6"
        assert f"{MAX_SERIES} of 6 versions shown" in fig.get_suptitle()
    finally:
        plt.close(fig)
    with pytest.raises(ConfigError, match="n_sentences"):
        attribution_difference_figure(comparison, n_sentences=0)
