"""The renderings written into a local folder: tables, HTML pages, token strips and plots.

These writers touch the disk and nothing else; :mod:`mlflow_explain.tracking` logs the folder they
fill. Every file is written under a temporary name and renamed into place, so a reader (or an
upload) sees the old complete file or the new complete one, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_explain import artifacts
from mlflow_explain.errors import ConfigError
from mlflow_explain.explanation import Explanation
from mlflow_explain.render.bars import token_importance_image, top_tokens_image
from mlflow_explain.render.compare import attribution_difference_figure, render_comparison_html
from mlflow_explain.render.html import render_html
from mlflow_explain.render.plot import figure_png
from mlflow_explain.render.strip import image_png, sample_strips, token_strip
from mlflow_explain.render.table import attribution_table, sentence_table, spreadsheet_safe
from mlflow_explain.sampling import sentence_key

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_explain.compare import Comparison

__all__ = [
    "check_comparison_dir",
    "read_table",
    "write_comparison",
    "write_explanations",
    "write_step_tables",
    "write_strips",
]


def write_explanations(
    explanations: Sequence[Explanation],
    folder: str | Path,
    *,
    title: str = "Token attributions",
    subtitle: str | None = None,
    top_k: int = 10,
    quality: Sequence | None = None,
) -> dict[str, Path]:
    """Render explanations into ``folder``: tables, HTML pages, token strips and plots.

    Args:
        explanations: The explained sentences.
        folder: Destination folder (created if needed).
        title: Title of the HTML page.
        subtitle: Line under the title (run name, parameters).
        top_k: Tokens per class in the summary plot. Defaults to 10.
        quality: Per-sentence :class:`~mlflow_explain.quality.SentenceQuality` figures, written
            as the ``quality.json`` table and into the per-sentence table when given.

    Returns:
        Map from artifact name (a path relative to ``folder``) to the written path.

    Example:
        >>> written = write_explanations(explanations, "out", top_k=5)  # doctest: +SKIP
        >>> written["explanations.html"]  # doctest: +SKIP
        PosixPath('out/explanations.html')
    """
    import pandas as pd

    from mlflow_explain.quality import QUALITY_COLUMNS, quality_records

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = attribution_table(explanations)
    pages = {
        artifacts.TABLE_FILE: _table_json(table),
        artifacts.TABLE_CSV: spreadsheet_safe(table).to_csv(index=False),
        artifacts.SENTENCES_FILE: _table_json(sentence_table(explanations, quality)),
        artifacts.HTML_FILE: render_html(explanations, title=title, subtitle=subtitle),
        artifacts.WORDS_HTML_FILE: render_html(explanations, title=f"{title} (words)", subtitle=subtitle, level="word"),
    }
    if quality is not None:
        frame = pd.DataFrame(quality_records(quality), columns=list(QUALITY_COLUMNS))
        pages[artifacts.QUALITY_FILE] = _table_json(frame)
    written = {name: _write_text(folder / name, text) for name, text in pages.items()}
    written |= write_strips(explanations, folder)
    summary = sample_strips(explanations, keys=[sentence_key(e.text) for e in explanations])
    written[artifacts.SUMMARY_IMAGE] = _write_png(folder / artifacts.SUMMARY_IMAGE, image_png(summary))
    return written | _write_plots(explanations, folder, top_k)


def write_strips(explanations: Sequence[Explanation], folder: str | Path) -> dict[str, Path]:
    """Draw each sentence's token strip into ``folder/strips/<key>.png``.

    Args:
        explanations: The explained sentences (those without attributions are skipped).
        folder: Destination folder.

    Returns:
        Map from ``strips/<key>.png`` (:data:`~mlflow_explain.artifacts.STRIP_FILE`) to the written path.
    """
    (Path(folder) / artifacts.STRIPS_DIR).mkdir(parents=True, exist_ok=True)
    written = {}
    for explanation in explanations:
        if explanation.attributions:
            key = sentence_key(explanation.text)
            name = artifacts.STRIP_FILE.format(key=key)
            written[name] = _write_png(Path(folder) / name, image_png(token_strip(explanation, key=key)))
    return written


def write_step_tables(
    explanations: Sequence[Explanation],
    folder: str | Path,
    *,
    step: int,
    epoch: float,
    quality: Sequence | None = None,
):
    """Write one training step's attribution and per-sentence tables, with ``step`` and ``epoch`` columns.

    Args:
        explanations: The step's explanations.
        folder: Destination folder.
        step: The global training step.
        epoch: The epoch at that step.
        quality: The step's per-sentence quality figures, if computed.

    Returns:
        ``(paths, sentences)``: the two written files (``attributions.json``, ``sentences.json``, in
        ``log_table``'s format) and the per-sentence DataFrame.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        artifacts.TABLE_FILE: attribution_table(explanations),
        artifacts.SENTENCES_FILE: sentence_table(explanations, quality),
    }
    for table in tables.values():
        table.insert(0, "epoch", float(epoch))
        table.insert(0, "step", int(step))
    paths = [_write_text(folder / name, _table_json(table)) for name, table in tables.items()]
    return paths, tables[artifacts.SENTENCES_FILE]


