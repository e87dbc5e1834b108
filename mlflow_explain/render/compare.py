"""A :class:`~mlflow_explain.compare.Comparison` as an HTML page and a matplotlib figure.

The page follows :mod:`mlflow_explain.render.html`: self-contained (no script, no external
reference), every text HTML-escaped, one colour scale for every token on the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from mlflow_explain.compare import REFERENCE, Comparison
from mlflow_explain.errors import ConfigError
from mlflow_explain.render._common import Unit
from mlflow_explain.render.html import escape, legend, mark, page_start, with_probability
from mlflow_explain.render.plot import FONT_FAMILY, pyplot

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["attribution_difference_figure", "render_comparison_html"]

MAX_SERIES = 4
"""Most versions :func:`attribution_difference_figure` draws per sentence (evenly spread, last included)."""

_COLUMNS = ("Version", "Predicted Label", "Attribution Label", "Agreement", "Tokens")
_LEVEL_NOTES = {
    "token": "",
    "word": "tokens differ between versions: compared word by word",
    "set": "tokens and words differ between versions: only the top-k token strings are compared",
}
_EXTRA_STYLE = """
.params { display: block; color: #57606a; font-size: .8rem; white-space: normal; max-width: 16rem; }
.agreement { font-size: .85rem; min-width: 9rem; }
td.tokens { min-width: 18rem; }
.note { color: #57606a; font-size: .85rem; margin-left: .5rem; }
table.overview { width: auto; margin: 0 0 1rem; }
table.overview td, table.overview th { border-bottom: 1px solid #eaeef2; }
"""


def render_comparison_html(comparison: Comparison, *, title: str | None = None) -> str:
    """Render a comparison as one self-contained HTML page.

    The page lists the compared versions (run, key parameters) and the mean agreement of each
    compared pair, then, for each sentence, one row per version: its name (and, for runs, its key
    parameters), its predicted label and probability, the label whose attribution is compared, its
    agreement with the reference (and with the previous step when comparing steps), and the compared
    tokens coloured on one scale shared by the whole page.

    Args:
        comparison: The comparison to show.
        title: Page title. Defaults to ``"Explanation comparison: <n> runs"`` (or steps).

    Returns:
        The HTML document as a string, without script or external reference.

    Example:
        >>> render_comparison_html(comparison).startswith("<!DOCTYPE html>")  # doctest: +SKIP
        True
    """
    title = title or f"Explanation comparison: {len(comparison.versions)} {comparison.kind}"
    scale = float(comparison.units.score.abs().max()) if len(comparison.units) else 0.0
    if not math.isfinite(scale):
        scale = 0.0
    subtitle = f"reference: {comparison.versions[0].name} · top-k overlap with k = {comparison.top_k}"
    if comparison.kind == "steps" and comparison.versions[0].run_id:
        subtitle += f" · run {comparison.versions[0].run_id}"
    if comparison.forced:
        subtitle += " · forced: the runs explained different samples; only sentences with the same text are compared"

    parts = [
        *page_start(title, _EXTRA_STYLE),
        f'<p class="subtitle">{escape(subtitle)}</p>',
        _versions_table(comparison),
        _summary_table(comparison),
        legend(scale),
        "<table>",
        "<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS) + "</tr></thead>",
    ]
    for number, rows in comparison.sentences.groupby("sentence", sort=True):
        parts.append(_sentence(comparison, int(number), rows.sort_values("version"), scale))
    parts.extend(["</table>", "</body>", "</html>", ""])
    return "\n".join(parts)


def attribution_difference_figure(comparison: Comparison, n_sentences: int = 3) -> Figure:
    """Draw, for the sentences that changed most, each unit's score minus the reference's.

    One panel per sentence (see :meth:`Comparison.most_changed`), units in sentence order, one bar
    colour per version; at most :data:`MAX_SERIES` versions per panel, evenly spread over the
    compared ones with the last included. Sentences whose versions could not be lined up are left out.

    Args:
        comparison: The comparison.
        n_sentences: Panels to draw. Defaults to 3.

    Returns:
        A new figure; the caller closes it.

    Raises:
        ConfigError: If ``n_sentences`` is below 1 (a ``ValueError``).

    Example:
        >>> png = figure_png(attribution_difference_figure(comparison))  # doctest: +SKIP
    """
    if n_sentences < 1:
        raise ConfigError(f"n_sentences must be at least 1; got {n_sentences}")
    chosen = comparison.most_changed(n_sentences)
    others = list(range(1, len(comparison.versions)))
    if len(others) > MAX_SERIES:
        others = [others[int(i)] for i in np.linspace(0, len(others) - 1, MAX_SERIES).round()]
    units = comparison.units
    heights = [units[(units.sentence == s) & (units.version == 0)].shape[0] for s in chosen]

    plt = pyplot()
    with plt.rc_context({"font.family": FONT_FAMILY}):
        fig = plt.figure(
            figsize=(7.5, max(2.5, sum(0.28 * len(others) * h + 1.2 for h in heights))), layout="constrained"
        )
        if not chosen:
            fig.text(0.5, 0.5, "no sentence could be lined up token by token or word by word", ha="center")
            return fig
        axes = fig.subplots(len(chosen), 1, squeeze=False, height_ratios=[max(h, 1) for h in heights]).ravel()
        colors = plt.get_cmap("tab10").colors
        for ax, number in zip(axes, chosen, strict=True):
            _difference_panel(ax, comparison, number, others, colors)
        n_others = len(comparison.versions) - 1
        shown = f" ({len(others)} of {n_others} versions shown)" if len(others) < n_others else ""
        fig.suptitle(
            f"Attribution minus the reference's ({comparison.versions[0].name}){shown}", fontsize=11, parse_math=False
        )
    return fig


def _difference_panel(ax, comparison: Comparison, number: int, others: list[int], colors) -> None:
    units = comparison.units[comparison.units.sentence == number]
    sentence = comparison.sentences[comparison.sentences.sentence == number].set_index("version")
    reference = units[units.version == 0].sort_values("unit")
    positions = np.arange(len(reference))
    height = 0.8 / len(others)
    for slot, version in enumerate(others):
        scores = units[units.version == version].sort_values("unit").score.to_numpy()
        ax.barh(
            positions - 0.4 + height * (slot + 0.5),
            scores - reference.score.to_numpy(),
            height=height,
            color=colors[slot % len(colors)],
            label=comparison.versions[version].name,
        )
    ax.set_yticks(positions, list(reference.text), parse_math=False)
    ax.invert_yaxis()
    ax.axvline(0.0, color="#57606a", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_xlabel("attribution difference")
    first = sentence.loc[0]
    text = first.text if len(first.text) <= 40 else first.text[:39] + "…"
    towards = (
        f"towards {first.compared_label}" if first.label_basis == REFERENCE else "towards each version's prediction"
    )
    ax.set_title(f"#{first.sentence_id} {text} ({towards}, {first.level}s)", fontsize=9, parse_math=False)
    ax.legend(fontsize=8, loc="best")


def _versions_table(comparison: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{escape(comparison.version_key(i))}</td><td>{escape(v.name)}</td>"
        f"<td>{escape(v.run_id)}</td><td>{escape(_params(v.params))}</td><td>{escape(_quality(v.metrics))}</td></tr>"
        for i, v in enumerate(comparison.versions)
    )
    return (
        '<table class="overview"><thead><tr><th>key</th><th>version</th><th>run</th><th>parameters</th>'
        "<th>explanation quality</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _quality(metrics) -> str:
    """Quality metrics in short form, e.g. ``comprehensiveness=0.62 · sufficiency=0.00``."""
    if not metrics:
        return "n/a"
    return " · ".join(f"{k.removeprefix('quality_')}={v:.2f}" for k, v in metrics.items())


def _summary_table(comparison: Comparison) -> str:
    head = ("pair", "sentences", "mean Spearman ρ", f"mean top-{comparison.top_k} overlap", "prediction changed")
    rows = "".join(
        f"<tr><td>{escape(row.name_a)} → {escape(row.name_b)}</td>"
        f'<td class="num">{row.n_sentences}</td><td class="num">{_number(row.spearman_mean)}</td>'
        f'<td class="num">{_number(row.top_k_overlap_mean)}</td>'
        f'<td class="num">{_number(row.prediction_changed_share, percent=True)}</td></tr>'
        for row in comparison.summary.itertuples()
    )
    return (
        '<table class="overview"><thead><tr>'
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _sentence(comparison: Comparison, number: int, rows: pd.DataFrame, scale: float) -> str:
    reference = rows.iloc[0]
    agreement = comparison.agreement[comparison.agreement.sentence == number]
    changed = bool(agreement[agreement.relation == REFERENCE].prediction_changed.any())
    badges = '<span class="badge wrong">prediction changed</span>' if changed else ""
    note = _LEVEL_NOTES[reference.level]
    if reference.label_basis != REFERENCE:
        note = "; ".join(filter(None, ["not every version attributed the reference's prediction", note]))
    header = (
        f'<tr class="sentence-header"><td colspan="{len(_COLUMNS)}">'
        f'<span class="sid">#{int(reference.sentence_id)}</span><span class="text">{escape(reference.text)}</span>'
        f"{badges}" + (f'<span class="note">{escape(note)}</span>' if note else "") + "</td></tr>"
    )
    units = comparison.units[comparison.units.sentence == number]
    body = []
    for row in rows.itertuples():
        version = comparison.versions[row.version]
        name = escape(version.name)
        if comparison.kind == "runs" and version.params:
            name += f'<span class="params">{escape(_params(version.params))}</span>'
        wrong = row.predicted_label != reference.predicted_label
        shown = units[units.version == row.version].sort_values("unit")
        marks = "".join(mark(Unit(str(u.text), float(u.score), False), scale) for u in shown.itertuples())
        body.append(
            '<tr class="attribution">'
            f'<td class="label">{name}</td>'
            f'<td class="label{" wrong" if wrong else ""}">'
            f"{with_probability(str(row.predicted_label), float(row.predicted_probability))}</td>"
            f'<td class="label">{escape(str(row.compared_label))}</td>'
            f'<td class="agreement">{_agreement_cell(comparison, agreement, row.version)}</td>'
            f'<td class="tokens">{marks}</td>'
            "</tr>"
        )
    css_class = "sentence misclassified" if changed else "sentence"
    return f'<tbody class="{css_class}">\n' + "\n".join([header, *body]) + "\n</tbody>"


def _agreement_cell(comparison: Comparison, agreement: pd.DataFrame, version: int) -> str:
    if version == 0:
        return "reference"
    lines = []
    for pair in agreement[agreement.version_b == version].itertuples():
        against = "reference" if pair.relation == REFERENCE else "previous"
        lines.append(
            f"vs {against}: ρ {_number(pair.spearman)} · top-{comparison.top_k} {_number(pair.top_k_overlap)}"
            f" · Δp {pair.probability_change:+.2f}"
        )
    return "<br>".join(escape(line) for line in lines)


def _params(params: Mapping[str, str]) -> str:
    return " · ".join(f"{k}={v}" for k, v in params.items())


def _number(value: float, *, percent: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.0%}" if percent else f"{value:.2f}"
