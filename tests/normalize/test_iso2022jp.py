"""ISO-2022-JP as Japanese clients write it: with NEC and IBM extensions, half-width katakana."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.normalize.iso2022jp import decode_cp5022x

#: Characters of JIS X 0208 (what plain ISO-2022-JP holds) plus ASCII and line breaks.
JIS_TEXT = st.text(
    alphabet=st.characters(codec="utf-8").filter(
        lambda char: char not in "\x1b\x0e\x0f" and _in_jis(char)
    ),
    max_size=40,
)


def _in_jis(char: str) -> bool:
    try:
        char.encode("iso2022_jp")
    except UnicodeEncodeError:
        return False
    return True


def to_jis(shift_jis: bytes) -> bytes:
    """Shift_JIS pairs back to JIS row/cell pairs (the inverse of the decoder's arithmetic)."""
    out = bytearray()
    for index in range(0, len(shift_jis), 2):
        lead, trail = shift_jis[index], shift_jis[index + 1]
        row = (lead - 0x70 if lead <= 0x9F else lead - 0xB0) * 2 - 1
        if trail >= 0x9F:
            row, cell = row + 1, trail - 0x7E
        else:
            cell = trail - 0x1F - (1 if trail > 0x7F else 0)
        out += bytes((row, cell))
    return bytes(out)


#: Where Microsoft's mapping (cp932) and the JIS standard's differ: the same six glyphs.
MICROSOFT = str.maketrans("〜‖−¢£¬", "～∥－￠￡￢")


@settings(max_examples=200, deadline=None)
@given(JIS_TEXT)
def test_plain_iso_2022_jp_decodes_as_the_standard_codec_does(text: str) -> None:
    assert decode_cp5022x(text.encode("iso2022_jp")) == text.translate(MICROSOFT)


def test_nec_special_characters_and_ibm_kanji_as_outlook_writes_them() -> None:
    # ① ② Ⅲ ㈱ (NEC row 13) and 髙 (NEC-selected IBM extension, row 89+): cp932 has them.
    special = "①②Ⅲ㈱髙"
    nec = special.encode("cp932")
    nec = nec.replace("髙".encode("cp932"), b"\xee\xe0")  # CP50220 writes IBM kanji as NEC's
    data = b"\x1b$B" + to_jis(nec) + b"\x1b(B" + "の件".encode("iso2022_jp")
    assert decode_cp5022x(data) == "①②Ⅲ㈱髙の件"


def test_half_width_katakana_by_escape_and_by_shift_out() -> None:
    assert decode_cp5022x(b"\x1b(I\x31\x32\x1b(B OK") == "ｱｲ OK"
    assert decode_cp5022x(b"ab\x0e\x31\x32\x0fcd") == "abｱｲcd"


def test_jis_x_0212_kanji() -> None:
    assert decode_cp5022x(b"\x1b$(D\x30\x21\x1b(B") == "丂"


def test_a_line_break_left_inside_a_two_byte_run_is_kept() -> None:
    data = b"\x1b$B" + "注文".encode("iso2022_jp")[3:7] + b"\r\n" + "確認".encode("iso2022_jp")[3:7]
    assert decode_cp5022x(data + b"\x1b(B") == "注文\r\n確認"


def test_what_is_not_iso_2022_jp_is_refused() -> None:
    assert decode_cp5022x("é".encode()) is None  # 8-bit
    assert decode_cp5022x(b"\x1b$B\x30") is None  # half a pair
    assert decode_cp5022x(b"\x1bXYZ") is None  # an escape of another standard
    assert decode_cp5022x(b"\x1b$B\x7f\x7f\x1b(B") is None  # outside the JIS rows
