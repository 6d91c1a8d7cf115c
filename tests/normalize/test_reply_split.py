"""What the customer just wrote, told apart from quoted history and signature, in the forms
real clients write in our customers' languages."""

from __future__ import annotations

import pytest

from inbox.normalize.email import normalize_email
from inbox.normalize.reply_split import split_reply

NEW = "Kiitos, vaihto sopii. Lähetän teltan huomenna."
OLD = "Voimme vaihtaa teltan uuteen."


@pytest.mark.parametrize(
    "attribution",
    [
        # Gmail, English, wrapped over two lines as Gmail does past 80 characters.
        "On Mon, 25 Nov 2024 at 10:12, Northwind Support <support@northwind.example>\nwrote:",
        # Gmail, Finnish
        "ma 25.11.2024 klo 10.12 Northwind Support <support@northwind.example> kirjoitti:",
        # Gmail, Estonian
        "Northwind Support <support@northwind.example> kirjutas kuupäeval E, 25. nov 2024 "
        "kell 10:12:",
        # Apple Mail, Swedish
        "25 nov. 2024 kl. 10:12 skrev Northwind Support <support@northwind.example>:",
        # Thunderbird, German
        "Am 25.11.2024 um 10:12 schrieb Northwind Support:",
        # Yandex and Mail.ru, Russian
        '25.11.2024, 10:12, "Northwind Support" <support@northwind.example> написал(а):',
        # Gmail, Greek
        "Στις Δευ 25 Νοε 2024 στις 10:12, ο/η Northwind Support <support@northwind.example> "
        "έγραψε:",
        # Apple Mail, French
        "Le 25 nov. 2024 à 10:12, Northwind Support <support@northwind.example> a écrit :",
    ],
)
def test_attribution_lines_start_the_history(attribution: str) -> None:
    text = f"{NEW}\n\n{attribution}\n\n> {OLD}\n"
    split = split_reply(text)
    assert split.new_text == NEW
    assert OLD in split.quoted_text
    assert split.quoted_text.startswith(attribution.split("\n")[0])


@pytest.mark.parametrize(
    ("sender", "sent"),
    [
        ("From: Northwind Support", "Sent: Monday, November 25, 2024 10:12 AM"),
        ("Lähettäjä: Northwind Support", "Lähetetty: maanantai 25. marraskuuta 2024 10.12"),
        ("Från: Northwind Support", "Skickat: den 25 november 2024 10:12"),
        ("Von: Northwind Support", "Gesendet: Montag, 25. November 2024 10:12"),
        ("От: Northwind Support", "Отправлено: 25 ноября 2024 г. 10:12"),
        ("Από: Northwind Support", "Στάλθηκε: Δευτέρα, 25 Νοεμβρίου 2024 10:12 πμ"),
        ("Saatja: Northwind Support", "Saadetud: esmaspäev, 25. november 2024 10:12"),
    ],
)
def test_outlook_header_blocks_start_the_history(sender: str, sent: str) -> None:
    text = f"{NEW}\n\n________________________________\n{sender}\n{sent}\nTo: x\n\n{OLD}\n"
    split = split_reply(text)
    assert split.new_text == NEW
    assert OLD in split.quoted_text


def test_an_original_message_separator_starts_the_history() -> None:
    text = f"{NEW}\n\n----- Alkuperäinen viesti -----\n{OLD}\n"
    assert split_reply(text).new_text == NEW


def test_the_signature_after_the_dash_dash_line_is_kept_apart() -> None:
    text = f"{NEW}\n\n-- \nAino Virtanen\nRetkeilyseura Ry\n+358 40 123 4567\n"
    split = split_reply(text)
    assert split.new_text == NEW
    assert split.signature.startswith("Aino Virtanen")


@pytest.mark.parametrize(
    "signature",
    [
        "Sent from my iPhone",
        "Lähetetty iPhonesta",
        "Saadetud minu iPhone'ist",
        "Skickat från min iPhone",
        "Von meinem iPhone gesendet",
        "Отправлено с iPhone",
        "Στάλθηκε από το iPhone μου",
    ],
)
def test_mobile_signatures_are_kept_apart(signature: str) -> None:
    split = split_reply(f"{NEW}\n\n{signature}\n")
    assert (split.new_text, split.signature) == (NEW, signature)


def test_inline_replies_keep_every_new_line() -> None:
    text = "> Mikä on tilausnumero?\n4411\n> Entä koko?\nKolmen hengen teltta.\n"
    split = split_reply(text)
    assert split.new_text == "4411\nKolmen hengen teltta."
    assert "Mikä on tilausnumero?" in split.quoted_text


def test_a_message_without_history_is_all_new() -> None:
    text = "Hei!\n\nMinulla on kysymys: mikä teltta sopii talveen?\n"
    split = split_reply(text)
    assert split.new_text == text.strip()
    assert (split.quoted_text, split.signature) == ("", "")


def test_a_gmail_html_reply_is_split_by_its_quote_markup() -> None:
    html = (
        '<div dir="ltr">Kiitos, toimii nyt!</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">ma 25.11.2024 klo 10.12 Tuki kirjoitti:</div>'
        "<blockquote>Kokeile päivittää sovellus. Kiireellinen asia.</blockquote></div>"
    )
    raw = (
        "From: aino@example.fi\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html
    ).encode()
    normalized = normalize_email(raw)
    assert normalized.new_text == "Kiitos, toimii nyt!"
    assert "Kiireellinen" in normalized.quoted_text
    assert "Kiireellinen" in normalized.text  # the whole text stays whole
