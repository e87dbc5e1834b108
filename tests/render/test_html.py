from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from mlflow_explain.render.html import NEUTRAL_COLOR, render_html, score_to_color

HSL = re.compile(r"hsl\((\d+), (\d+)%, ([\d.]+)%\)")


class _Collector(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def lightness(color: str) -> float:
    return float(HSL.fullmatch(color).group(3))


def hue(color: str) -> int:
    return int(HSL.fullmatch(color).group(1))


def test_document_head(explanations):
    page = render_html(explanations, title="epoch 3", subtitle="run abc")

    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert page.index('<meta charset="utf-8">') < page.index("</head>")
    assert "<title>epoch 3</title>" in page
    assert '<p class="subtitle">run abc</p>' in page
    assert '<p class="subtitle">' not in render_html(explanations)


def test_no_script_and_no_external_reference(explanations):
    page = render_html(explanations, title="<script>t</script>", subtitle='<a href="http://x">s</a>')
    parsed = parse(page)

    assert "<script" not in page.lower()
    tag_names = {tag for tag, _ in parsed.tags}
    assert tag_names.isdisjoint({"script", "img", "link", "iframe", "object", "embed", "a"})
    for tag, attrs in parsed.tags:
        assert set(attrs).isdisjoint({"src", "href"}), tag
        assert not any(name.startswith("on") for name in attrs), tag
    assert "url(" not in page
    assert "@import" not in page
    # the only "http" is inside the escaped subtitle, never in markup
    assert page.count("http") == 1
    assert "&lt;a href=&quot;http://x&quot;&gt;s&lt;/a&gt;" in page


def test_hostile_strings_show_as_text(explanations):
    hostile_label, hostile_text = explanations[2].true_label, explanations[2].text
    assert hostile_label.startswith("<img src=x")
    assert hostile_text.startswith("<script>")
    page = render_html(explanations)
    text = "".join(parse(page).text)

    assert "<img src=x" not in page
    assert html.escape(hostile_label, quote=True) in page
    assert html.escape(hostile_text, quote=True) in page
    assert hostile_text in text  # shown as text once the browser decodes the entities
    assert hostile_label in text
    assert ">&lt;</mark>" in page  # the "<" token


def test_japanese_text_verbatim(explanations):
    page = render_html(explanations)

    assert "もうプロポーズを待たない女たち" in page
    assert ">##ポーズ</mark>" in page
    assert "Hiragino Sans" in page
    assert "Noto Sans CJK JP" in page


def test_one_row_per_sentence_and_label(explanations):
    page = render_html(explanations)
    parsed = parse(page)

    rows = [a for tag, a in parsed.tags if tag == "tr" and a.get("class") == "attribution"]
    headers = [a for tag, a in parsed.tags if tag == "tr" and a.get("class") == "sentence-header"]
    assert len(rows) == sum(len(e.attributions) for e in explanations) == 7
    assert len(headers) == len(explanations)
    marks = [a for tag, a in parsed.tags if tag == "mark"]
    assert len(marks) == sum(len(a.tokens) for e in explanations for a in e.attributions)
    assert 'sports-watch <span class="prob">(0.93)</span>' in page
    assert '<td class="num">1.25</td>' in page  # sum of sentence 0's dokujo-tsushin scores


def test_each_token_carries_its_exact_score(explanations):
    parsed = parse(render_html(explanations))

    titles = [a["title"] for tag, a in parsed.tags if tag == "mark"]
    expected = [repr(t.score) for e in explanations for a in e.attributions for t in a.tokens]
    assert titles == expected


def test_shared_scale_gives_the_largest_score_the_strongest_colour(explanations):
    parsed = parse(render_html(explanations))

    by_score = {}
    for tag, attrs in parsed.tags:
        if tag == "mark":
            by_score[float(attrs["title"])] = attrs["style"].removeprefix("background-color: ")
    assert by_score[0.7] == score_to_color(1.0, 1.0)
    assert by_score[-0.7] == score_to_color(-1.0, 1.0)
    assert by_score[0.35] == score_to_color(0.5, 1.0)  # sentence 1 is scaled by sentence 2's 0.7


def test_truncated_marker(explanations):
    page = render_html(explanations)

    assert page.count('class="badge truncated"') == 1
    assert "cut to the model&#x27;s maximum length (7 of 600 tokens)" in page
    assert 'class="badge truncated"' not in render_html(explanations[:3])


def test_misclassified_sentence_is_flagged(explanations):
    page = render_html(explanations)
    parsed = parse(page)

    groups = [a["class"] for tag, a in parsed.tags if tag == "tbody"]
    # sentence 3 has no true label: not counted as misclassified
    assert groups == ["sentence", "sentence", "sentence misclassified", "sentence"]
    assert page.count('class="badge wrong"') == 1
    assert "1 misclassified" in page


def test_legend_at_the_top(explanations):
    page = render_html(explanations)

    legend = page.index('class="legend"')
    assert legend < page.index("<table>")
    for name in ("negative", "neutral", "positive"):
        assert name in page[legend : page.index("</div>", legend)]


def test_word_level_shows_merged_words(explanations):
    page = render_html(explanations, level="word")
    marks = [a for tag, a in parse(page).tags if tag == "mark"]

    assert ">プロポーズ</mark>" in page
    assert ">ワールドカップ</mark>" in page
    assert "##" not in page
    assert "[CLS]" not in page
    assert len(marks) == sum(len(a.words) for e in explanations for a in e.attributions)


def test_bad_level_names_the_choices(explanations):
    with pytest.raises(ValueError, match="'token', 'word'"):
        render_html(explanations, level="sentence")


def test_empty_input_is_a_valid_page():
    page = render_html([])

    assert page.startswith("<!DOCTYPE html>")
    assert "No sentences to show." in page
    assert "<table>" not in page


@pytest.mark.parametrize("sign", [1, -1])
def test_colour_gets_stronger_with_larger_magnitude(sign):
    scale = 0.8
    lightnesses = [lightness(score_to_color(sign * m, scale)) for m in (0.01, 0.1, 0.4, 0.8)]

    assert lightnesses == sorted(lightnesses, reverse=True)
    assert len(set(lightnesses)) == len(lightnesses)
    assert lightness(score_to_color(sign * 5.0, scale)) == lightnesses[-1]  # beyond the scale: capped


def test_colour_hue_follows_the_sign():
    assert hue(score_to_color(0.3, 1.0)) == 120
    assert hue(score_to_color(-0.3, 1.0)) == 0
    assert score_to_color(0.3, 1.0) != score_to_color(-0.3, 1.0)


@pytest.mark.parametrize(("score", "scale"), [(0.0, 1.0), (0.5, 0.0), (float("nan"), 1.0), (0.5, float("inf"))])
def test_colour_is_neutral_without_a_usable_scale(score, scale):
    assert score_to_color(score, scale) == NEUTRAL_COLOR
