"""Reading bytes as text: a named codec, or UTF-8, CP932 and EUC-JP told apart.

``auto`` (the default of every reader) decodes strictly, in this order:

1. a byte order mark decides: UTF-8 (``utf-8-sig``) or UTF-16 (``utf-16``, as Excel's "Unicode text" is saved);
2. UTF-8 (ASCII is UTF-8);
3. CP932 (Shift-JIS as Windows and Excel write it) and EUC-JP. Japanese text in CP932 is practically never
   valid EUC-JP (its kana and most kanji have lead bytes that EUC-JP lacks), but one EUC-JP headline in five is
   also valid CP932 (as half-width katakana and rare kanji). When both decode, the text that reads more like
   Japanese wins (:func:`japanese_score`); a tie goes to CP932.

A codec given by name (any Python text codec: ``utf-8``, ``cp932``, ``shift_jis``, ``euc-jp``, ``latin-1``, ...)
is used as given. Bytes that do not decode raise :class:`~mlflow_explain.errors.DataError` naming the source, the
offset and the encodings tried; a leading byte order mark is never part of the text.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mlflow_explain.errors import ConfigError, DataError

__all__ = ["AUTO", "AUTO_ENCODINGS", "check_encoding", "check_files", "decode", "detect_encoding", "japanese_score"]

AUTO = "auto"
"""Encoding setting that detects the encoding."""

AUTO_ENCODINGS = ("utf-8", "cp932", "euc-jp")
"""Encodings that ``auto`` tries after the byte order marks, in this order."""

BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

CHUNK_BYTES = 1 << 20
"""Bytes read at a time by :func:`check_files`; ``auto`` decides on the first chunk that is not ASCII."""

_COMMON = ((0x3000, 0x30FF), (0xFF01, 0xFF5E))  # CJK punctuation, hiragana, katakana; full-width ASCII
_UNLIKELY = (
    (0x0080, 0x009F),  # C1 control characters
    (0x0370, 0x04FF),  # Greek and Cyrillic
    (0x2500, 0x257F),  # box drawing
    (0xE000, 0xF8FF),  # private use (CP932's user-defined area and unmapped bytes)
    (0xFF61, 0xFF9F),  # half-width katakana and punctuation
)

_HINT = "give the file's encoding with --encoding, or --encoding auto to detect UTF-8, CP932 or EUC-JP"


def check_encoding(encoding: str) -> None:
    """Check that ``encoding`` is ``auto`` or the name of a Python text codec.

    Args:
        encoding: The setting.

    Raises:
        ConfigError: If it names no text codec (``bogus``, or ``base64``, which is not a text encoding).

    Example:
        >>> check_encoding("cp932")
    """
    if encoding == AUTO:
        return
    try:
        "".encode(encoding)  # LookupError for unknown names and for codecs that are not text encodings
    except (LookupError, TypeError, UnicodeError) as err:
        raise ConfigError(
            f"encoding must be 'auto' or a Python text codec such as utf-8, cp932, shift_jis or euc-jp; "
            f"got {encoding!r}."
        ) from err


def detect_encoding(raw: bytes, *, source: str = "the data", partial: bool = False) -> str:
    """The encoding that ``auto`` reads ``raw`` with (see the module docstring for the rule).

    Args:
        raw: The bytes.
        source: What they are, for the error message. Defaults to ``"the data"``.
        partial: ``raw`` is the start of a longer text, so it may end inside a character. Defaults to False.

    Returns:
        ``utf-8-sig``, ``utf-16``, ``utf-8``, ``cp932`` or ``euc-jp``; ``utf-8`` for ASCII.

    Raises:
        DataError: If no encoding tried decodes the bytes.

    Example:
        >>> detect_encoding("日本代表が逆転勝利".encode("euc-jp"))
        'euc-jp'
    """
    return _auto(raw, source, final=not partial)[1]


def decode(raw: bytes, encoding: str = AUTO, source: str = "the data") -> tuple[str, str]:
    """Decode ``raw`` strictly with ``encoding``, or with the one detected when it is ``auto``.

    Args:
        raw: The bytes.
        encoding: ``auto`` or a Python codec name. Defaults to ``"auto"``.
        source: What the bytes are (a file name), for the error message. Defaults to ``"the data"``.

    Returns:
        The text, without a leading byte order mark, and the encoding used.

    Raises:
        DataError: If the bytes are not valid in the encoding (or in any that ``auto`` tries).

    Example:
        >>> decode("見出し".encode("cp932"))
        ('見出し', 'cp932')
    """
    if encoding == AUTO:
        return _auto(raw, source, final=True)
    try:
        return raw.decode(_codec(encoding)).removeprefix("\ufeff"), encoding
    except UnicodeDecodeError as err:
        raise _invalid(source, err.start, encoding, err.reason, _HINT) from err


def check_files(paths: Iterable[Path], encoding: str = AUTO, chunk_size: int = CHUNK_BYTES) -> str:
    """The one encoding that reads every file of an input, checked in every byte of them.

    This is how a reader that applies one encoding to all files (Spark) can get a clear error instead
    of replacement characters. With ``auto`` the encoding is detected in the first chunk that is not
    ASCII, in whichever file that is, and the files are then decoded with it.

    Args:
        paths: The files.
        encoding: ``auto`` or a Python codec name. Defaults to ``"auto"``.
        chunk_size: Bytes read at a time. Defaults to 1 MiB.

    Returns:
        The encoding; ``utf-8`` when it is ``auto`` and every file is ASCII.

    Raises:
        DataError: If a file cannot be read or holds bytes that are not valid in the encoding.
    """
    chosen = None if encoding == AUTO else encoding
    for path in paths:
        chosen = _check_file(Path(path), chosen, encoding == AUTO, chunk_size)
    return chosen or "utf-8"


def japanese_score(text: str) -> int:
    """How much ``text`` reads like Japanese: common characters count +1, unlikely ones -1, the rest 0.

    Common are hiragana, katakana, CJK and full-width punctuation, full-width letters and digits, and the
    2,965 level-1 kanji of JIS X 0208 (the frequent ones). Unlikely are half-width katakana, private-use
    and control characters, Greek, Cyrillic and box drawing: what EUC-JP bytes read as CP932, or CP932
    bytes read as EUC-JP, turn into. ASCII and other kanji count 0.

    Args:
        text: The text.

    Returns:
        The score.

    Example:
        >>> raw = "ソフトバンクの料金プラン改定、スマホユーザーへの影響は".encode("euc-jp")
        >>> japanese_score(raw.decode("euc-jp")) > japanese_score(raw.decode("cp932"))
        True
    """
    return sum(_weight(char) * count for char, count in Counter(text).items() if char >= "\x80")


def _auto(raw: bytes, source: str, final: bool, start: int = 0) -> tuple[str, str]:
    """Decode with the first byte order mark's encoding, UTF-8, or the best-scoring of CP932 and EUC-JP."""
    marked = next((name for mark, name in BYTE_ORDER_MARKS if raw.startswith(mark)), None)
    texts: dict[str, str] = {}
    failures: dict[str, int] = {}
    for name in (marked,) if marked else AUTO_ENCODINGS:
        try:
            texts[name] = _strict(raw, name, final).removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            failures[name] = start + err.start
            continue
        if name in (marked, "utf-8"):  # a byte order mark or valid UTF-8 decides; CP932 waits for EUC-JP
            return texts[name], name
    if not texts:
        tried = ", ".join(f"{name} at offset {offset}" for name, offset in failures.items())
        raise DataError(
            f"{source}: the bytes are not valid in any encoding tried ({tried}); give the file's encoding with "
            "--encoding (a Python codec name such as utf-16 or latin-1), or save it as UTF-8."
        )
    # Both CP932 and EUC-JP decode: the text that reads more like Japanese wins; on a tie the first, CP932.
    best = max(texts, key=lambda name: japanese_score(texts[name])) if len(texts) > 1 else next(iter(texts))
    return texts[best], best


