"""ISO-2022-JP as Japanese mail clients really write it (Microsoft's CP50220/CP50221).

Outlook, Becky! and most Japanese webmail write NEC's special characters (①, Ⅲ, ㈱, ㎡) and
the NEC-selected IBM kanji (髙, 﨑) in "ISO-2022-JP" mail, and some switch to half-width
katakana with ESC ( I or SO/SI. Python's iso2022_jp codecs refuse all of these, and the whole
text would be lost to "not valid ISO-2022-JP". Every JIS X 0208 pair maps to one Shift_JIS
pair by arithmetic, and cp932 knows the extensions: so each escape-delimited run is decoded by
the codec that holds its character set. Six JIS characters then come out in Microsoft's
mapping (～ for 〜, － for −, ￢ for ¬, ...): the same glyphs, as the sender's client meant them.
"""

from __future__ import annotations

import re

#: ESC sequences that switch the character set, and SO/SI (half-width katakana, CP50221).
_SWITCH = re.compile(rb"\x1b\$[@B]|\x1b\$\(D|\x1b\([BJI]|[\x0e\x0f]")
_LINE_BREAK = re.compile(rb"(\r?\n)")
_JIS_ROMAN = str.maketrans("\\~", "¥‾")


def decode_cp5022x(data: bytes) -> str | None:
    """The text, or None when the bytes are not ISO-2022-JP (8-bit bytes, an unknown escape,
    a two-byte run of odd length or outside the JIS rows)."""
    if not data.isascii():
        return None
    parts: list[str] = []
    mode = b"\x1b(B"
    saved = mode  # what SI returns to
    position = 0
    for switch in _SWITCH.finditer(data):
        text = _run(data[position : switch.start()], mode)
        if text is None:
            return None
        parts.append(text)
        token = switch.group()
        if token == b"\x0e":
            saved, mode = mode, b"\x1b(I"
        elif token == b"\x0f":
            mode = saved
        else:
            mode = token
        position = switch.end()
    tail = _run(data[position:], mode)
    return None if tail is None else "".join(parts) + tail


def _run(chunk: bytes, mode: bytes) -> str | None:
    """One run between switches, in the character set `mode` selects."""
    if b"\x1b" in chunk:
        return None  # an escape we do not know: not ISO-2022-JP
    if mode == b"\x1b(B":
        return chunk.decode("ascii")
    if mode == b"\x1b(J":  # JIS X 0201 Roman: ASCII but for the yen sign and the overline
        return chunk.decode("ascii").translate(_JIS_ROMAN)
    if mode == b"\x1b(I":
        return _decode(bytes(byte | 0x80 for byte in chunk), "cp932")
    # A line break inside a two-byte run is a sender's bug: keep the break, decode around it.
    pieces = _LINE_BREAK.split(chunk)
    decoded = [
        piece.decode("ascii") if index % 2 else _two_byte(piece, mode)
        for index, piece in enumerate(pieces)
    ]
    return None if None in decoded else "".join(decoded)  # type: ignore[arg-type]


def _two_byte(chunk: bytes, mode: bytes) -> str | None:
    if len(chunk) % 2:
        return None
    if mode == b"\x1b$(D":  # JIS X 0212: EUC-JP writes it after 0x8F
        wide = b"".join(b"\x8f" + bytes((a | 0x80, b | 0x80)) for a, b in _pairs(chunk))
        return _decode(wide, "euc_jp")
    shift_jis = [_to_shift_jis(a, b) for a, b in _pairs(chunk)]
    if None in shift_jis:
        return None
    return _decode(b"".join(shift_jis), "cp932")  # type: ignore[arg-type]


def _pairs(chunk: bytes) -> list[tuple[int, int]]:
    return [(chunk[i], chunk[i + 1]) for i in range(0, len(chunk), 2)]


def _to_shift_jis(first: int, second: int) -> bytes | None:
    """A JIS row/cell pair (0x21-0x7E each) as its Shift_JIS pair; None outside the rows."""
    if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
        return None
    lead = (first + 0xE1) // 2 if first <= 0x5E else (first + 0x161) // 2
    trail = second + 0x1F + (second >= 0x60) if first % 2 else second + 0x7E
    return bytes((lead, trail))


def _decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None
