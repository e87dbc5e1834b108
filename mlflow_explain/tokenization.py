"""The embedded model's tokenizer: MeCab words (fugashi + unidic-lite) split into WordPiece.

This is the tokenizer family of ``cl-tohoku/bert-base-japanese-v2``: text is NFKC-normalised,
cut into words by MeCab with the UniDic dictionary, and each word into WordPiece sub-words.
The vocabulary is learned from the training texts with the ``tokenizers`` WordPiece trainer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mlflow_explain.errors import ConfigError, DataError, ModelError

__all__ = [
    "SPECIAL_TOKENS",
    "TRAINED_DICTIONARY",
    "build_japanese_tokenizer",
    "build_wordpiece_vocab",
    "tokenizer_dictionary",
    "tokenizer_load_kwargs",
]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MECAB_KWARGS = {"mecab_dic": "unidic_lite"}
CONTINUATION = "##"


def _word_tokenizer():
    try:
        from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

        return MecabTokenizer(do_lower_case=False, normalize_text=True, **MECAB_KWARGS)
    except (ImportError, ModuleNotFoundError, RuntimeError) as err:
        raise ModelError(
            "The Japanese tokenizer needs MeCab: install `fugashi` and `unidic-lite` "
            f"(pip install fugashi unidic-lite). Original error: {err}"
        ) from err


def build_wordpiece_vocab(texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 1) -> list[str]:
    """Learn a WordPiece vocabulary from texts cut into MeCab words.

    The vocabulary never has more than ``vocab_size`` entries. When the training texts hold more
    distinct characters than that (each character counts once as a word start and once as a
    ``##`` continuation), the rarest characters are left out and words that contain them become
    ``[UNK]``. The same texts give the same vocabulary, in the same order, in every process.

    Args:
        texts: Training texts; empty ones are ignored.
        vocab_size: Largest vocabulary size, special tokens included. Defaults to 4000.
        min_frequency: Least number of occurrences for a merged piece to enter. Defaults to 1.

    Returns:
        The vocabulary, special tokens first; continuation pieces start with ``##``.

    Raises:
        ConfigError: If ``vocab_size`` leaves no room beside the special tokens.
        DataError: If there is no text to learn from.
        ModelError: If MeCab (``fugashi`` with ``unidic-lite``) is not installed.

    Example:
        >>> vocab = build_wordpiece_vocab(["東京で雨が降る", "大阪で雪が降る"])
        >>> vocab[:2]
        ['[PAD]', '[UNK]']
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(
            f"vocab_size must leave room beside the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}."
        )
    word_tokenizer = _word_tokenizer()
    words = [word for text in texts if text and text.strip() for word in word_tokenizer.tokenize(text)]
    if not words:
        raise DataError("cannot build a vocabulary: the training texts are empty.")
    # The trainer numbers the ## continuation characters in hash-map order and breaks ties between
    # merges by number, so the vocabulary would change from process to process. Registering them
    # up front, sorted, fixes their numbers and makes the vocabulary the same for the same texts.
    counts = _piece_counts(words)
    continuations = sorted(piece for piece in counts if piece.startswith(CONTINUATION))
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *continuations],
        show_progress=False,
    )
    tokenizer.train_from_iterator(words, trainer=trainer)
    vocab = tokenizer.get_vocab()
    pieces = sorted(vocab, key=vocab.__getitem__)
    if len(pieces) > vocab_size:
        # The trainer keeps every character (as a start and as a ## continuation) whatever the size.
        pieces = _most_frequent(pieces, counts, vocab_size)
    return pieces


def _piece_counts(words: Iterable[str]) -> Counter[str]:
    """How often each character starts a word and (as ``##`` + character) continues one."""
    counts: Counter[str] = Counter()
    for word in words:
        counts[word[0]] += 1
        counts.update(CONTINUATION + char for char in word[1:])
    return counts


def _most_frequent(pieces: list[str], counts: Counter[str], size: int) -> list[str]:
    """Keep the special tokens and the ``size`` minus their number most used pieces, in ``pieces`` order."""
    ordinary = [p for p in pieces if p not in SPECIAL_TOKENS]
    kept = set(sorted(ordinary, key=lambda p: -counts[p])[: size - len(SPECIAL_TOKENS)])
    return [*SPECIAL_TOKENS, *(p for p in ordinary if p in kept)]


def build_japanese_tokenizer(texts: Iterable[str], directory: str | Path, vocab_size: int = 4000):
    """Build a ``BertJapaneseTokenizer`` whose WordPiece vocabulary is learned from ``texts``.

    Args:
        texts: Training texts.
        directory: Folder where ``vocab.txt`` is written (the tokenizer reads it from there).
        vocab_size: Largest vocabulary size. Defaults to 4000.

    Returns:
        A ``transformers.BertJapaneseTokenizer`` (MeCab + WordPiece).

    Raises:
        ConfigError: If ``vocab_size`` leaves no room beside the special tokens.
        DataError: If there is no text to learn from.
        ModelError: If MeCab (``fugashi`` with ``unidic-lite``) is not installed.

    Example:
        >>> import tempfile
        >>> tokenizer = build_japanese_tokenizer(["テレビを見る", "ラジオを聞く"], tempfile.mkdtemp())
        >>> tokenizer.tokenize("テレビでラジオを見る")
        ['テレビ', '[UNK]', 'ラジオ', 'を', '見る']
    """
    from transformers import BertJapaneseTokenizer

    vocab = build_wordpiece_vocab(texts, vocab_size=vocab_size)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertJapaneseTokenizer(
        vocab_file=str(vocab_file),
        do_lower_case=False,
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs=dict(MECAB_KWARGS),
    )


TRAINED_DICTIONARY = "ipadic"
"""MeCab dictionary of a saved ``BertJapaneseTokenizer`` whose config names none: what transformers 4
gave it, and what the cl-tohoku v1 checkpoints (``bert-base-japanese``, ``-whole-word-masking``) were
trained on. transformers 5 defaults to unidic-lite, which splits their words differently."""


def tokenizer_load_kwargs(model: str) -> dict:
    """Arguments that load a saved tokenizer as it was trained.

    A ``BertJapaneseTokenizer`` with MeCab words whose ``tokenizer_config.json`` names no MeCab
    dictionary gets :data:`TRAINED_DICTIONARY`; every other tokenizer loads as saved.

    Args:
        model: A local model folder or a Hub id (its config is read from the folder or the Hub cache).

    Returns:
        Keyword arguments for ``AutoTokenizer.from_pretrained`` (empty when nothing needs to change).
    """
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    try:
        config = get_tokenizer_config(model)
    except (OSError, ValueError):
        return {}
    if config.get("tokenizer_class") != "BertJapaneseTokenizer" or config.get("word_tokenizer_type") != "mecab":
        return {}
    mecab = dict(config.get("mecab_kwargs") or {})
    if mecab.get("mecab_dic") or mecab.get("mecab_option"):
        return {}
    return {"mecab_kwargs": {**mecab, "mecab_dic": TRAINED_DICTIONARY}}


def tokenizer_dictionary(tokenizer) -> str | None:
    """The MeCab dictionary a Japanese tokenizer cuts words with (``ipadic``, ``unidic_lite``, ...), else None."""
    if getattr(tokenizer, "word_tokenizer_type", None) != "mecab":
        return None
    kwargs = getattr(tokenizer, "mecab_kwargs", None) or {}
    return str(kwargs.get("mecab_dic") or ("custom" if kwargs.get("mecab_option") else "unidic_lite"))
