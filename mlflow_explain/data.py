"""Loading labelled text data sets into plain records.

Supported sources (see :func:`load_dataset`):

* ``"embedded"``: Japanese headlines written for this project, nine livedoor categories, fixed split;
* CSV / TSV / JSONL files with configurable text and label columns;
* a folder in the livedoor news corpus layout (``text/<category>/<category>-<id>.txt``);
* a folder written by ``datasets.Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``;
* a Hugging Face Hub data set name.

Rows whose text is empty or missing are skipped with a warning that gives their count; every
other problem raises :class:`~mlflow_explain.errors.DataError` naming the source and what to do.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlflow_explain.config import EMBEDDED_DATA, DataConfig
from mlflow_explain.errors import DataError

__all__ = ["Example", "TextDataset", "load_dataset", "stratified_split"]

logger = logging.getLogger(__name__)

TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}
TRAIN_SPLITS = ("train",)
EVAL_SPLITS = ("eval", "evaluation", "validation", "valid", "dev", "test")
LIVEDOOR_SKIPPED = {"LICENSE.txt", "README.txt", "CHANGES.txt"}
SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class Example:
    """One labelled text.

    Args:
        text: The text.
        label: Its label name.
    """

    text: str
    label: str


@dataclass(frozen=True)
class TextDataset:
    """A data set split into training and evaluation examples.

    Args:
        train: Training examples.
        eval: Evaluation examples.
        labels: Label names, sorted; their position is the model's class index.
        source: Where the data came from, for messages and run parameters.
    """

    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    labels: tuple[str, ...]
    source: str

    @property
    def label2id(self) -> dict[str, int]:
        """Map from label name to class index."""
        return {label: i for i, label in enumerate(self.labels)}


def load_dataset(config: DataConfig) -> TextDataset:
    """Load and validate the data set that ``config`` describes.

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
    if source == EMBEDDED_DATA:
        train, evaluation = _split_by_column(_read_embedded(), source)
    else:
        path = Path(source).expanduser()
        if path.is_file():
            train, evaluation = _from_records(_read_table(path, config), config, source)
        elif path.is_dir():
            train, evaluation = _read_folder(path, config)
        elif _looks_like_path(source):
            raise DataError(f"{source}: no such file or folder. Check the path given as `data`.")
        else:
            train, evaluation = _read_hub(source, config)
    if config.eval_data:
        eval_path = Path(config.eval_data).expanduser()
        if not eval_path.is_file():
            raise DataError(f"{config.eval_data}: no such file. Check the path given as `eval_data`.")
        train = train + evaluation
        evaluation = _clean(_read_table(eval_path, config), config.eval_data)
        evaluation = [e for e in evaluation if e is not None]
    return _validate(train, evaluation, source)


