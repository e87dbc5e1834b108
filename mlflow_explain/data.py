"""Loading labelled text data sets into plain records.

Supported sources (see :func:`load_dataset`):

* ``"embedded"``: Japanese headlines written for this project, nine livedoor categories, fixed split;
* CSV / TSV / JSONL files with configurable text and label columns;
* a folder in the livedoor news corpus layout (``text/<category>/<category>-<id>.txt``);
* a folder written by ``datasets.Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``;
* a Hugging Face Hub data set name.

Files are decoded with ``DataConfig.encoding``: ``auto`` detects UTF-8 (with or without a byte order mark),
CP932 and EUC-JP in each file (see :mod:`mlflow_explain.encoding`).

Rows whose text is empty or missing are skipped with a warning that gives their count; every
other problem raises :class:`~mlflow_explain.errors.DataError` naming the source and what to do.
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlflow_explain.config import EMBEDDED_DATA, LABEL_SET_SEPARATOR, MAX_TEXT_CHARACTERS, DataConfig
from mlflow_explain.encoding import AUTO, decode
from mlflow_explain.errors import DataError

__all__ = ["Example", "TextDataset", "join_labels", "load_dataset", "stratified_split"]

logger = logging.getLogger(__name__)

TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}
FILE_SUFFIXES = {*TABULAR_SUFFIXES, ".txt", ".parquet", ".arrow", ".xlsx", ".xls"}
"""Suffixes that mark a ``data`` value as a (missing) file rather than a Hub name."""
TRAIN_SPLITS = ("train",)
EVAL_SPLITS = ("eval", "evaluation", "validation", "valid", "dev", "test")
LIVEDOOR_SKIPPED = {"LICENSE.txt", "README.txt", "CHANGES.txt"}
SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class Example:
    """One labelled text.

    A single-label example has one ``label``; a multi-label example (:meth:`multi`) has a label set
    ``labels``, and its ``label`` is the set's name (:func:`join_labels`: ``"movie|sports"``), which the
    split, the sample and the tables group and show it by.

    Args:
        text: The text.
        label: Its label name (the label set's name for a multi-label example), or ``None`` when unknown.
        labels: A multi-label example's labels, sorted; empty for a single-label example. Defaults to ``()``.

    Example:
        >>> Example.multi("巨人が映画に", ["sports", "movie"]).label
        'movie|sports'
    """

    text: str
    label: str | None
    labels: tuple[str, ...] = ()

    @classmethod
    def multi(cls, text: str, labels: Iterable[str]) -> Example:
        """A multi-label example: ``labels`` sorted and without repeats, ``label`` their name.

        Args:
            text: The text.
            labels: Its labels (one or more).

        Returns:
            The example.
        """
        ordered = tuple(sorted(set(labels)))
        return cls(text, join_labels(ordered), ordered)

    @property
    def label_set(self) -> tuple[str, ...]:
        """The example's labels: its label set, or its one label (none when the label is unknown)."""
        if self.labels:
            return self.labels
        return () if self.label is None else (self.label,)


def join_labels(labels: Iterable[str]) -> str:
    """The name of a label set: its labels sorted and joined with :data:`~mlflow_explain.config.LABEL_SET_SEPARATOR`.

    Equal sets get equal names, so a prediction is right (an exact match) when its name is the true one.

    Args:
        labels: The labels.

    Returns:
        e.g. ``"movie|sports"``.
    """
    return LABEL_SET_SEPARATOR.join(sorted(labels))


@dataclass(frozen=True)
class TextDataset:
    """A data set split into training and evaluation examples.

    Args:
        train: Training examples.
        eval: Evaluation examples.
        labels: Label names, sorted; their position is the model's class index.
        source: Where the data came from, for messages and run parameters.
        encoding: The encoding its files were read with (``utf-8``, ``cp932``, ...; comma-separated when
            files differ). Data sets that are not text files (embedded, Hugging Face) are ``utf-8``.
            Defaults to ``"utf-8"``.
        multi_label: Whether its examples have label sets (:meth:`Example.multi`); ``labels`` are then the
            labels that occur in them. Defaults to False.
    """

    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    labels: tuple[str, ...]
    source: str
    encoding: str = "utf-8"
    multi_label: bool = False

    @property
    def label2id(self) -> dict[str, int]:
        """Map from label name to class index."""
        return {label: i for i, label in enumerate(self.labels)}


def load_dataset(config: DataConfig) -> TextDataset:
    """Load and validate the data set that ``config`` describes.

    The evaluation split is, in this order of precedence: the file ``config.eval_data`` (and then
    every example of ``config.data`` is used for training), the ``split`` column or the data set
    split of ``config.data``, or a share ``config.eval_fraction`` of each label drawn with
    ``config.sample_seed`` (see :func:`stratified_split`).

    Args:
        config: Where the data is and how to read it.

    Returns:
        The data set with a training and an evaluation split.

    Raises:
        DataError: If the data cannot be read or does not fit a classification task.

    Example:
        >>> ds = load_dataset(DataConfig())
        >>> len(ds.labels)
        9
    """
    source = str(config.data)
    rows, encoding = _read_source(source, config)
    eval_rows: list[dict] = []
    if config.eval_data:
        eval_path = Path(config.eval_data).expanduser()
        if not eval_path.is_file():
            raise DataError(f"{config.eval_data}: no such file. Check the path given as `eval_data`.")
        eval_rows, eval_encoding = _read_table(eval_path, config)
        encoding = _encoding_used([encoding, eval_encoding])
    reading = _label_reading([(source, rows), (config.eval_data, eval_rows)], config)
    cleaned = _clean(rows, source, reading)
    if config.eval_data:
        train = [example for _, example, _ in cleaned]
        evaluation = [example for _, example, _ in _clean(eval_rows, config.eval_data, reading)]
        return _validate(train, evaluation, source, encoding, reading.multi, eval_source=config.eval_data)
    if any(_has_split(split) for _, _, split in cleaned):
        train, evaluation = _split_by_column(cleaned, source)
    else:
        train, evaluation = stratified_split(
            [example for _, example, _ in cleaned], config.eval_fraction, config.sample_seed
        )
    return _validate(train, evaluation, source, encoding, reading.multi)


def stratified_split(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split examples into train and evaluation sets, stratified by label.

    Each label keeps at least one training example; a label with two or more examples gets at
    least one evaluation example. Multi-label examples are stratified by label set (:attr:`Example.label`);
    of the label sets that occur once, a share ``eval_fraction`` goes to evaluation too, each only while
    all of its labels keep a training example, so every label is still learned from.

    Args:
        examples: Examples to split.
        eval_fraction: Share of each label's examples that goes to evaluation.
        seed: Seed of the shuffle; the same seed gives the same split.

    Returns:
        The training and evaluation examples, each in the input's order.

    Example:
        >>> xs = [Example(str(i), "ab"[i % 2]) for i in range(10)]
        >>> train, evaluation = stratified_split(xs, eval_fraction=0.2, seed=0)
        >>> len(train), sorted(e.label for e in evaluation)
        (8, ['a', 'b'])
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_label[example.label].append(i)
    rng = random.Random(seed)
    eval_ids: set[int] = set()
    for label in sorted(by_label):
        ids = by_label[label][:]
        rng.shuffle(ids)
        n_eval = min(len(ids) - 1, max(1, round(len(ids) * eval_fraction))) if len(ids) > 1 else 0
        eval_ids.update(ids[:n_eval])
    if any(e.labels for e in examples):
        singles = [ids[0] for ids in by_label.values() if len(ids) == 1]
        eval_ids |= _spread_single_sets(examples, singles, eval_ids, eval_fraction, seed)
    train = [e for i, e in enumerate(examples) if i not in eval_ids]
    evaluation = [e for i, e in enumerate(examples) if i in eval_ids]
    return train, evaluation


def _spread_single_sets(
    examples: Sequence[Example], singles: Sequence[int], eval_ids: set[int], eval_fraction: float, seed: int
) -> set[int]:
    """Of the examples whose label set occurs once, the ones to hold out: a share ``eval_fraction``, each only
    while every one of its labels keeps another training example. Its own random order, so that the
    single-label split draws exactly what it always drew."""
    in_training = Counter(label for i, e in enumerate(examples) if i not in eval_ids for label in e.label_set)
    order = sorted(singles)
    random.Random(f"{seed}:single label sets").shuffle(order)
    wanted = round(len(order) * eval_fraction)
    held_out: set[int] = set()
    for i in order:
        if len(held_out) == wanted:
            break
        if all(in_training[label] > 1 for label in examples[i].label_set):
            held_out.add(i)
            in_training.subtract(examples[i].label_set)
    return held_out


# --- sources: each returns rows {"text", "label", "split"} ------------------------------------
# Readers of files also return the encoding used: None when every file was ASCII read with `auto`.


def _read_source(source: str, config: DataConfig) -> tuple[list[dict], str | None]:
    if source == EMBEDDED_DATA:
        return _read_embedded(), "utf-8"
    path = Path(source).expanduser()
    if path.is_file():
        return _read_table(path, config)
    if path.is_dir():
        return _read_folder(path, config)
    if _looks_like_path(source):
        raise DataError(f"{source}: no such file or folder. Check the path given as `data`.")
    return _read_hub(source, config), "utf-8"


def _read_embedded() -> list[dict]:
    text = resources.files("mlflow_explain").joinpath("resources/headlines.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read_table(path: Path, config: DataConfig) -> tuple[list[dict], str | None]:
    """Read a CSV / TSV / JSONL / JSON file into rows with ``text``, ``label`` and ``split``."""
    suffix = path.suffix.lower()
    if suffix not in TABULAR_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'}; use one of "
            f"{', '.join(sorted(TABULAR_SUFFIXES))}, a livedoor-layout folder or a save_to_disk folder."
        )
    text, encoding = _read_text(path, config.encoding)
    if not text.strip():
        raise DataError(f"{path}: the file is empty.")
    if suffix in (".jsonl", ".json"):
        columns = _json_columns(path, text, lines=suffix == ".jsonl")
    else:
        columns = _delimited_columns(path, text, TABULAR_SUFFIXES[suffix])
    return _columns_to_rows(columns, config, str(path)), encoding


def _read_text(path: Path, encoding: str) -> tuple[str, str | None]:
    """The text of a file and the encoding used; None for ASCII read with ``auto`` (any encoding reads it alike)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err}).") from err
    text, used = decode(raw, encoding, source=str(path))
    return text, None if encoding == AUTO and raw.isascii() else used


def _encoding_used(encodings: Iterable[str | None]) -> str | None:
    """The encodings used by the files of a data set, comma-separated in order of first use."""
    return ",".join(dict.fromkeys(e for e in encodings if e)) or None


def _delimited_columns(path: Path, text: str, sep: str) -> dict[str, list]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except ValueError as err:  # pandas' ParserError is a ValueError
        kind = "TSV" if sep == "\t" else "CSV"
        raise DataError(f"{path}: cannot parse the file as {kind}: {str(err).strip()}") from err
    return frame.to_dict(orient="list")


def _json_columns(path: Path, text: str, lines: bool) -> dict[str, list]:
    """Parse JSON Lines (one object per line) or a JSON array of objects into columns."""
    if lines:
        numbered = [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        records = [_json_object(path, _json_value(path, line, where), where) for where, line in numbered]
    else:
        value = _json_value(path, text, "the file")
        if not isinstance(value, list):
            raise DataError(f"{path}: expected a JSON array of objects, found a JSON {type(value).__name__}.")
        records = [_json_object(path, item, f"item {n}") for n, item in enumerate(value, 1)]
    keys = list(dict.fromkeys(key for record in records for key in record))
    return {key: [record.get(key) for record in records] for key in keys}


def _json_value(path: Path, text: str, where: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: {where} is not valid JSON ({err}).") from err


def _json_object(path: Path, value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(
            f"{path}: {where} is a JSON {type(value).__name__}, not an object; "
            'write one object per row, such as {"text": "...", "label": "..."}.'
        )
    return value


def _columns_to_rows(columns: dict[str, list], config: DataConfig, source: str) -> list[dict]:
    missing = [c for c in (config.text_column, config.label_column) if c not in columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; the columns are "
            f"{', '.join(map(repr, columns)) or '(none)'}. Set text_column / label_column to match."
        )
    texts, labels = columns[config.text_column], columns[config.label_column]
    splits = columns.get(SPLIT_COLUMN, [None] * len(texts))
    return [{"text": t, "label": lab, "split": s} for t, lab, s in zip(texts, labels, splits, strict=True)]


def _read_folder(path: Path, config: DataConfig) -> tuple[list[dict], str | None]:
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        return _read_saved_dataset(path, config), "utf-8"
    root = path / "text" if (path / "text").is_dir() else path
    categories = sorted(p for p in _listing(root, "folder") if p.is_dir() and not p.name.startswith("."))
    if not categories:
        raise DataError(
            f"{path}: not a data set folder. Expected the livedoor layout text/<category>/<category>-<id>.txt "
            "or a folder written by datasets' save_to_disk."
        )
    files = {category: _livedoor_files(category) for category in categories}
    empty = [category.name for category, found in files.items() if not found]
    if empty and len(empty) < len(categories):
        logger.warning("%s: the folder(s) %s hold no .txt articles; no label is made of them.", path, ", ".join(empty))
    articles = [
        (category.name, _read_text(file, config.encoding)) for category, found in files.items() for file in found
    ]
    if not articles:
        raise DataError(
            f"{path}: the category folders ({', '.join(c.name for c in categories)}) hold no .txt articles."
        )
    rows = [
        {"text": _livedoor_text(text, config.text_field), "label": label, "split": None}
        for label, (text, _) in articles
    ]
    return rows, _encoding_used(encoding for _, (_, encoding) in articles)


def _listing(folder: Path, kind: str) -> list[Path]:
    """The entries of a data folder; an unreadable one stops the job (a silently missing category is a lost label)."""
    try:
        return list(folder.iterdir())
    except OSError as err:
        reason = err.strerror or str(err)
        if kind == "category folder":
            raise DataError(
                f"{folder}: cannot read the category folder ({reason}); fix its permissions or move it out of the "
                "data folder, so that no label is dropped silently."
            ) from err
        raise DataError(f"{folder}: cannot read the {kind} ({reason}); check its permissions.") from err


def _livedoor_files(category: Path) -> list[Path]:
    """A category's articles: its ``.txt`` files, less the corpus' licence and readme files."""
    return sorted(
        file
        for file in _listing(category, "category folder")
        if file.suffix == ".txt" and file.name not in LIVEDOOR_SKIPPED and not file.is_dir()
    )


def _livedoor_text(article: str, field: str) -> str:
    lines = article.splitlines()
    # Line 1 is the URL, line 2 the date, line 3 the title and the rest the body.
    if field == "title":
        return lines[2].strip() if len(lines) > 2 else ""
    return "\n".join(line for line in lines[3:] if line.strip()).strip()


def _read_saved_dataset(path: Path, config: DataConfig) -> list[dict]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot load the saved data set: {err}") from err
    except IndexError as err:  # what datasets raises for a saved data set (or split) without rows
        raise DataError(
            f"{path}: the data set is empty: the saved data set (or one of its splits) has no rows."
        ) from err
    return _from_hf(loaded, config, str(path))


def _read_hub(name: str, config: DataConfig) -> list[dict]:
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:  # datasets raises many unrelated types for "not found" and "offline"
        raise DataError(
            f"{name!r} is neither a file, a folder nor a data set that could be loaded from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). Check the name, or download it and pass the folder."
        ) from err
    return _from_hf(loaded, config, name)


def _from_hf(loaded, config: DataConfig, source: str) -> list[dict]:
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return _hf_rows(loaded, config, source)
    train_name = next((s for s in TRAIN_SPLITS if s in loaded), None)
    eval_name = next((s for s in EVAL_SPLITS if s in loaded), None)
    if train_name is None:
        raise DataError(f"{source}: no 'train' split; the splits are {', '.join(loaded) or '(none)'}.")
    if eval_name is None:
        return _hf_rows(loaded[train_name], config, source)
    return _hf_rows(loaded[train_name], config, source, split="train") + _hf_rows(
        loaded[eval_name], config, source, split="eval"
    )


def _hf_rows(dataset, config: DataConfig, source: str, split: str | None = None) -> list[dict]:
    rows = _columns_to_rows(dataset.to_dict(), config, source)
    feature = dataset.features.get(config.label_column)
    names = getattr(feature, "names", None)  # ClassLabel columns hold ints; use their names
    names_in_list = getattr(getattr(feature, "feature", None), "names", None)  # a list of ClassLabel: label sets
    for row in rows:
        if names is not None and isinstance(row["label"], int):
            # ClassLabel marks unlabelled rows (such as hidden test labels) with -1.
            row["label"] = names[row["label"]] if 0 <= row["label"] < len(names) else None
        elif names_in_list is not None and isinstance(row["label"], list):
            row["label"] = [names_in_list[i] if 0 <= i < len(names_in_list) else None for i in row["label"]]
        if split is not None:
            row["split"] = split
    return rows


# --- cleaning and validation ---------------------------------------------------------------------


OTHER_SEPARATORS = ("|", ";", ",", "、")
"""Characters that often separate the labels of a label set; a label that holds one of them where the
configured ``label_separator`` is another gets a hint."""


@dataclass(frozen=True)
class _LabelReading:
    """How label cells become labels: each whole (single-label), or as label sets split on ``separator``."""

    multi: bool
    separator: str

    def example(self, text: str, label: object, where: str) -> Example:
        if not self.multi:
            return Example(text=text, label=str(label).strip())
        return Example.multi(text, self.label_set(label, where))

    def label_set(self, value: object, where: str) -> list[str]:
        if isinstance(value, (list, tuple)):
            odd = [x for x in value if isinstance(x, bool) or not isinstance(x, (str, int))]
            if odd:
                raise DataError(
                    f"{where}: the label list {value!r} holds {odd[0]!r}, not a label name; write the labels as "
                    'strings, such as ["sports", "movie"].'
                )
            labels = [str(x).strip() for x in value]
        else:
            labels = [x.strip() for x in str(value).split(self.separator)]
        if not any(labels):
            raise DataError(
                f"{where} has an empty label set ({value!r}); give each text at least one label, or drop the row."
            )
        if not all(labels):
            raise DataError(
                f"{where}: the label set {value!r} has an empty label; separate the labels by one "
                f"{self.separator!r} (label_separator), with none at the start or the end."
            )
        return labels


def _label_reading(sources: Sequence[tuple[str | None, Sequence[dict]]], config: DataConfig) -> _LabelReading:
    """Whether the data holds label sets (``config.multi_label``, or found in it for ``auto``), checked.

    Raises:
        DataError: If ``multi_label`` is false and a label is a list, or it is true and no label cell holds
            the separator while labels hold another one.
    """
    separator = config.label_separator
    cells = [(source, n, row.get("label")) for source, rows in sources for n, row in enumerate(rows, start=1)]
    listed = next((cell for cell in cells if isinstance(cell[2], (list, tuple))), None)
    if config.multi_label is False:
        if listed is not None:
            raise DataError(
                f"{listed[0]}: row {listed[1]} holds a list of labels ({listed[2]!r}) but multi_label is false; "
                "set multi_label to auto or true to read label sets."
            )
        return _LabelReading(False, separator)
    found = listed or next((c for c in cells if isinstance(c[2], str) and separator in c[2]), None)
    other = None if found else _other_separator(cells, separator)
    if config.multi_label is None and found:
        logger.info(
            "%s: row %d holds the label set %r: reading label sets (multi-label classification); set multi_label "
            "false to read each label whole.",
            *found,
        )
    elif config.multi_label is None and other:
        logger.warning(
            "%s: labels such as %r (row %d) hold %r; each is read as one label. If they are label sets, set "
            "label_separator to %r.",
            other[0],
            other[2],
            other[1],
            other[3],
            other[3],
        )
    elif config.multi_label and other:
        raise DataError(
            f"{other[0]}: multi_label is true but no label cell holds the label_separator {separator!r}, while labels "
            f"such as {other[2]!r} (row {other[1]}) hold {other[3]!r}; set label_separator to {other[3]!r}."
        )
    return _LabelReading(bool(config.multi_label or found), separator)


def _other_separator(cells, separator: str) -> tuple | None:
    """The first label cell that holds a usual label separator other than ``separator``: (source, row, cell, it)."""
    others = [c for c in OTHER_SEPARATORS if c != separator]
    for source, number, value in cells:
        hit = next((c for c in others if isinstance(value, str) and c in value), None)
        if hit:
            return source, number, value, hit
    return None


def _clean(rows: Sequence[dict], source: str, reading: _LabelReading) -> list[tuple[int, Example, object]]:
    """Turn rows into ``(row number, example, split value)``; rows without text are skipped with a warning.

    Raises:
        DataError: If the data set has no rows, no row has text, a text is not a string or a row
            with text has no label.
    """
    if not rows:
        raise DataError(f"{source}: the data set is empty: it has no rows.")
    out: list[tuple[int, Example, object]] = []
    skipped = 0
    for number, row in enumerate(rows, start=1):
        text, label = row.get("text"), row.get("label")
        if _is_missing(text) or (isinstance(text, str) and not text.strip()):
            skipped += 1
            continue
        if not isinstance(text, str):
            raise DataError(
                f"{source}: row {number}: the text is {text!r} of type {type(text).__name__}, not a string. "
                "Check that text_column names the column with the sentences."
            )
        if _is_missing(label) or not str(label).strip():
            raise DataError(f"{source}: row {number} has text but no label. Fill in the label or drop the row.")
        if len(text) > MAX_TEXT_CHARACTERS:
            raise DataError(
                f"{source}: row {number} holds a text of {len(text)} characters, more than the {MAX_TEXT_CHARACTERS} "
                "a text may have (the model reads only its first max_length tokens); shorten it or split it into rows."
            )
        out.append((number, reading.example(text, label, f"{source}: row {number}"), row.get("split")))
    if skipped:
        logger.warning("%s: skipped %d row(s) with empty or missing text.", source, skipped)
    if not out:
        raise DataError(f"{source}: none of the {len(rows)} row(s) has any text.")
    return out


def _split_by_column(
    cleaned: Iterable[tuple[int, Example, object]], source: str
) -> tuple[list[Example], list[Example]]:
    train: list[Example] = []
    evaluation: list[Example] = []
    for number, example, value in cleaned:
        split = str(value).strip().lower() if _has_split(value) else ""
        if split in TRAIN_SPLITS:
            train.append(example)
        elif split in EVAL_SPLITS:
            evaluation.append(example)
        elif not split:
            raise DataError(
                f"{source}: row {number} has no value in column {SPLIT_COLUMN!r} while other rows do; "
                "fill it in for every row, or drop the column to draw a stratified split."
            )
        else:
            raise DataError(
                f"{source}: row {number} has the unknown split {value!r} in column {SPLIT_COLUMN!r}; "
                f"use 'train' or one of {', '.join(EVAL_SPLITS)}."
            )
    return train, evaluation


def _validate(
    train: Sequence[Example],
    evaluation: Sequence[Example],
    source: str,
    encoding: str | None,
    multi_label: bool,
    eval_source: str | None = None,
) -> TextDataset:
    eval_source = eval_source or source
    if not train:
        raise DataError(f"{source}: the training split is empty.")
    if not evaluation:
        raise DataError(
            f"{eval_source}: the evaluation split is empty. Add rows to it, or use more data so a share can be "
            "held out."
        )
    counts = Counter(label for e in train for label in e.label_set)
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(f"{source}: every training example has the label {only!r}; a classifier needs two or more.")
    unseen = sorted({label for e in evaluation for label in e.label_set} - set(counts))
    if unseen:
        raise DataError(
            f"{eval_source}: evaluation labels never seen in training: {', '.join(map(repr, unseen))}. "
            "Add training examples for them or remove them from the evaluation split."
        )
    return TextDataset(
        train=tuple(train),
        eval=tuple(evaluation),
        labels=tuple(sorted(counts)),
        source=source,
        encoding=encoding or "utf-8",  # None: only ASCII files, read with `auto`
        multi_label=multi_label,
    )


def _is_missing(value: object) -> bool:
    """Whether a cell is empty: ``None`` or a float NaN (pandas' and pyarrow's missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _has_split(value: object) -> bool:
    return not _is_missing(value) and bool(str(value).strip())


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "/", "~"))
        or Path(source).suffix.lower() in FILE_SUFFIXES
        or "\\" in source
        or source.count("/") > 1
    )