def _write_plots(explanations: Sequence[Explanation], folder: Path, top_k: int) -> dict[str, Path]:
    (folder / artifacts.PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    written = {}
    for explanation in explanations:
        name = f"{artifacts.PLOTS_DIR}/sentence_{explanation.sentence_id:03d}.png"
        written[name] = _write_png(folder / name, image_png(token_importance_image(explanation)))
    summary = f"{artifacts.PLOTS_DIR}/{artifacts.SUMMARY_PLOT}"
    written[summary] = _write_png(folder / summary, image_png(top_tokens_image(explanations, top_k=top_k)))
    return written


def check_comparison_dir(folder: str | Path, overwrite: bool = False) -> None:
    """Refuse a ``compare --output-dir`` that would overwrite files unasked, before any work.

    A new folder, or one that holds none of :data:`~mlflow_explain.artifacts.COMPARISON_FILES`, is
    fine (other files in it are left alone). With ``overwrite`` those files are replaced; nothing
    else in the folder is ever touched.

    Args:
        folder: The folder.
        overwrite: Replace an earlier comparison's files.

    Raises:
        ConfigError: If ``folder`` is a file, or holds comparison files and ``overwrite`` is off.
    """
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output-dir {folder} is a file, not a folder; give a new or existing folder.")
    clashing = [name for name in artifacts.COMPARISON_FILES if (path / name).exists()]
    if clashing and not overwrite:
        raise ConfigError(
            f"--output-dir {folder} already holds {', '.join(clashing)} from an earlier comparison; give another "
            "folder, or --overwrite to replace those files (nothing else in the folder is touched)."
        )


def write_comparison(comparison: Comparison, folder: str | Path, *, n_sentences: int = 3) -> dict[str, Path]:
    """Render a comparison into ``folder``: the HTML page, the difference plot and the agreement table.

    Args:
        comparison: The comparison.
        folder: Destination folder (created if needed).
        n_sentences: Sentences in the difference plot. Defaults to 3.

    Returns:
        Map from artifact name (:data:`~mlflow_explain.artifacts.COMPARISON_HTML`, ...) to the written path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        artifacts.COMPARISON_HTML: _write_text(folder / artifacts.COMPARISON_HTML, render_comparison_html(comparison)),
        artifacts.AGREEMENT_TABLE: _write_text(folder / artifacts.AGREEMENT_TABLE, _table_json(comparison.agreement)),
        artifacts.COMPARISON_PLOT: _write_png(
            folder / artifacts.COMPARISON_PLOT,
            figure_png(attribution_difference_figure(comparison, n_sentences=n_sentences)),
        ),
    }


def read_table(path: Path) -> pd.DataFrame:
    """Read back a table these writers wrote (``mlflow.log_table``'s JSON format).

    Args:
        path: An ``attributions.json``, ``sentences.json``, ``quality.json`` or ``agreement.json`` file.

    Returns:
        The table.
    """
    import pandas as pd

    payload = json.loads(path.read_text("utf-8"))
    return pd.DataFrame(payload["data"], columns=payload["columns"])


def _table_json(frame: pd.DataFrame) -> str:
    return json.dumps(
        {
            "columns": list(frame.columns),
            "data": json.loads(frame.to_json(orient="values", force_ascii=False)),
        },
        ensure_ascii=False,
    )


def _write_text(path: Path, text: str) -> Path:
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _write_png(path: Path, png: bytes) -> Path:
    with _atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return path


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it into place on success, remove it on error.

    A reader (or an upload) sees the old complete file or the new complete one, never half of
    one, and a failed write leaves no temporary file behind.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
