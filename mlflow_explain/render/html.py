"""Explanations as one self-contained HTML page, in the style of Captum's ``visualize_text``.

The page has no script and no external reference (fonts, images, style sheets): it renders the
same offline, in the MLflow UI's artifact viewer and in a mail attachment. Every piece of text
taken from the data is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from mlflow_explain.explanation import Explanation, LabelAttribution
from mlflow_explain.render._common import Unit, check_level, units

__all__ = ["render_html", "score_to_color"]

_POSITIVE_HUE = 120  # green
_NEGATIVE_HUE = 0  # red
_SATURATION = 75
_STRONGEST_LIGHTNESS = 55.0  # lightness at the largest |score|: still readable with dark text
NEUTRAL_COLOR = "hsl(0, 0%, 100%)"
"""Background of a token whose score is zero (or when every score on the page is zero)."""

_COLUMNS = ("True Label", "Predicted Label", "Attribution Label", "Attribution Score", "Word Importance")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Hiragino Kaku Gothic ProN",
  "Noto Sans CJK JP", "Noto Sans JP", "Yu Gothic", YuGothic, Meiryo, sans-serif;
  margin: 2rem; color: #1f2328; background: #fff; line-height: 1.5; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.subtitle { color: #57606a; margin: 0 0 1rem; }
.legend, .summary { font-size: .9rem; margin: 0 0 .75rem; }
.legend { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .5rem .75rem;
  border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa; }
.legend .swatch { padding: .05rem .5rem; border: 1px solid #d0d7de; border-radius: 3px; }
.legend .scale { color: #57606a; }
.summary { color: #57606a; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem; }
thead th { background: #f6f8fa; border-bottom: 2px solid #d0d7de; white-space: nowrap; }
tbody.sentence { border-top: 2px solid #d0d7de; }
tr.attribution td { border-top: 1px solid #eaeef2; }
tr.sentence-header td { background: #fafbfc; }
tbody.misclassified tr.sentence-header td { background: #fff5f5; box-shadow: inset 4px 0 0 #cf222e; }
.sid { font-weight: 600; color: #57606a; margin-right: .5rem; }
.badge { display: inline-block; font-size: .75rem; font-weight: 600; padding: 0 .5rem; margin-left: .4rem;
  border-radius: 999px; white-space: nowrap; }
.badge.wrong { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.badge.truncated { background: #fff8c5; color: #7d4e00; border: 1px solid #d4a72c; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.label { white-space: nowrap; }
td.wrong { color: #a40e26; font-weight: 600; }
.prob { color: #57606a; font-weight: normal; }
.missing { color: #8c959f; }
.tokens { line-height: 2.1; }
mark.tok { color: #1f2328; padding: .1rem .2rem; margin: 0 1px; border-radius: 3px; }
mark.tok.special { color: #6e7781; font-size: .8em; }
.empty { color: #57606a; font-style: italic; }
"""


def score_to_color(score: float, scale: float) -> str:
    """Map an attribution score to a CSS background colour.

    Positive scores are green, negative ones red; the colour gets stronger (darker) as ``|score|``
    approaches ``scale`` and stays at its strongest beyond it. Zero, a non-positive scale and
    non-finite values give the neutral white :data:`NEUTRAL_COLOR`.

    Args:
        score: The attribution score.
        scale: The ``|score|`` that gets the strongest colour, usually the largest ``|score|`` shown.

    Returns:
        A CSS ``hsl(...)`` colour.

    Example:
        >>> score_to_color(0.5, 1.0)
        'hsl(120, 75%, 77.5%)'
    """
    if score == 0 or scale <= 0 or not (math.isfinite(score) and math.isfinite(scale)):
        return NEUTRAL_COLOR
    intensity = min(abs(score) / scale, 1.0)
    hue = _POSITIVE_HUE if score > 0 else _NEGATIVE_HUE
    lightness = 100.0 - (100.0 - _STRONGEST_LIGHTNESS) * intensity
    return f"hsl({hue}, {_SATURATION}%, {lightness:.1f}%)"


