"""Header values as clients write them decode to what was written: encoded words of several
charsets side by side, split anywhere, folded; raw 8-bit values in the message's charset."""

from __future__ import annotations

import base64
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.normalize.email import normalize_email
from inbox.normalize.headers import decode_value

#: Text per language, and the charsets its writers' clients use besides UTF-8.
SAMPLES = {
    "fi": ("Hyvää päivää, tilaukseni on myöhässä jo viikon", ["iso-8859-1", "iso-8859-15"]),
    "et": ("Tere, mu tellimus on hilinenud, kas saaksite öelda", ["iso-8859-15", "windows-1257"]),
    "de": ("Grüße aus München, die Rückerstattung fehlt", ["iso-8859-1", "windows-1252"]),
    "ru": ("Здравствуйте, срочно нужна помощь с заказом", ["koi8-r", "windows-1251"]),
    "el": ("Καλημέρα, η παραγγελία μου δεν έχει φτάσει", ["iso-8859-7", "windows-1253"]),
    "ja": ("先週注文したテントがまだ届いていません", ["iso-2022-jp", "shift_jis", "euc-jp"]),
    "zh": ("您好我上周订购的帐篷还没有收到请帮我查一下", ["gb2312", "gbk", "gb18030"]),
    "tw": ("您好我上週訂購的帳篷還沒有收到請幫我查一下", ["big5"]),
    "ko": ("안녕하세요 지난주에 주문한 텐트가 아직 도착하지 않았습니다", ["euc-kr"]),
    "tr": ("Merhaba, siparişim hâlâ gelmedi, lütfen yardım edin", ["iso-8859-9"]),
    "pl": ("Dzień dobry, zamówienie źle dostarczone", ["iso-8859-2", "windows-1250"]),
}


@st.composite
def text_in_a_charset(draw: st.DrawFn) -> tuple[str, str]:
    language = draw(st.sampled_from(sorted(SAMPLES)))
    sentence, charsets = SAMPLES[language]
    start = draw(st.integers(0, len(sentence) - 1))
    end = draw(st.integers(start + 1, len(sentence)))
    return sentence[start:end], draw(st.sampled_from([*charsets, "utf-8"]))


def encoded_words(text: str, charset: str, cuts: list[int], q: bool) -> list[str]:
    """`text` as encoded words, split at the given character positions."""
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    words = []
    for start, end in itertools.pairwise(bounds):
        data = text[start:end].encode(charset)
        if q:
            body = "".join(chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}" for b in data)
            words.append(f"=?{charset}?Q?{body}?=")
        else:
            words.append(f"=?{charset}?B?{base64.b64encode(data).decode()}?=")
    return words


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(text_in_a_charset(), st.lists(st.integers(0, 60), max_size=3), st.booleans()),
        min_size=1,
        max_size=4,
    ),
    separators=st.lists(st.sampled_from([" ", "\r\n ", "\r\n\t", "  "]), min_size=8, max_size=8),
)
def test_encoded_words_of_several_charsets_decode_word_by_word(
    pieces: list[tuple[tuple[str, str], list[int], bool]], separators: list[str]
) -> None:
    words = [
        w for (text, charset), cuts, q in pieces for w in encoded_words(text, charset, cuts, q)
    ]
    value = "".join(
        word + separators[index % len(separators)] for index, word in enumerate(words)
    ).rstrip()
    expected = "".join(text for (text, _), _, _ in pieces)
    assert decode_value(value) == " ".join(expected.split())


@settings(max_examples=200, deadline=None)
@given(text_in_a_charset(), st.integers(1, 5))
def test_a_character_split_across_two_words_of_one_charset_is_joined(
    written: tuple[str, str], cut: int
) -> None:
    text, charset = written
    data = text.encode(charset)
    cut = cut % len(data) or 1
    head, tail = (base64.b64encode(part).decode() for part in (data[:cut], data[cut:]))
    value = f"=?{charset}?B?{head}?= =?{charset}?B?{tail}?="
    assert decode_value(value) == " ".join(text.split())


@settings(max_examples=200, deadline=None)
@given(
    text_in_a_charset(),
    st.sampled_from(["Re:", "Tilaus", "4471", "AB"]),
    st.sampled_from(["", " "]),
)
def test_plain_text_beside_an_encoded_word_keeps_exactly_the_space_written(
    written: tuple[str, str], plain: str, space: str
) -> None:
    text, charset = written
    [word] = encoded_words(text.strip() or "x", charset, [], q=True)
    decoded_word = text.strip() or "x"
    assert decode_value(f"{plain}{space}{word}") == f"{plain}{space}{decoded_word}"
    assert decode_value(f"{word}{space}{plain}") == f"{decoded_word}{space}{plain}"


@settings(max_examples=200, deadline=None)
@given(text_in_a_charset())
def test_a_raw_8_bit_subject_reads_in_the_body_s_charset(written: tuple[str, str]) -> None:
    text, charset = written
    if charset == "iso-2022-jp":
        charset = "shift_jis"  # raw 8-bit means an 8-bit charset
    subject = " ".join(text.split()) or "x"
    raw = (
        b"From: customer@example.net\r\nSubject: "
        + subject.encode(charset)
        + b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset="
        + charset.encode()
        + b"\r\n\r\n"
        + text.encode(charset)
    )
    assert normalize_email(raw).subject == subject
