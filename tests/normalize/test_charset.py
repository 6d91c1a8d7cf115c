"""decode_bytes: the label if it is right, detection if it is wrong or missing, never empty."""

from __future__ import annotations

import pytest

from inbox.normalize.charset import ALIASES, codec_for, decode_bytes


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("us-ascii", "cp1252"),
        ("ISO-8859-1", "cp1252"),
        ('"utf-8"', "utf-8"),
        ("utf8mb4", "utf-8"),
        ("gb2312", "gb18030"),
        ("ks_c_5601-1987", "cp949"),
        ("iso-gb2312", "gb18030"),
        ("gb_2312-80", "gb18030"),
        ("x-gbk", "gb18030"),
        ("x-sjis", "cp932"),
        ("windows-874", "cp874"),
        ("cp-850", "cp850"),
        ("cp-1252", "cp1252"),
        ("x-cp1251", "cp1251"),
        ("utf8", "utf-8"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("x-mac-roman", "mac-roman"),
        ("x-euc-jp", "euc_jp"),
        ("x-unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_labels_map_to_the_codec_senders_mean(label: str | None, codec: str | None) -> None:
    assert codec_for(label) == codec


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Привет, мне срочно нужна помощь с заказом номер 4411", "koi8-r"),
        ("Привет, мне срочно нужна помощь с заказом номер 4411", "windows-1251"),
        ("Срочно: заказ", "koi8-r"),  # a subject line: too short for statistics
        ("Η παραγγελία μου δεν έχει φτάσει ακόμα, παρακαλώ βοηθήστε", "iso-8859-7"),
        ("Hyvää päivää – kiitos “nopeasta” vastauksesta", "windows-1252"),
        ("Tere! Kas saaksite öelda, millal pakk jõuab? Tänan.", "iso-8859-15"),
        ("テントのファスナーが壊れました。交換をお願いできますか。", "iso-2022-jp"),
        ("テントのファスナーが壊れました。交換をお願いできますか。", "shift_jis"),
        ("Öö", "latin-1"),
    ],
)
def test_unlabelled_text_is_detected(text: str, encoding: str) -> None:
    decoded = decode_bytes(text.encode(encoding), None)
    assert decoded.text == text


def test_every_alias_names_a_codec_python_has() -> None:
    assert [label for label in ALIASES if codec_for(label) is None] == []


#: Short texts (a raw 8-bit subject, a sender's name, a file name) in the charsets their
#: writers' clients use, each also beside ASCII as in a From header. (One 8-bit letter is no
#: evidence: "Siparişim gelmedi" has one, which cp1250 reads as "ţ" as well as cp1254 as "ş".)
SHORT_TEXTS = [
    ("关于订单的问题，请尽快回复", "gbk"),
    ("王小明", "gbk"),
    ("报价单（修订版）.pdf", "gbk"),
    ("注文した商品がまだ届きません", "shift_jis"),
    ("山田太郎", "shift_jis"),
    ("見積書_最新版.pdf", "shift_jis"),
    ("注文した商品がまだ届きません", "euc_jp"),
    ("주문한 상품이 아직 도착하지 않았습니다", "euc_kr"),
    ("김민수", "euc_kr"),
    ("訂單的問題，請盡快回覆", "big5"),
    ("陳大文", "big5"),
    ("Вопрос по заказу", "windows-1251"),
    ("Вопрос по заказу", "koi8-r"),
    ("Σπασμένο φερμουάρ", "iso-8859-7"),
    ("Tilaus myöhässä", "windows-1252"),
    ("Küsimus tellimuse kohta", "iso-8859-15"),
    ("Siparişim yanlış geldi", "windows-1254"),
    ("Zamówienie źle dostarczone", "windows-1250"),
]


@pytest.mark.parametrize("context", ["{}", "{} <customer@example.net>", "Re: {} (4471)"])
@pytest.mark.parametrize(("text", "encoding"), SHORT_TEXTS)
def test_short_unlabelled_texts_are_read_in_their_script(
    text: str, encoding: str, context: str
) -> None:
    written = context.format(text)
    assert decode_bytes(written.encode(encoding), None).text == written


def test_the_message_s_other_charsets_settle_what_no_model_can() -> None:
    # Four kanji in EUC-JP are also valid GB18030 and CP949: the body's charset decides.
    name = "山田太郎".encode("euc_jp")
    assert decode_bytes(name, None, hints=("euc-jp",)).text == "山田太郎"
    # A hint that does not fit the bytes is passed over.
    assert decode_bytes("Привет, мир".encode("cp1251"), None, hints=("utf-8", "big5")).text
    assert decode_bytes("Вопрос".encode("koi8-r"), None, hints=("koi8-r",)).text == "Вопрос"


def test_utf_7_is_not_taken_for_ascii() -> None:
    assert decode_bytes("Päivää".encode("utf-7"), "unicode-1-1-utf-7").text == "Päivää"


def test_a_multibyte_character_cut_by_a_size_cap_does_not_spoil_the_text() -> None:
    data = "Hyvää päivää".encode()[:-1]  # the last "ä" cut in half
    decoded = decode_bytes(data, "utf-8")
    assert decoded.text == "Hyvää päivä"
    assert decoded.problem == ""


def test_undecodable_bytes_never_give_an_empty_text() -> None:
    decoded = decode_bytes(b"\xff\xfe\x00\x81 plain words \x90\x8d", "utf-8")
    assert "plain words" in decoded.text
    assert decoded.problem


#: UTF-16 without a byte order mark, in scripts whose high bytes are not one small value.
EAST_ASIAN_TEXTS = [
    "您好！我上周订购的帐篷还没有收到，请帮我查一下。",
    "こんにちは。先週注文したテントがまだ届いていません。",
    "주문한 상품이 아직 도착하지 않았습니다",
    "訂單的問題，請盡快回覆",
]


@pytest.mark.parametrize("label", [None, "latin-1", "us-ascii"])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", EAST_ASIAN_TEXTS)
def test_east_asian_utf_16_without_a_byte_order_mark_is_read(
    text: str, codec: str, label: str | None
) -> None:
    decoded = decode_bytes(text.encode(codec), label)
    assert decoded.text == text
    assert decoded.problem == "charset from the pattern of its bytes"


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("注文した商品がまだ届きません", "shift_jis"),
        ("关于订单的问题，请尽快回复", "gbk"),
        ("Tilaus myöhässä, mitä teen?", "cp1252"),
    ],
)
def test_a_stray_control_byte_does_not_make_8_bit_text_utf_16(text: str, codec: str) -> None:
    data = text.encode(codec) + b"\x01\x02"
    assert decode_bytes(data, codec).text == text + "\x01\x02"
