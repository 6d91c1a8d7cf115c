"""Deterministic varied mail for benchmarks and load tests.

`generate_messages(n)` yields RFC 822 bytes of 1-8 KB in seven languages and their usual
charsets (KOI8-R and windows-1251 for Russian, ISO-8859-7 for Greek, Latin-1 and -15 for the
Nordic languages, UTF-8 in quoted-printable), some HTML, some attachments, and replies that
thread by headers or by a localized subject prefix only, from about 200 senders. It formats
strings from templates rather than building email.message objects: generating must cost far
less than the ingest it measures.
"""

from __future__ import annotations

import base64
import quopri
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

START = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
SPAN_SECONDS = 60 * 24 * 3600


@dataclass(frozen=True)
class _Language:
    code: str
    charsets: tuple[str, ...]
    reply_prefix: str
    names: tuple[str, ...]
    domain: str
    subjects: tuple[str, ...]
    sentences: tuple[str, ...]


LANGUAGES = (
    _Language(
        "fi",
        ("utf-8", "iso-8859-1"),
        "VS:",
        ("Aino Virtanen", "Mikko Korhonen", "Sanna Mäkelä"),
        "esimerkki.fi",
        ("Teltan vetoketju rikki", "Tilaus myöhässä", "Lasku väärin", "Kiireellinen: palautus"),
        (
            "Hei, tilaukseni ei ole vieläkään saapunut.",
            "Teltan vetoketju meni rikki retkellä.",
            "Voisitteko tarkistaa laskun summan?",
            "Tarvitsen vastauksen ennen viikonloppua.",
            "Kiitos nopeasta avusta, tämä on meille tärkeää.",
            "Makuupussin koko oli väärä.",
        ),
    ),
    _Language(
        "et",
        ("utf-8", "iso-8859-15"),
        "Vs:",
        ("Mart Tamm", "Kadri Saar", "Jüri Õun"),
        "naide.ee",
        ("Tellimus hilineb", "Arve küsimus", "Telk on katki", "Kiire: tagastus"),
        (
            "Tere, mu tellimus ei ole veel kohale jõudnud.",
            "Telgi lukk läks esimesel matkal katki.",
            "Kas saaksite arve üle vaadata?",
            "Palun vastake enne nädalavahetust.",
            "Täname kiire abi eest.",
            "Magamiskoti suurus oli vale.",
        ),
    ),
    _Language(
        "sv",
        ("iso-8859-1", "utf-8"),
        "SV:",
        ("Elsa Lindqvist", "Johan Berg", "Åsa Ström"),
        "exempel.se",
        ("Beställning försenad", "Fel på fakturan", "Tältets dragkedja", "Brådskande: retur"),
        (
            "Hej, min beställning har inte kommit ännu.",
            "Dragkedjan på tältet gick sönder.",
            "Kan ni kontrollera fakturan?",
            "Jag behöver svar före helgen.",
            "Tack för snabb hjälp.",
            "Sovsäcken hade fel storlek.",
        ),
    ),
    _Language(
        "el",
        ("iso-8859-7", "utf-8"),
        "ΑΠ:",
        ("Νίκος Παπαδόπουλος", "Μαρία Γεωργίου"),
        "paradeigma.gr",
        ("Καθυστέρηση παραγγελίας", "Πρόβλημα με το τιμολόγιο", "Επείγον: επιστροφή"),
        (
            "Καλημέρα, η παραγγελία μου δεν έχει φτάσει ακόμα.",
            "Το φερμουάρ της σκηνής χάλασε.",
            "Μπορείτε να ελέγξετε το τιμολόγιο;",
            "Χρειάζομαι απάντηση πριν το Σαββατοκύριακο.",
            "Ευχαριστώ για τη γρήγορη βοήθεια.",
        ),
    ),
    _Language(
        "ru",
        ("koi8-r", "windows-1251", "utf-8"),
        "Ответ:",
        ("Иван Петров", "Ольга Смирнова"),
        "primer.ru",
        ("Заказ задерживается", "Ошибка в счёте", "Срочно: возврат палатки"),
        (
            "Здравствуйте, мой заказ до сих пор не пришёл.",
            "Молния на палатке сломалась.",
            "Проверьте, пожалуйста, сумму в счёте.",
            "Мне нужен ответ до выходных.",
            "Спасибо за быструю помощь.",
        ),
    ),
    _Language(
        "en",
        ("us-ascii", "utf-8"),
        "Re:",
        ("Emily Clarke", "James Wright", "Priya Shah"),
        "example.com",
        ("Order delayed", "Wrong invoice amount", "Tent zipper broken", "Urgent: return label"),
        (
            "Hello, my order has still not arrived.",
            "The tent zipper broke on the first trip.",
            "Could you check the invoice total?",
            "I need an answer before the weekend.",
            "Thanks for the quick help.",
            "The sleeping bag was the wrong size.",
        ),
    ),
    _Language(
        "de",
        ("iso-8859-1", "utf-8"),
        "AW:",
        ("Jürgen Müller", "Anna Schäfer"),
        "beispiel.de",
        ("Bestellung verspätet", "Fehler in der Rechnung", "Dringend: Rücksendung"),
        (
            "Guten Tag, meine Bestellung ist immer noch nicht angekommen.",
            "Der Reißverschluss des Zeltes ist kaputt.",
            "Können Sie die Rechnung prüfen?",
            "Ich brauche eine Antwort vor dem Wochenende.",
            "Vielen Dank für die schnelle Hilfe.",
        ),
    ),
)

