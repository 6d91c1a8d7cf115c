"""decode_bytes: the label if it is right, detection if it is wrong or missing, never empty."""

from __future__ import annotations

import pytest

from inbox.normalize.charset import codec_for, decode_bytes


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("us-ascii", "cp1252"),
        ("ISO-8859-1", "cp1252"),
        ('"utf-8"', "utf-8"),
        ("utf8mb4", "utf-8"),
        ("gb2312", "gb18030"),
        ("ks_c_5601-1987", "cp949"),
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


def test_a_multibyte_character_cut_by_a_size_cap_does_not_spoil_the_text() -> None:
    data = "Hyvää päivää".encode()[:-1]  # the last "ä" cut in half
    decoded = decode_bytes(data, "utf-8")
    assert decoded.text == "Hyvää päivä"
    assert decoded.problem == ""


def test_undecodable_bytes_never_give_an_empty_text() -> None:
    decoded = decode_bytes(b"\xff\xfe\x00\x81 plain words \x90\x8d", "utf-8")
    assert "plain words" in decoded.text
    assert decoded.problem
