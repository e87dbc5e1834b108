"""The embedded model's tokenizer: MeCab words split into a WordPiece vocabulary learned from the texts."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import mlflow_explain.tokenization as tokenization_module
from mlflow_explain.errors import ConfigError, DataError
from mlflow_explain.tokenization import SPECIAL_TOKENS, build_japanese_tokenizer, build_wordpiece_vocab

TEXTS = [
    "テレビを見る",
    "ラジオを聞く",
    "東京で雨が降る",
    "大阪で雪が降る",
    "テレビとラジオで天気予報を聞く",
    "新しいスマートフォンが発売された",
    "日本代表が逆転勝利を収めた",
    "映画の公開日が決まった",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tokenizer")


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path):
    return build_japanese_tokenizer(TEXTS, tokenizer_dir)


@pytest.fixture(scope="module")
def vocab(tokenizer) -> list[str]:
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


def test_vocabulary_starts_with_the_special_tokens(vocab: list[str], tokenizer) -> None:
    assert tuple(vocab[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id) == (0, 1, 2)
    assert (tokenizer.sep_token_id, tokenizer.mask_token_id) == (3, 4)


def test_vocabulary_has_no_duplicates_and_continuation_pieces(vocab: list[str]) -> None:
    assert len(set(vocab)) == len(vocab)
    assert any(piece.startswith("##") for piece in vocab)
    assert any(len(piece) > 1 and not piece.startswith("[") and not piece.startswith("##") for piece in vocab)


def test_vocab_file_lists_the_pieces_in_id_order(tokenizer_dir: Path, vocab: list[str]) -> None:
    assert (tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").splitlines() == vocab


@pytest.mark.parametrize("text", TEXTS)
def test_training_texts_tokenize_to_known_pieces(tokenizer, vocab: list[str], text: str) -> None:
    pieces = tokenizer.tokenize(text)

    assert pieces
    assert "[UNK]" not in pieces
    assert set(pieces) <= set(vocab)
    assert "".join(p.removeprefix("##") for p in pieces) == text


def test_encoding_wraps_the_text_in_cls_and_sep(tokenizer) -> None:
    ids = tokenizer("テレビを見る")["input_ids"]

    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids


def test_unseen_word_of_known_characters_is_split_into_pieces(tokenizer, vocab: list[str]) -> None:
    # MeCab keeps the unknown katakana word "ラオビ" whole; it never occurs in training, but
    # "ラ" starts a training word and "オ", "ビ" continue one ("ラジオ", "テレビ").
    assert "ラオビ" not in vocab
    pieces = tokenizer.tokenize("ラオビ")

    assert len(pieces) > 1
    assert "[UNK]" not in pieces
    assert not pieces[0].startswith("##")
    assert all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "ラオビ"


def test_word_with_unknown_characters_is_unk(tokenizer) -> None:
    assert tokenizer.tokenize("テレビで量子") == ["テレビ", "で", "[UNK]"]


def test_tokenizer_round_trips_through_save_pretrained(tokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path)

    reloaded = AutoTokenizer.from_pretrained(tmp_path)

    assert type(reloaded).__name__ == "BertJapaneseTokenizer"
    assert len(reloaded) == len(tokenizer)
    for text in [*TEXTS, "ラオビと量子を見る"]:
        assert reloaded.tokenize(text) == tokenizer.tokenize(text)
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_text_is_nfkc_normalised_before_the_vocabulary_is_learned(tmp_path: Path) -> None:
    tokenizer = build_japanese_tokenizer(["ＡＩが書く", "ﾃﾚﾋﾞを見る"], tmp_path)

    assert tokenizer.tokenize("AIが書く") == tokenizer.tokenize("ＡＩが書く")
    assert "[UNK]" not in tokenizer.tokenize("テレビを見る")


@pytest.mark.parametrize("vocab_size", [6, 12, 30, 60])
def test_vocabulary_size_bound_is_respected(vocab_size: int) -> None:
    vocab = build_wordpiece_vocab(TEXTS, vocab_size=vocab_size)

    assert len(vocab) == vocab_size
    assert tuple(vocab[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
    assert len(set(vocab)) == len(vocab)


def test_large_bound_gives_the_full_vocabulary_below_it() -> None:
    vocab = build_wordpiece_vocab(TEXTS, vocab_size=4000)

    assert len(SPECIAL_TOKENS) < len(vocab) < 4000


def test_small_bound_keeps_the_most_frequent_characters() -> None:
    texts = ["雨が降る", "雪が降る", "風が吹く", "日が照る", "霧が出る"]

    vocab = build_wordpiece_vocab(texts, vocab_size=len(SPECIAL_TOKENS) + 1)

    assert vocab[-1] == "が"


def test_bounded_tokenizer_has_the_bounded_size(tmp_path: Path) -> None:
    tokenizer = build_japanese_tokenizer(TEXTS, tmp_path, vocab_size=40)

    assert len(tokenizer) == 40


def test_vocabulary_is_deterministic() -> None:
    assert build_wordpiece_vocab(TEXTS, vocab_size=50) == build_wordpiece_vocab(list(TEXTS), vocab_size=50)


def test_vocabulary_is_the_same_in_every_process() -> None:
    # The tokenizers trainer hashes with per-process random keys; the vocabulary must not depend on them.
    script = (
        "import json, sys\n"
        "from mlflow_explain.tokenization import build_wordpiece_vocab\n"
        "print(json.dumps(build_wordpiece_vocab(json.loads(sys.argv[1]))))\n"
    )
    command = [sys.executable, "-c", script, json.dumps(TEXTS)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout

    assert json.loads(output) == build_wordpiece_vocab(TEXTS)


@pytest.mark.parametrize("texts", [[], ["", "   "], iter(["", "\n"])], ids=["none", "blank", "iterator"])
def test_empty_texts_are_a_data_error(texts, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="training texts are empty"):
        build_japanese_tokenizer(texts, tmp_path)


def test_vocabulary_size_without_room_beside_specials_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"vocab_size must leave room beside the 5 special tokens, got 5"):
        build_wordpiece_vocab(TEXTS, vocab_size=len(SPECIAL_TOKENS))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(tokenization_module)

    assert result.attempted > 0
    assert result.failed == 0
