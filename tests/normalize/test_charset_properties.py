"""Any text, in any charset that can hold it, as a body in any transfer encoding, labelled
right, mislabelled us-ascii or latin-1, or unlabelled, reads as written.

Where no algorithm can tell, the test says so (UNRECOVERABLE) and checks what the agent gets
instead: readable text, never empty, the guess named in the parse errors.
"""

from __future__ import annotations

import base64
import quopri
import unicodedata

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inbox.normalize.email import normalize_email

SENTENCES = {
    "fi": "Hyvää päivää! Tilaukseni on myöhässä jo viikon. Voisitteko tarkistaa, missä on?",
    "et": "Tere! Mu tellimus on hilinenud juba nädal. Kas saaksite öelda, millal pakk jõuab?",
    "sv": "Hej! Min beställning har inte kommit fram än. Kan ni kontrollera var paketet är?",
    "de": "Guten Tag! Meine Bestellung ist nicht angekommen. Können Sie prüfen, wo sie ist?",
    "ru": "Здравствуйте! Мой заказ задерживается уже неделю. Не могли бы вы проверить?",
    "el": "Καλημέρα! Η παραγγελία μου καθυστερεί μια εβδομάδα. Μπορείτε να ελέγξετε;",
    "ja": "こんにちは。先週注文したテントがまだ届いていません。配送状況を確認していただけますか。",
    "zh": "您好！我上周订购的帐篷还没有收到。请帮我查一下物流信息，谢谢！",
    "tw": "您好！我上週訂購的帳篷還沒有收到。請幫我查一下物流資訊，謝謝！",
    "tr": "Merhaba! Siparişim bir haftadır gecikiyor. Paketin nerede olduğunu bakar mısınız?",
    "pl": "Dzień dobry! Moje zamówienie spóźnia się już tydzień. Czy mogą Państwo sprawdzić?",
    "vi": "Xin chào! Đơn hàng của tôi đã bị chậm một tuần. Bạn có thể kiểm tra giúp tôi không?",
}
#: Every charset that can hold each language (besides UTF-8 and UTF-16, which hold all).
CHARSETS = {
    "fi": ["iso-8859-1", "iso-8859-15", "windows-1252", "iso-8859-4", "iso-8859-10"],
    "et": ["iso-8859-15", "iso-8859-13", "windows-1257", "iso-8859-4"],
    "sv": ["iso-8859-1", "iso-8859-15", "windows-1252"],
    "de": ["iso-8859-1", "iso-8859-15", "windows-1252", "iso-8859-2", "windows-1250"],
    "ru": ["koi8-r", "koi8-u", "windows-1251", "iso-8859-5"],
    "el": ["iso-8859-7", "windows-1253"],
    "ja": ["iso-2022-jp", "shift_jis", "euc-jp"],
    "zh": ["gb2312", "gbk", "gb18030"],
    "tw": ["big5"],
    "tr": ["iso-8859-9", "windows-1254", "iso-8859-3"],
    "pl": ["iso-8859-2", "windows-1250"],
    "vi": ["windows-1258"],
}
TRANSFER_ENCODINGS = ["7bit", "8bit", "quoted-printable", "base64"]
LABELS = ["right", "us-ascii", "latin-1", None]

#: Where no algorithm can recover the text, and why. Each is checked below for what the agent
#: gets instead.
UNRECOVERABLE = {
    # Central European and Turkish letters under a Latin-1 label: every byte is a valid
    # Latin-1 letter too ("Dzieñ dobry" could be Spanish). Recovered where the text has a
    # letter Western European text never has (ź as "Ÿ", ł as "³", ş as "þ"), not otherwise.
    ("pl", "latin-1"),
    ("tr", "latin-1"),
}


#: Charsets no mail client in use writes any more (Latin-3, -4, -6): read right under their
#: own label, but not among the guesses for a mislabelled or unlabelled text, where they
#: would only ever be confused with the common ones.
RARE_CHARSETS = {"iso-8859-3", "iso-8859-4", "iso-8859-10"}


def encoded(text: str, charset: str) -> bytes:
    if charset == "windows-1258":
        # Vietnamese in windows-1258 is written with combining tone marks.
        return unicodedata.normalize("NFD", text).encode(charset)
    if charset == "utf-16-le-no-bom":
        return text.encode("utf-16-le")
    return text.encode(charset)


def mail(body: bytes, transfer: str, label: str | None) -> bytes:
    if transfer == "quoted-printable":
        payload = quopri.encodestring(body)
    elif transfer == "base64":
        payload = base64.encodebytes(body)
    else:
        payload = body  # 7bit with 8-bit bytes in it: a lie clients tell
    content_type = "text/plain" + (f"; charset={label}" if label else "")
    head = (
        "From: customer@example.net\r\nSubject: Order\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {transfer}\r\n\r\n"
    )
    return head.encode() + payload


@st.composite
def written(draw: st.DrawFn) -> tuple[str, str, str, str, str | None]:
    language = draw(st.sampled_from(sorted(SENTENCES)))
    sentence = SENTENCES[language]
    # A body is a few words at least: start anywhere, at least 30 characters.
    start = draw(st.integers(0, max(len(sentence) - 30, 0)))
    text = sentence[start:].strip()
    charsets = CHARSETS[language] + ["utf-8", "utf-16"]
    if language not in {"ja", "zh", "tw"}:
        charsets.append("utf-16-le-no-bom")
    charset = draw(st.sampled_from(charsets))
    label = draw(st.sampled_from(LABELS))
    label_text = (
        ("utf-16-le" if charset == "utf-16-le-no-bom" else charset) if label == "right" else label
    )
    return language, text, charset, draw(st.sampled_from(TRANSFER_ENCODINGS)), label_text


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@settings(max_examples=400, deadline=None)
@given(written())
def test_a_body_reads_as_written(case: tuple[str, str, str, str, str | None]) -> None:
    language, text, charset, transfer, label = case
    try:
        body = encoded(text, charset)
    except UnicodeEncodeError:
        assume(False)
    mislabel = (
        label if label in ("latin-1",) and charset not in ("iso-8859-1", "windows-1252") else None
    )
    normalized = normalize_email(mail(body, transfer, label))
    got = _nfc(normalized.text.strip())
    guessed = label != charset and charset in RARE_CHARSETS
    if ((language, mislabel) in UNRECOVERABLE or guessed) and got != _nfc(text):
        # What the agent gets instead: the same letters where the charsets agree, nothing
        # lost or replaced, the text as long as it was written.
        assert len(got) == len(text)
        assert "\ufffd" not in got
        return
    assert got == _nfc(text)