def _strict(raw: bytes, encoding: str, final: bool) -> str:
    if final:
        return raw.decode(_codec(encoding))
    return codecs.getincrementaldecoder(_codec(encoding))().decode(raw, final=False)


def _codec(encoding: str) -> str:
    """The codec that decodes ``encoding``: UTF-8 for ``utf-8-sig``, whose decoder counts offsets after the mark.

    The callers drop the byte order mark themselves.
    """
    return "utf-8" if codecs.lookup(encoding).name == "utf-8-sig" else encoding


def _check_file(path: Path, chosen: str | None, detected: bool, chunk_size: int) -> str | None:
    """Decode ``path`` chunk by chunk with ``chosen``, detected at the first non-ASCII chunk when None."""
    decoder = None
    offset = 0
    try:
        with path.open("rb") as file:
            for chunk in iter(functools.partial(file.read, chunk_size), b""):
                if chosen is None and chunk.isascii():  # the next chunk starts a character in every encoding tried
                    offset += len(chunk)
                    continue
                if chosen is None:
                    chosen = _auto(chunk, str(path), final=False, start=offset)[1]
                decoder = decoder or codecs.getincrementaldecoder(_codec(chosen))()
                _feed(decoder, chunk, path, offset, chosen, detected, final=False)
                offset += len(chunk)
            if decoder is not None:
                _feed(decoder, b"", path, offset, chosen, detected, final=True)
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err}).") from err
    return chosen


def _feed(decoder, chunk: bytes, path: Path, offset: int, encoding: str, detected: bool, final: bool) -> None:
    pending = len(decoder.getstate()[0])  # bytes of a character begun in the previous chunk
    try:
        decoder.decode(chunk, final=final)
    except UnicodeDecodeError as err:
        hint = (
            f"{encoding} was detected in the first bytes that are not ASCII; the files must share one encoding, "
            "or give it with --encoding"
            if detected
            else _HINT
        )
        raise _invalid(str(path), offset - pending + err.start, encoding, err.reason, hint) from err


def _invalid(source: str, offset: int, encoding: str, reason: str, hint: str) -> DataError:
    return DataError(f"{source}: bytes at offset {offset} are not valid {encoding} ({reason}); {hint}.")


def _weight(char: str) -> int:
    code = ord(char)
    if char in _level1_kanji() or any(low <= code <= high for low, high in _COMMON):
        return 1
    return -1 if any(low <= code <= high for low, high in _UNLIKELY) else 0


@functools.cache
def _level1_kanji() -> frozenset[str]:
    """The level-1 kanji of JIS X 0208: rows 16 to 47, EUC-JP lead bytes 0xB0 to 0xCF."""
    kanji = set()
    for lead in range(0xB0, 0xD0):
        for trail in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # the end of row 47 is unassigned
                kanji.add(bytes((lead, trail)).decode("euc_jp"))
    return frozenset(kanji)