def render_html(
    explanations: Sequence[Explanation],
    *,
    title: str = "Token attributions",
    subtitle: str | None = None,
    level: str = "token",
) -> str:
    """Render explanations as one self-contained HTML page.

    One table row per sentence x attributed label, with the columns True Label, Predicted Label
    (with its probability; for a multi-label model the true and predicted label sets, ``movie|sports``,
    each predicted label with its probability), Attribution Label, Attribution Score (sum of the token scores) and Word
    Importance (the tokens coloured by score). The rows of one sentence follow a header row with
    its id and full text, flagged when the prediction is wrong or the text was truncated. All
    colours share one scale: the largest ``|score|`` on the page.

    Args:
        explanations: Explanations to show, in the order given.
        title: Page title. Defaults to ``"Token attributions"``.
        subtitle: Line under the title (model, run, epoch...), or ``None`` for none.
        level: ``"token"`` shows WordPiece tokens (special tokens included), ``"word"`` shows words
            with their pieces merged and special tokens left out. Defaults to ``"token"``.

    Returns:
        The HTML document as a string, without script or external reference.

    Raises:
        ConfigError: If ``level`` is not ``"token"`` or ``"word"`` (a ``ValueError``).

    Example:
        >>> render_html([], title="epoch 1").startswith("<!DOCTYPE html>")
        True
    """
    check_level(level)
    rows = [[(a, units(a, level)) for a in e.attributions] for e in explanations]
    scale = max((abs(u.score) for sentence in rows for _, us in sentence for u in us), default=0.0)
    n_wrong = sum(_is_wrong(e) for e in explanations)

    parts = page_start(title)
    if subtitle is not None:
        parts.append(f'<p class="subtitle">{escape(subtitle)}</p>')
    parts.append(legend(scale))
    methods = sorted({e.method for e in explanations if e.method})
    summary = f"{len(explanations)} sentences · {n_wrong} misclassified · level: {level}"
    if methods:
        summary += f" · method: {', '.join(methods)}"
    parts.append(f'<p class="summary">{escape(summary)}</p>')
    if not explanations:
        parts.append('<p class="empty">No sentences to show.</p>')
    else:
        parts.append("<table>")
        parts.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS) + "</tr></thead>")
        for explanation, sentence_rows in zip(explanations, rows, strict=True):
            parts.append(_sentence(explanation, sentence_rows, scale))
        parts.append("</table>")
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)


def _sentence(explanation: Explanation, rows: list[tuple[LabelAttribution, list[Unit]]], scale: float) -> str:
    wrong = _is_wrong(explanation)
    badges = ""
    if wrong:
        badges += f'<span class="badge wrong">{escape("misclassified")}</span>'
    unconverged = [a for a in explanation.attributions if a.converged is False]
    if unconverged:
        worst = max(unconverged, key=lambda a: abs(a.convergence_delta))
        note = (
            f"completeness error above tolerance: |delta| {abs(worst.convergence_delta):.3g} towards {worst.label}"
            + (f" after {worst.n_steps} steps" if worst.n_steps is not None else "")
        )
        badges += f'<span class="badge truncated">{escape(note)}</span>'
    if explanation.truncated:
        shown = len(explanation.attributions[0].tokens) if explanation.attributions else 0
        note = f"truncated: the text was cut to the model's maximum length ({shown} of {explanation.n_tokens} tokens)"
        badges += f'<span class="badge truncated">{escape(note)}</span>'
    header = (
        f'<tr class="sentence-header"><td colspan="{len(_COLUMNS)}">'
        f'<span class="sid">#{explanation.sentence_id}</span>'
        f'<span class="text">{escape(explanation.text)}</span>{badges}</td></tr>'
    )
    true_cell = '<span class="missing">—</span>' if explanation.true_label is None else escape(explanation.true_label)
    body = [
        '<tr class="attribution">'
        f'<td class="label">{true_cell}</td>'
        f'<td class="label{" wrong" if wrong else ""}">{_predicted(explanation)}</td>'
        f'<td class="label">{with_probability(attribution.label, attribution.probability)}</td>'
        f'<td class="num">{attribution.attribution_score:.2f}</td>'
        f'<td class="tokens">{"".join(mark(u, scale) for u in us)}</td>'
        "</tr>"
        for attribution, us in rows
    ]
    css_class = "sentence misclassified" if wrong else "sentence"
    return f'<tbody class="{css_class}">\n' + "\n".join([header, *body]) + "\n</tbody>"


def _predicted(explanation: Explanation) -> str:
    """The predicted label with its probability; a multi-label model's label set, each label with its own."""
    pairs = explanation.predicted_labels or ((explanation.predicted_label, explanation.predicted_probability),)
    return " | ".join(with_probability(label, p) for label, p in pairs)


def mark(unit: Unit, scale: float) -> str:
    css_class = "tok special" if unit.is_special else "tok"
    return (
        f'<mark class="{css_class}" style="background-color: {score_to_color(unit.score, scale)}" '
        f'title="{escape(repr(float(unit.score)))}">{escape(unit.text)}</mark>'
    )


def legend(scale: float) -> str:
    swatches = [
        ("negative", score_to_color(-scale, scale)),
        ("neutral", NEUTRAL_COLOR),
        ("positive", score_to_color(scale, scale)),
    ]
    items = "".join(f'<span class="swatch" style="background-color: {c}">{escape(name)}</span>' for name, c in swatches)
    note = (
        "Green pushes towards the attribution label, red away from it; colour strength is |score| "
        f"relative to the largest |score| on this page ({scale:.3g}). Hover a token for its exact score."
    )
    return f'<div class="legend"><strong>Legend</strong>{items}<span class="scale">{escape(note)}</span></div>'


def with_probability(label: str, probability: float) -> str:
    return f'{escape(label)} <span class="prob">({probability:.2f})</span>'


def _is_wrong(explanation: Explanation) -> bool:
    return explanation.true_label is not None and explanation.true_label != explanation.predicted_label


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def page_start(title: str, extra_style: str = "") -> list[str]:
    """The opening lines of a self-contained page, up to its heading: charset, inline style, title."""
    return [
        "<!DOCTYPE html>",
        '<html lang="ja">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}{extra_style}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
    ]