def stratified_split(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split examples into train and evaluation sets, stratified by label.

    Each label keeps at least one training example; a label with two or more examples gets at
    least one evaluation example.

    Args:
        examples: Examples to split.
        eval_fraction: Share of each label's examples that goes to evaluation.
        seed: Seed of the shuffle; the same seed gives the same split.

    Returns:
        The training and evaluation examples, each in the input's order.
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
    train = [e for i, e in enumerate(examples) if i not in eval_ids]
    evaluation = [e for i, e in enumerate(examples) if i in eval_ids]
    return train, evaluation


# --- sources -------------------------------------------------------------------------------------


def _read_embedded() -> list[dict]:
    text = resources.files("mlflow_explain").joinpath("resources/headlines.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read_table(path: Path, config: DataConfig) -> list[dict]:
    """Read a CSV / TSV / JSONL file into rows with ``text``, ``label`` and maybe ``split``."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABULAR_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'}; use one of "
            f"{', '.join(sorted(TABULAR_SUFFIXES))}, a livedoor-layout folder or a save_to_disk folder."
        )
    try:
        raw = path.read_bytes()
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: bytes at offset {err.start} are not valid UTF-8 ({err.reason}). "
            "Save the file as UTF-8 (for example with `iconv -f SHIFT_JIS -t UTF-8`)."
        ) from err
    if not raw.strip():
        raise DataError(f"{path}: the file is empty.")
    try:
        if suffix in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False, encoding="utf-8")
        else:
            frame = pd.read_csv(
                path, sep=TABULAR_SUFFIXES[suffix], dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
    except ValueError as err:
        raise DataError(f"{path}: cannot parse the file as {suffix[1:].upper()}: {err}") from err
    return _columns_to_rows(frame.to_dict(orient="list"), config, str(path))


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


def _read_folder(path: Path, config: DataConfig) -> tuple[list[Example], list[Example]]:
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        return _read_saved_dataset(path, config)
    root = path / "text" if (path / "text").is_dir() else path
    categories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not categories:
        raise DataError(
            f"{path}: not a data set folder. Expected the livedoor layout text/<category>/<category>-<id>.txt "
            "or a folder written by datasets' save_to_disk."
        )
    rows = []
    for category in categories:
        for file in sorted(category.glob("*.txt")):
            if file.name in LIVEDOOR_SKIPPED:
                continue
            rows.append({"text": _livedoor_text(file, config.text_field), "label": category.name, "split": None})
    if not rows:
        raise DataError(f"{path}: the category folders hold no .txt articles.")
    return _from_records(rows, config, str(path))


def _livedoor_text(file: Path, field: str) -> str:
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: bytes at offset {err.start} are not valid UTF-8 ({err.reason}).") from err
    # Line 1 is the URL, line 2 the date, line 3 the title and the rest the body.
    if field == "title":
        return lines[2].strip() if len(lines) > 2 else ""
    return "\n".join(line for line in lines[3:] if line.strip()).strip()


def _read_saved_dataset(path: Path, config: DataConfig) -> tuple[list[Example], list[Example]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: cannot load the saved data set: {err}") from err
    return _from_hf(loaded, config, str(path))


def _read_hub(name: str, config: DataConfig) -> tuple[list[Example], list[Example]]:
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:  # datasets raises many unrelated types for "not found" and "offline"
        raise DataError(
            f"{name!r} is neither a file, a folder nor a data set that could be loaded from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). Check the name, or download it and pass the folder."
        ) from err
    return _from_hf(loaded, config, name)


def _from_hf(loaded, config: DataConfig, source: str) -> tuple[list[Example], list[Example]]:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        train_name = next((s for s in TRAIN_SPLITS if s in loaded), None)
        eval_name = next((s for s in EVAL_SPLITS if s in loaded), None)
        if train_name is None:
            raise DataError(f"{source}: no 'train' split; the splits are {', '.join(loaded)}.")
        if eval_name is None:
            rows = _hf_rows(loaded[train_name], config, source)
            return _from_records(rows, config, source)
        train_rows = _hf_rows(loaded[train_name], config, source, split="train")
        eval_rows = _hf_rows(loaded[eval_name], config, source, split="eval")
        return _split_by_column(train_rows + eval_rows, source)
    return _from_records(_hf_rows(loaded, config, source), config, source)


def _hf_rows(dataset, config: DataConfig, source: str, split: str | None = None) -> list[dict]:
    rows = _columns_to_rows(dataset.to_dict(), config, source)
    feature = dataset.features.get(config.label_column)
    names = getattr(feature, "names", None)  # ClassLabel columns hold ints; use their names
    for row in rows:
        if names is not None and isinstance(row["label"], int) and 0 <= row["label"] < len(names):
            row["label"] = names[row["label"]]
        if split is not None:
            row["split"] = split
    return rows


# --- cleaning and validation ---------------------------------------------------------------------


def _from_records(rows: list[dict], config: DataConfig, source: str) -> tuple[list[Example], list[Example]]:
    if any(r.get("split") not in (None, "") for r in rows):
        return _split_by_column(rows, source)
    examples = [e for e in _clean(rows, source) if e is not None]
    if not examples:
        raise DataError(f"{source}: the data set has no rows with text.")
    return stratified_split(examples, config.eval_fraction, config.seed)


def _split_by_column(rows: list[dict], source: str) -> tuple[list[Example], list[Example]]:
    train: list[Example] = []
    evaluation: list[Example] = []
    cleaned = _clean(rows, source)
    for row, example in zip(rows, cleaned, strict=True):
        if example is None:
            continue
        split = str(row.get("split") or "").strip().lower()
        if split in TRAIN_SPLITS:
            train.append(example)
        elif split in EVAL_SPLITS:
            evaluation.append(example)
        else:
            raise DataError(
                f"{source}: unknown split {row.get('split')!r} in column {SPLIT_COLUMN!r}; "
                f"use 'train' or one of {', '.join(EVAL_SPLITS)}."
            )
    return train, evaluation


def _clean(rows: Iterable[dict], source: str) -> list[Example | None]:
    """Turn rows into examples; rows without text become ``None`` and are counted in a warning."""
    out: list[Example | None] = []
    skipped = 0
    for row in rows:
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            skipped += 1
            out.append(None)
            continue
        if label is None or (isinstance(label, float) and label != label) or not str(label).strip():
            raise DataError(f"{source}: row {len(out) + 1} has text but no label. Fill in the label or drop the row.")
        out.append(Example(text=text, label=str(label).strip()))
    if skipped:
        logger.warning("%s: skipped %d row(s) with empty or missing text.", source, skipped)
    return out


def _validate(train: Sequence[Example], evaluation: Sequence[Example], source: str) -> TextDataset:
    if not train and not evaluation:
        raise DataError(f"{source}: the data set is empty.")
    if not train:
        raise DataError(f"{source}: the training split is empty.")
    if not evaluation:
        raise DataError(
            f"{source}: the evaluation split is empty. Add rows to it, or use more data so a share can be held out."
        )
    counts = Counter(e.label for e in train)
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(f"{source}: every training example has the label {only!r}; a classifier needs two or more.")
    unseen = sorted({e.label for e in evaluation} - set(counts))
    if unseen:
        raise DataError(
            f"{source}: evaluation labels never seen in training: {', '.join(map(repr, unseen))}. "
            "Add training examples for them or remove them from the evaluation split."
        )
    return TextDataset(train=tuple(train), eval=tuple(evaluation), labels=tuple(sorted(counts)), source=source)


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "/", "~"))
        or Path(source).suffix.lower() in TABULAR_SUFFIXES
        or "\\" in source
        or source.count("/") > 1
    )