_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass
class _Sent:
    message_id: str
    subject: str
    references: tuple[str, ...]


def generate_messages(
    n: int,
    *,
    seed: int = 0,
    attachments_every: int = 20,
    html_every: int = 5,
    reply_every: int = 3,
) -> Iterator[bytes]:
    rng = random.Random(seed)
    senders = _senders(rng)
    last_by_sender: dict[int, _Sent] = {}
    for index in range(n):
        sender_index = rng.randrange(len(senders))
        language, name, address = senders[sender_index]
        charset = rng.choice(language.charsets)
        subject = rng.choice(language.subjects)
        in_reply_to: tuple[str, ...] = ()
        previous = last_by_sender.get(sender_index)
        if previous is not None and index % reply_every == 0:
            subject = f"{language.reply_prefix} {previous.subject}"
            if index % (reply_every * 2) == 0:  # the other half thread by subject alone
                in_reply_to = (*previous.references, previous.message_id)
        message_id = f"gen{seed}.{index}@{language.domain}"
        when = START + timedelta(seconds=(index * SPAN_SECONDS // max(n, 1)) + rng.randrange(60))
        body = _body(rng, language)
        kind = "html" if index % html_every == 1 else "plain"
        attach = index % attachments_every == 2
        yield _render(
            name, address, subject, message_id, in_reply_to, when, body, charset, kind, attach
        )
        base = subject.removeprefix(f"{language.reply_prefix} ")
        last_by_sender[sender_index] = _Sent(message_id, base, in_reply_to[-5:])


def write_maildir(path: Path, n: int, seed: int = 0) -> int:
    """Write `n` generated messages into the Maildir at `path` (new/); returns the count."""
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    written = 0
    for index, payload in enumerate(generate_messages(n, seed=seed)):
        (path / "new" / f"{1_760_000_000 + index}.M{index}P{seed}.gen").write_bytes(payload)
        written += 1
    return written


def _senders(rng: random.Random) -> list[tuple[_Language, str, str]]:
    senders = []
    for number in range(200):
        language = LANGUAGES[number % len(LANGUAGES)]
        name = language.names[number % len(language.names)]
        local = f"customer{number}"
        senders.append((language, name, f"{local}@{language.domain}"))
    rng.shuffle(senders)
    return senders


def _body(rng: random.Random, language: _Language) -> str:
    target = rng.randrange(600, 4500)
    paragraphs = []
    size = 0
    while size < target:
        paragraph = " ".join(rng.choice(language.sentences) for _ in range(rng.randrange(2, 6)))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def _render(
    name: str,
    address: str,
    subject: str,
    message_id: str,
    in_reply_to: tuple[str, ...],
    when: datetime,
    body: str,
    charset: str,
    kind: str,
    attach: bool,
) -> bytes:
    if charset == "us-ascii" and not body.isascii():
        charset = "utf-8"
    encoded_name = _encoded_word(name, charset)
    headers = [
        f"Received: from mx.{address.split('@')[1]} by mx.northwind.example;"
        f" {format_datetime(when)}",
        f"From: {encoded_name} <{address}>",
        "To: support@northwind.example",
        f"Subject: {_encoded_word(subject, charset)}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{message_id}>",
        "MIME-Version: 1.0",
    ]
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to[-1]}>")
        headers.append("References: " + " ".join(f"<{ref}>" for ref in in_reply_to))
    text_part = _text_part(body, charset, "plain")
    if kind == "html":
        html = (
            "<html><body>" + "".join(f"<p>{p}</p>" for p in body.split("\n\n")) + "</body></html>"
        )
        content = _multipart("alternative", [text_part, _text_part(html, charset, "html")])
    else:
        content = text_part
    if attach:
        image = (
            b'Content-Type: image/png\r\nContent-Disposition: attachment; filename="photo.png"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(_PNG)
        )
        content = _multipart("mixed", [content, image])
    head = "\r\n".join(headers).encode("ascii") + b"\r\n"
    return head + content


def _text_part(text: str, charset: str, subtype: str) -> bytes:
    data = text.replace("\n", "\r\n").encode(charset, "replace")
    if charset == "utf-8":
        encoding, payload = "quoted-printable", quopri.encodestring(data)
    else:
        encoding, payload = ("7bit" if data.isascii() else "8bit"), data
    head = (
        f"Content-Type: text/{subtype}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}"
    )
    return head.encode("ascii") + b"\r\n\r\n" + payload + b"\r\n"


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_{subtype}_{len(parts)}_boundary"
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii") + part)
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _encoded_word(text: str, charset: str) -> str:
    if text.isascii():
        return text
    codec = "utf-8" if charset == "us-ascii" else charset
    data = text.encode(codec, "replace")
    return f"=?{codec}?b?{base64.b64encode(data).decode('ascii')}?="
