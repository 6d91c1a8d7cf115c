"""normalize_email on mail as real clients send it. Each fixture is written here, by hand; the
comment on each says which client or RFC taught it."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from inbox.normalize.email import normalize_email


def message(headers: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        "From: Aino Virtanen <aino@example.fi>\r\nTo: support@northwind.example\r\n"
        "Message-ID: <t1@example.fi>\r\nDate: Mon, 25 Nov 2024 10:12:00 +0200\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{headers}"
    )
    return head.encode("ascii") + b"\r\n" + body


# --- charsets: declared, mislabelled, unlabelled -------------------------------------------

RUSSIAN = "Здравствуйте! Срочно нужна помощь: палатка порвалась на второй день похода."
GREEK = "Καλημέρα, η παραγγελία μου δεν έχει φτάσει ακόμα. Είναι επείγον, παρακαλώ βοηθήστε."
FINNISH = "Hyvää päivää! Tilaukseni on myöhässä jo viikon. Voisitteko tarkistaa tilanteen?"
ESTONIAN = "Tere! Mu tellimus on hilinenud juba nädal. Kas saaksite öelda, millal pakk jõuab?"
JAPANESE = "テントのファスナーが壊れました。交換をお願いできますか。"


@pytest.mark.parametrize(
    ("text", "encoding", "label", "language"),
    [
        (RUSSIAN, "koi8-r", "koi8-r", "ru"),
        (RUSSIAN, "windows-1251", "windows-1251", "ru"),
        (GREEK, "iso-8859-7", "iso-8859-7", "el"),
        (FINNISH, "iso-8859-1", "iso-8859-1", "fi"),
        (ESTONIAN, "iso-8859-15", "iso-8859-15", "et"),
        (ESTONIAN, "iso-8859-13", "iso-8859-13", "et"),
        (JAPANESE, "iso-2022-jp", "iso-2022-jp", ""),
        (FINNISH, "utf-8", "utf8mb4", "fi"),  # MySQL's name for UTF-8, seen from web forms
    ],
)
def test_declared_charsets_come_out_as_the_right_text(
    text: str, encoding: str, label: str, language: str
) -> None:
    raw = message("Subject: x\r\n", text.encode(encoding), f"text/plain; charset={label}")
    normalized = normalize_email(raw)
    assert normalized.text.strip() == text
    assert normalized.language == language


def test_unlabelled_koi8_r_is_detected() -> None:
    # Old Russian webmail sends KOI8-R bytes with no charset parameter at all.
    raw = message("Subject: x\r\n", RUSSIAN.encode("koi8-r"), "text/plain")
    normalized = normalize_email(raw)
    assert normalized.text.strip() == RUSSIAN
    assert normalized.language == "ru"


def test_windows_1251_mislabelled_as_latin_1_is_detected() -> None:
    # A PHP contact form that declares ISO-8859-1 for whatever the browser posted.
    raw = message(
        "Subject: x\r\n", RUSSIAN.encode("windows-1251"), "text/plain; charset=iso-8859-1"
    )
    normalized = normalize_email(raw)
    assert normalized.text.strip() == RUSSIAN
    assert any("was wrong" in error for error in normalized.errors)


def test_latin_1_labelled_us_ascii_reads_as_latin_1() -> None:
    # Outlook Express and old Eudora label 8-bit Latin-1 text as us-ascii.
    raw = message("Subject: x\r\n", FINNISH.encode("latin-1"), "text/plain; charset=us-ascii")
    assert normalize_email(raw).text.strip() == FINNISH


def test_an_unknown_charset_name_still_gives_readable_text() -> None:
    # Apple Mail once sent charset="x-unknown"; the bytes were UTF-8.
    raw = message("Subject: x\r\n", FINNISH.encode("utf-8"), 'text/plain; charset="x-unknown"')
    normalized = normalize_email(raw)
    assert normalized.text.strip() == FINNISH
    assert any("unknown charset" in error for error in normalized.errors)


def test_quoted_printable_and_base64_bodies_are_decoded() -> None:
    qp = message(
        "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n",
        b"Hyv=C3=A4=C3=A4 p=C3=A4iv=C3=A4=C3=A4, kiitos!=\r\n Rivi jatkuu.",
    )
    assert normalize_email(qp).text.startswith("Hyvää päivää, kiitos! Rivi jatkuu.")
    b64 = message(
        "Subject: x\r\nContent-Transfer-Encoding: base64\r\n",
        base64.encodebytes(GREEK.encode("iso-8859-7")),
        "text/plain; charset=iso-8859-7",
    )
    assert normalize_email(b64).text.strip() == GREEK


# --- headers ---------------------------------------------------------------------------------


def test_rfc_2047_subject_and_names_are_decoded() -> None:
    raw = (
        b"From: =?koi8-r?b?6dfBzg==?= <Ivan@Example.RU>\r\n"
        b"To: =?utf-8?q?Northwind_tuki?= <support@northwind.example>, sales@northwind.example\r\n"
        b"Subject: =?utf-8?B?VsOkbGl0w7Zu?= =?utf-8?Q?_apu_kiitos?=\r\n"
        b"Date: Mon, 25 Nov 2024 10:12:00 +0200\r\n\r\nbody\r\n"
    )
    normalized = normalize_email(raw)
    assert normalized.subject == "Välitön apu kiitos"
    assert normalized.sender is not None
    assert (normalized.sender.name, normalized.sender.address) == ("Иван", "ivan@example.ru")
    assert [a.address for a in normalized.to] == [
        "support@northwind.example",
        "sales@northwind.example",
    ]
    assert normalized.to[0].name == "Northwind tuki"
    assert normalized.sent_at == datetime(2024, 11, 25, 8, 12, tzinfo=UTC)


def test_raw_8bit_headers_are_decoded_not_replaced() -> None:
    # Some Russian MTAs put KOI8-R bytes straight into the Subject, unencoded.
    raw = b"From: a@example.ru\r\nSubject: " + "Срочно: заказ".encode("koi8-r") + b"\r\n\r\nx\r\n"
    assert normalize_email(raw).subject == "Срочно: заказ"


def test_an_idn_sender_domain_is_stored_in_ascii() -> None:
    raw = "From: Иван <ivan@пример.рф>\r\nSubject: x\r\n\r\nx\r\n".encode()
    normalized = normalize_email(raw)
    assert normalized.sender is not None
    assert normalized.sender.address == "ivan@xn--e1afmkfd.xn--p1ai"


def test_message_ids_references_and_in_reply_to() -> None:
    raw = (
        b"From: a@example.fi\r\nMessage-ID:  <new@example.fi> \r\n"
        b"In-Reply-To: <parent@northwind.example>\r\n"
        b"References: <root@example.fi>\r\n <parent@northwind.example> <root@example.fi>\r\n\r\nx"
    )
    normalized = normalize_email(raw)
    assert normalized.message_id == "new@example.fi"
    assert normalized.in_reply_to == ("parent@northwind.example",)
    assert normalized.references == ("root@example.fi", "parent@northwind.example")


def test_an_unreadable_date_is_an_error_not_a_crash() -> None:
    raw = b"From: a@example.fi\r\nDate: Pn, 32 Smarch 2007 25:61\r\n\r\nx"
    normalized = normalize_email(raw)
    assert normalized.sent_at is None
    assert any("Date" in error for error in normalized.errors)


# --- bodies ----------------------------------------------------------------------------------


def test_html_only_mail_becomes_text_and_keeps_its_html() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>track()</script></head><body>"
        "<p>Hei,</p><p>tilaus <b>#4411</b> ei ole saapunut.</p>"
        "<table><tr><td>Tuote</td><td>Teltta</td></tr></table></body></html>"
    )
    raw = message("Subject: x\r\n", html.encode(), "text/html; charset=utf-8")
    normalized = normalize_email(raw)
    assert "tilaus #4411 ei ole saapunut." in normalized.text
    assert "Teltta" in normalized.text
    assert "track()" not in normalized.text and "color" not in normalized.text
    assert normalized.html == html


def test_alternative_prefers_the_plain_part() -> None:
    raw = message(
        "Subject: x\r\n",
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Html words</p>\r\n--b--\r\n",
        'multipart/alternative; boundary="b"',
    )
    normalized = normalize_email(raw)
    assert normalized.text.strip() == "Plain words"
    assert "Html words" in normalized.html


def test_attachments_with_rfc_2231_and_rfc_2047_names() -> None:
    pdf = b"%PDF-1.4 tiny"
    raw = message(
        "Subject: x\r\n",
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLiitteet.\r\n"
        # RFC 2231 with continuations, as Thunderbird writes long non-ASCII names.
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
        b" filename*0*=utf-8''lasku_kes%C3%A4;\r\n filename*1*=kuu.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(pdf) + b"\r\n"
        # RFC 2047 inside a quoted filename, as Outlook and Gmail write it.
        b'--b\r\nContent-Type: application/pdf; name="=?utf-8?B?0KHRh9GR0YIucGRm?="\r\n'
        b'Content-Disposition: attachment; filename="=?utf-8?B?0KHRh9GR0YIucGRm?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(pdf) + b"\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        b"--b--\r\n",
        'multipart/mixed; boundary="b"',
    )
    normalized = normalize_email(raw)
    names = [a.filename for a in normalized.attachments]
    assert names == ["lasku_kesäkuu.pdf", "Счёт.pdf", ""]
    first = normalized.attachments[0]
    assert (first.size, first.content, first.content_type) == (len(pdf), pdf, "application/pdf")
    assert first.sha256 == hashlib.sha256(pdf).hexdigest()
    image = normalized.attachments[2]
    assert (image.inline, image.content_id, image.content_type) == (True, "logo@x", "image/png")
    assert normalized.text.strip() == "Liitteet."


def test_a_multipart_whose_boundary_never_appears_keeps_its_body_readable() -> None:
    # A broken mass mailer: declares multipart, sends plain text.
    raw = message(
        "Subject: x\r\n", b"Just plain words here.\r\n", 'multipart/alternative; boundary="zz"'
    )
    normalized = normalize_email(raw)
    assert "Just plain words here." in normalized.text
    assert normalized.errors


def test_the_same_mail_through_two_deliveries_has_one_content_hash() -> None:
    body = message("Subject: x\r\n", b"Same words.\r\n")
    one = normalize_email(b"Delivered-To: support@x\r\nReceived: by a\r\n" + body)
    two = normalize_email(
        b"Delivered-To: sales@x\r\nReceived: by b\r\n" + body.replace(b"\r\n", b"\n")
    )
    other = normalize_email(body.replace(b"Same words.", b"Other words."))
    assert one.content_hash == two.content_hash
    assert one.content_hash != other.content_hash


# --- labels that cannot be true ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain; charset=us-ascii",
        "text/plain",
        "text/plain; charset=iso-8859-1",
        "text/plain; charset=windows-1252",
    ],
)
def test_utf_8_under_a_label_that_cannot_be_true_reads_as_utf_8(content_type: str) -> None:
    # A web form's gateway declared us-ascii (or nothing, or latin-1) and sent UTF-8: this
    # came out as "Tere, mul on kÃ¼simus".
    body = "Tere, mul on küsimus tellimuse kohta.".encode()
    normalized = normalize_email(message("Subject: Question\r\n", body, content_type))
    assert normalized.text.strip() == "Tere, mul on küsimus tellimuse kohta."


def test_a_greek_q_encoded_word_keeps_its_escaped_first_letter() -> None:
    # "=D3" is Σ: the old decoder split the word there and showed "= D3πασμένο".
    subject = "Subject: =?iso-8859-7?q?=D3=F0=E1=F3=EC=DD=ED=EF_=F6=E5=F1=EC=EF=F5=DC=F1?=\r\n"
    assert normalize_email(message(subject, b"Hi\r\n")).subject == "Σπασμένο φερμουάρ"


def test_utf_8_russian_labelled_windows_1251_is_not_read_as_cp1251_mojibake() -> None:
    body = "Здравствуйте, где мой заказ?".encode()
    normalized = normalize_email(message("", body, "text/plain; charset=windows-1251"))
    assert normalized.text.strip() == "Здравствуйте, где мой заказ?"
    assert any("UTF-8" in error for error in normalized.errors)
