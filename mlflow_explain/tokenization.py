"""The embedded model's tokenizer: MeCab words (fugashi + unidic-lite) split into WordPiece.

This is the tokenizer family of ``cl-tohoku/bert-base-japanese-v2``: text is NFKC-normalised,
cut into words by MeCab with the UniDic dictionary, and each word into WordPiece sub-words.
The vocabulary is learned from the training texts with the ``tokenizers`` WordPiece trainer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mlflow_explain.errors import DataError, ModelError

__all__ = ["SPECIAL_TOKENS", "build_japanese_tokenizer", "build_wordpiece_vocab"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MECAB_KWARGS = {"mecab_dic": "unidic_lite"}


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

    Args:
        texts: Training texts.
        vocab_size: Largest vocabulary size, special tokens included. Defaults to 4000.
        min_frequency: Least number of occurrences for a merged piece to enter. Defaults to 1.

    Returns:
        The vocabulary, special tokens first; continuation pieces start with ``##``.

    Raises:
        DataError: If there is no text to learn from.

    Example:
        >>> vocab = build_wordpiece_vocab(["東京で雨が降る", "大阪で雪が降る"])
        >>> vocab[:2]
        ['[PAD]', '[UNK]']
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    words = _word_tokenizer()
    corpus = [" ".join(words.tokenize(text)) for text in texts if text and text.strip()]
    if not corpus:
        raise DataError("cannot build a vocabulary: the training texts are empty.")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def build_japanese_tokenizer(texts: Iterable[str], directory: str | Path, vocab_size: int = 4000):
    """Build a ``BertJapaneseTokenizer`` whose WordPiece vocabulary is learned from ``texts``.

    Args:
        texts: Training texts.
        directory: Folder where ``vocab.txt`` is written (the tokenizer reads it from there).
        vocab_size: Largest vocabulary size. Defaults to 4000.

    Returns:
        A ``transformers.BertJapaneseTokenizer`` (MeCab + WordPiece).
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
