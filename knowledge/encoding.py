"""Detect the text encoding of a file's first bytes: BOMs, UTF-8, then GB18030 / Big5 by charset-normalizer.

>>> detect_encoding("孙悟空大闹天宫。".encode("gb18030"))
'gb18030'
>>> detect_encoding(b"\\xef\\xbb\\xbfhello")
'utf-8-sig'
"""

from __future__ import annotations

import codecs

SAMPLE_BYTES = 256 * 1024

# Without a BOM, UTF-16/32 guesses on CJK bytes are mostly wrong (short Big5 text "detects" as UTF-16-BE).
_NO_BOM_EXCLUDED = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableError(ValueError):
    """The bytes are binary or in no encoding we can recognise; the message is the reason."""


CUT_END = "zaoshu-cut-end"


def _cut_end(exc: UnicodeError) -> tuple[str, int]:
    """Drop a character cut off at the very end of a file (a truncated download, `head -c`); any other
    undecodable byte stays an error. Registered as the codec error handler CUT_END."""
    incomplete = exc.reason in ("unexpected end of data", "incomplete multibyte sequence")
    if isinstance(exc, UnicodeDecodeError) and incomplete and exc.end == len(exc.object):
        return "", exc.end
    raise exc


codecs.register_error(CUT_END, _cut_end)


def detect_encoding(sample: bytes) -> str:
    """Return a Python codec name for `sample` (the first bytes of a file) or raise UndecodableError.

    Order: BOM → NUL bytes: UTF-16 without a BOM when the sample reads as text in it, else binary
    → strict UTF-8 (a character cut at the sample's end is fine) → GB18030 vs Big5 by how common the
    decoded hanzi are → another encoding only when charset-normalizer recognises a language in it.
    """
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if b"\x00" in sample:
        if utf16 := _utf16_without_bom(sample):
            return utf16
        raise UndecodableError("binary file (contains NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    chinese = [enc for enc in ("gb18030", "big5") if _decodes(sample, enc)]
    if len(chinese) == 2:
        return "big5" if _common_share(sample, "big5") > _common_share(sample, "gb18030") else "gb18030"
    if chinese:
        return chinese[0]
    from charset_normalizer import from_bytes  # only for files in neither UTF-8 nor a Chinese encoding

    best = from_bytes(sample, cp_exclusion=_NO_BOM_EXCLUDED).best()
    if best is None or best.coherence == 0:  # no language recognised: random bytes "decode" as cp125x
        raise UndecodableError("undecodable text (not UTF-8, UTF-16, GB18030/GBK or Big5)")
    return best.encoding


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the sample decodes in it to text: some exporters write UTF-16 with
    no BOM, and its NUL bytes (ASCII, and hanzi such as 一 U+4E00) made it "binary". Text means at least
    95 % of the characters are hanzi, CJK or full-width punctuation, or printable ASCII and whitespace:
    binary data decoded as UTF-16 is spread over the whole range (a third of it hanzi at most).

    >>> _utf16_without_bom("第一回\\r\\n灵根孕育源流出。".encode("utf-16-le")), _utf16_without_bom(b"\\x89PNG\\x00\\x00")
    ('utf-16-le', None)
    """
    best, best_share = None, 0.95
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:  # a lone surrogate
            continue
        textual = sum(c in "\t\r\n" or " " <= c <= "~" or "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f"
                      or "\uff00" <= c <= "\uffef" for c in text)
        if text and textual / len(text) >= best_share:
            best, best_share = encoding, textual / len(text)
    return best


def _decodes(sample: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        return True
    except UnicodeDecodeError:
        return False


def _common_share(sample: bytes, encoding: str) -> float:
    """Share of the decoded hanzi that are everyday characters of that script.

    Both GB18030 and Big5 accept most double-byte strings, so bytes in one decode "validly" in the
    other, but into rare characters. Everyday characters: GB2312 level 1 (first byte 0xB0–0xD7,
    3,755 hanzi) for simplified text, Big5 常用字 (0xA440–0xC67E, 5,401 hanzi) for traditional text.
    """
    text = codecs.getincrementaldecoder(encoding)(errors="ignore").decode(sample, final=False)
    hanzi = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not hanzi:
        return 0.0
    common = 0
    for char in hanzi:
        try:
            if encoding == "big5":
                common += 0xA440 <= int.from_bytes(char.encode("big5"), "big") <= 0xC67E
            else:
                common += 0xB0 <= char.encode("gb2312")[0] <= 0xD7
        except UnicodeEncodeError:
            pass
    return common / len(hanzi)


def decode_bytes(data: bytes) -> str:
    """Decode a whole (small) file's bytes with the detected encoding; raise UndecodableError if it fails.
    A character cut off at the very end is dropped.

    >>> decode_bytes("西游记".encode("utf-16")), decode_bytes("西游记".encode("utf-8")[:-1])
    ('西游记', '西游')
    >>> decode_bytes("西游记".encode("gb18030")[:-1])
    '西游'
    """
    encoding = detect_encoding(data[:SAMPLE_BYTES])
    try:
        return data.decode(encoding, errors=CUT_END)
    except UnicodeDecodeError as exc:
        raise UndecodableError(f"undecodable as {encoding} at byte {exc.start}") from exc
