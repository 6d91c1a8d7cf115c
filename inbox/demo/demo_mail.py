"""The demo's messages, written for this project. Senders and companies are fictional."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclass
class Mail:
    key: str
    sender: tuple[str, str]
    subject: str
    body: str
    charset: str = "utf-8"
    minutes: int = 0
    reply_to_key: str = ""
    #: "qp", "base64" or "8bit" (ignored for 7-bit text).
    encoding: str = "qp"
    label: str | None = None  # the charset written in the header, when it lies or is absent
    html: str = ""
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    keep_references: bool = True
    raw_override: bytes = b""


AINO = ("Aino Virtanen", "aino.virtanen@esimerkki.fi")
MART = ("Mart Tamm", "mart.tamm@naide.ee")
IVAN = ("Иван Петров", "ivan@пример.испытание")
OLGA = ("Ольга Смирнова", "olga.smirnova@primer.example")
NIKOS = ("Νίκος Παπαδόπουλος", "nikos@paradeigma.example")
ELSA = ("Elsa Lindqvist", "elsa.lindqvist@exempel.example")
JURGEN = ("Jürgen Müller", "j.mueller@beispiel.example")
EMILY = ("Emily Clarke", "emily.clarke@example.com")
BIGCORP = ("Procurement, BigCorp", "procurement@bigcorp.example")
KENJI = ("山田 健二", "kenji.yamada@rei.example")
SANNA = ("Sanna Mäkelä", "sanna@esimerkki.fi")
KADRI = ("Kadri Saar", "kadri.saar@naide.ee")
MARIA = ("Μαρία Γεωργίου", "maria.g@paradeigma.example")
JOHAN = ("Johan Berg", "johan.berg@exempel.example")
PRIYA = ("Priya Shah", "priya@example.org")

MAILS = [
    # --- Finnish: a broken tent, with a photo; the follow-up keeps its References -----------
    Mail(
        "tent",
        AINO,
        "Teltan vetoketju rikki",
        "Hei,\n\nostin teiltä Vaellus 3 -teltan viime kuussa, ja sen vetoketju meni rikki jo "
        "ensimmäisellä retkellä. Kuva liitteenä. Voinko saada uuden teltan tai korjauksen?\n\n"
        "Ystävällisin terveisin\nAino Virtanen",
        charset="iso-8859-1",
        encoding="8bit",
        minutes=0,
        attachments=[("teltta.png", "image/png", PNG)],
    ),
    Mail(
        "tent-2",
        AINO,
        "VS: Teltan vetoketju rikki",
        "Kiitos nopeasta vastauksesta! Lähetän teltan huomenna postissa.\n\n"
        "Lähetetty iPhonesta\n\n"
        "ma 2.11.2026 klo 10.12 Northwind Outdoors <support@northwind.example> kirjoitti:\n"
        "> Hei Aino, lähetä teltta meille, niin vaihdamme sen uuteen.",
        minutes=300,
        reply_to_key="tent",
    ),
    # --- Estonian: a billing question; the reply lost its References (subject threading) ---
    Mail(
        "arve",
        MART,
        "Arve on vale",
        "Tere!\n\nSain arve nr 2026-118, kuid summa on vale: tellisin ühe magamiskoti, arvel "
        "on kaks. Palun saatke parandatud arve.\n\nLugupidamisega\nMart Tamm",
        charset="iso-8859-15",
        minutes=20,
    ),
    Mail(
        "arve-2",
        MART,
        "Vs: Arve on vale",
        "Kas saaksite vastata? Maksetähtaeg on reedel.\n\n"
        "Mart Tamm <mart.tamm@naide.ee> kirjutas kuupäeval E, 2. nov 2026 kell 09:50:\n"
        "> Sain arve nr 2026-118, kuid summa on vale.",
        charset="iso-8859-15",
        minutes=1500,
        reply_to_key="arve",
        keep_references=False,
    ),
    # --- Russian: KOI8-R, urgent; the reply threads by its References -----------------------
    Mail(
        "palatka",
        IVAN,
        "Срочно: палатка порвалась",
        "Здравствуйте!\n\nПалатка порвалась на второй день похода. Мне срочно нужна замена: "
        "через неделю снова в горы.\n\nИван",
        charset="koi8-r",
        encoding="8bit",
        minutes=45,
    ),
    Mail(
        "palatka-2",
        IVAN,
        "Ответ: Срочно: палатка порвалась",
        "Спасибо, жду новую палатку.\n\n2 нояб. 2026 г., в 12:30, Northwind Outdoors "
        "<support@northwind.example> написал(а):\n> Мы отправим замену завтра.",
        charset="koi8-r",
        encoding="8bit",
        minutes=400,
        reply_to_key="palatka",
    ),
    # --- Russian: windows-1251 with no charset label at all ---------------------------------
    Mail(
        "vozvrat",
        OLGA,
        "Возврат спального мешка",
        "Добрый день! Хочу вернуть спальный мешок: он слишком маленький. Как оформить "
        "возврат? Спасибо, Ольга",
        charset="windows-1251",
        encoding="8bit",
        label="",
        minutes=70,
    ),
    # --- Greek: ISO-8859-7 in base64; the reply threads by subject only -------------------
    Mail(
        "paradosi",
        NIKOS,
        "Επείγον: η παραγγελία δεν έφτασε",
        "Καλημέρα,\n\nη παραγγελία μου 4471 δεν έχει φτάσει ακόμα, ενώ πέρασαν δύο εβδομάδες. "
        "Είναι επείγον, φεύγω για ορειβασία το Σάββατο.\n\nΝίκος",
        charset="iso-8859-7",
        encoding="base64",
        minutes=90,
    ),
    Mail(
        "paradosi-2",
        NIKOS,
        "ΑΠ: Επείγον: η παραγγελία δεν έφτασε",
        "Ευχαριστώ, η παραγγελία έφτασε σήμερα!\n\nΣτάλθηκε από το iPhone μου",
        charset="iso-8859-7",
        encoding="base64",
        minutes=2000,
        reply_to_key="paradosi",
        keep_references=False,
    ),
    # --- Swedish: Latin-1 quoted-printable, reply with Apple Mail attribution --------------
    Mail(
        "sovsack",
        ELSA,
        "Fel storlek på sovsäcken",
        "Hej!\n\nJag beställde en sovsäck i storlek L men fick storlek S. Kan jag byta den?"
        "\n\nMed vänliga hälsningar\nElsa",
        charset="iso-8859-1",
        minutes=130,
    ),
    Mail(
        "sovsack-2",
        ELSA,
        "SV: Fel storlek på sovsäcken",
        "Tack, returetiketten fungerade.\n\n2 nov. 2026 kl. 14:05 skrev Northwind Outdoors "
        "<support@northwind.example>:\n> Här är en returetikett.",
        charset="iso-8859-1",
        minutes=900,
        reply_to_key="sovsack",
    ),
    # --- German: urgent billing with an invoice PDF (RFC 2231 name) ------------------------
    Mail(
        "rechnung",
        JURGEN,
        "Dringend: Rechnung doppelt belastet",
        "Guten Tag,\n\nmeine Kreditkarte wurde für die Rechnung 2026-131 zweimal belastet. "
        "Bitte erstatten Sie den doppelten Betrag dringend zurück.\n\n"
        "-- \nJürgen Müller\nBergfreunde e.V.",
        minutes=150,
        attachments=[("Rechnung_März.pdf", "application/pdf", PDF)],
    ),
    Mail(
        "rechnung-2",
        JURGEN,
        "AW: Dringend: Rechnung doppelt belastet",
        "Vielen Dank, die Erstattung ist angekommen.\n\n"
        "Am 03.11.2026 um 09:15 schrieb Northwind Outdoors:\n> Wir haben den Betrag erstattet.",
        minutes=2900,
        reply_to_key="rechnung",
    ),
    # --- English: Gmail HTML-only, then an HTML reply quoting it in gmail_quote ------------
    Mail(
        "order",
        EMILY,
        "Order #4411 hasn't arrived",
        "",
        html='<div dir="ltr">Hello,<br><br>my order <b>#4411</b> was due last week and '
        "the tracking page hasn't moved since Friday. Could you check?<br><br>Thanks,<br>"
        "Emily</div>",
        minutes=200,
    ),
    Mail(
        "order-2",
        EMILY,
        "Re: Order #4411 hasn't arrived",
        "",
        html='<div dir="ltr">Got it today, thank you!</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Tue, 3 Nov 2026 at 10:02, Northwind Outdoors '
        "&lt;support@northwind.example&gt; wrote:</div><blockquote>It left our warehouse this "
        "morning; this is urgent for us too.</blockquote></div>",
        minutes=1700,
        reply_to_key="order",
    ),
    # --- A VIP domain, Outlook style: plain + HTML, reply with a header block ---------------
    Mail(
        "bulk",
        BIGCORP,
        "Quote request: 40 tents for our staff retreat",
        "Hi,\n\nWe would like a quote for 40 Vaellus 3 tents delivered to Espoo by 15 "
        "December.\n\nBest regards,\nProcurement team, BigCorp",
        html="<html><body><p>Hi,</p><p>We would like a quote for 40 Vaellus 3 tents delivered"
        " to Espoo by 15 December.</p><p>Best regards,<br>Procurement team, BigCorp</p>"
        "</body></html>",
        minutes=240,
        headers=[("X-Mailer", "Microsoft Outlook 16.0"), ("Organization", "BigCorp")],
    ),
    Mail(
        "bulk-2",
        BIGCORP,
        "RE: Quote request: 40 tents for our staff retreat",
        "Thanks, the quote is approved. Please send the invoice.\n\n"
        "________________________________\nFrom: Northwind Outdoors <support@northwind.example>"
        "\nSent: Tuesday, November 3, 2026 11:20 AM\nTo: Procurement\n"
        "Subject: Re: Quote request\n\nHere is our quote: 40 x Vaellus 3.",
        minutes=3000,
        reply_to_key="bulk",
        headers=[("X-Mailer", "Microsoft Outlook 16.0")],
    ),
    # --- Japanese in ISO-2022-JP -----------------------------------------------------------
    Mail(
        "tento",
        KENJI,
        "テントの交換について",
        "お世話になっております。\n先週購入したテントのファスナーが壊れました。"
        "交換をお願いできますでしょうか。\n山田",
        charset="iso-2022-jp",
        minutes=260,
    ),
    # --- Latin-1 text labelled us-ascii (Outlook Express did this) ----------------------------
    Mail(
        "takuu",
        SANNA,
        "Kysymys takuusta",
        "Hei! Kuinka pitkä takuu makuupussilla on? Vetoketju jumittaa jo nyt.\n\nSanna",
        charset="iso-8859-1",
        encoding="8bit",
        label="us-ascii",
        minutes=280,
    ),
    # --- Estonian at night, UTF-8 base64, with an inline photo -------------------------------
    Mail(
        "laupaev",
        KADRI,
        "Kiire küsimus: kas saadate laupäeval?",
        "Tere! Kas tellimus jõuab laupäevaks kohale? Lisasin pildi vigasest pakist.\n\nKadri",
        encoding="base64",
        minutes=960,
        html="<p>Tere! Kas tellimus jõuab laupäevaks kohale? Lisasin pildi vigasest pakist.</p>"
        '<img src="cid:pakk@naide.ee"><p>Kadri</p>',
        attachments=[("cid:pakk@naide.ee", "image/png", PNG)],
    ),
    # --- Finnish urgent invoice, windows-1252 Outlook HTML, RFC 2231 PDF name ---------------
    Mail(
        "lasku",
        SANNA,
        "KIIREELLINEN: väärä tuote toimitettu",
        "Hei,\n\nsaimme väärän tuotteen ja lasku erääntyy perjantaina. Lasku liitteenä.\n\n"
        "Sanna Mäkelä\nRetkeilyseura ry",
        charset="windows-1252",
        minutes=330,
        html="<p>Hei,</p><p>saimme väärän tuotteen ja lasku erääntyy perjantaina. Lasku "
        "liitteenä.</p><p>Sanna Mäkelä<br>Retkeilyseura ry</p>",
        attachments=[("lasku_kesäkuu.pdf", "application/pdf", PDF)],
    ),
    # --- Russian invoice question with a Cyrillic file name ----------------------------------
    Mail(
        "schet",
        OLGA,
        "Счёт на оплату",
        "Здравствуйте! Пришлите, пожалуйста, счёт на оплату для нашей организации. "
        "Реквизиты во вложении.\n\nОльга",
        minutes=360,
        attachments=[("Счёт.pdf", "application/pdf", PDF)],
    ),
    # --- Automatic mail: out-of-office, newsletter, bounce -----------------------------------
    Mail(
        "ooo",
        ("Mikko Korhonen", "mikko.korhonen@esimerkki.fi"),
        "Poissa toimistolta: Re: Tarjous",
        "Olen lomalla 9.11. asti. Kiireellisissä asioissa ota yhteyttä Sannaan.",
        minutes=380,
        headers=[("Auto-Submitted", "auto-replied"), ("X-Autoreply", "yes")],
    ),
    Mail(
        "news",
        ("TrailGear News", "news@trailgear.example"),
        "Winter sale: 30% off sleeping bags",
        "Our winter sale starts today. Unsubscribe: https://trailgear.example/u",
        minutes=400,
        headers=[
            ("Precedence", "bulk"),
            ("List-Id", "<news.trailgear.example>"),
            ("List-Unsubscribe", "<mailto:unsubscribe@trailgear.example>"),
        ],
    ),
    # --- More single questions, one per language ---------------------------------------------
    Mail(
        "saappaat",
        AINO,
        "Kenkien koko",
        "Hei! Mitä kokoa vaelluskengät ovat, jos käytän normaalisti kokoa 39? Kiitos!",
        minutes=1000,
    ),
    Mail(
        "matk",
        MART,
        "Matkatelgi garantii",
        "Tere, kui pikk on telgi garantii ja kas see kehtib ka Lätis?",
        minutes=1100,
    ),
    Mail(
        "fonar",
        IVAN,
        "Фонарь не включается",
        "Добрый день. Налобный фонарь не включается после зарядки. Что делать?",
        minutes=1200,
    ),
    Mail(
        "sakidio",
        MARIA,
        "Σακίδιο πλάτης: διαθεσιμότητα",
        "Γεια σας, πότε θα είναι ξανά διαθέσιμο το σακίδιο 45 λίτρων σε μπλε χρώμα;",
        minutes=1300,
    ),
    Mail(
        "stavar",
        JOHAN,
        "Vandringsstavar saknas i paketet",
        "Hej, paketet kom i dag men vandringsstavarna saknades. Ordernummer 5520.",
        charset="iso-8859-1",
        minutes=1400,
    ),
    Mail(
        "gaskocher",
        JURGEN,
        "Gaskocher: Ersatzteil",
        "Hallo, gibt es für den Gaskocher Alpin 2 ein Ersatzventil?",
        charset="iso-8859-15",
        minutes=1600,
    ),
    Mail(
        "stove",
        PRIYA,
        "Stove fuel question",
        "Hi, can I use the Alpin 2 stove with butane-propane mix canisters?\n\n-- \nPriya Shah\n"
        "Trail running club",
        minutes=1800,
    ),
    Mail(
        "thanks",
        EMILY,
        "Thank you!",
        "Just wanted to say the new tent is great. Thanks!",
        minutes=3100,
    ),
]


def _bounce() -> bytes:
    return (
        b"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.esimerkki.fi>\r\n"
        b"To: support@northwind.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Date: Tue, 03 Nov 2026 08:00:00 +0000\r\nMessage-ID: <bounce.1@mx.esimerkki.fi>\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        b"This is the mail system at host mx.esimerkki.fi.\r\n"
        b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        b"<vanha.osoite@esimerkki.fi>: mailbox unavailable\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.esimerkki.fi\r\n\r\n"
        b"Final-Recipient: rfc822; vanha.osoite@esimerkki.fi\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n--r--\r\n"
    )


def _malformed() -> bytes:
    """A broken mailer: raw UTF-8 in the Subject and a multipart that never closes."""
    return (
        b"From: Retkeilija <retkeilija@esimerkki.fi>\r\nTo: support@northwind.example\r\n"
        + "Subject: Tilaus ei näy sivuilla\r\n".encode()
        + b"Date: Wed, 04 Nov 2026 06:10:00 +0000\r\nMessage-ID: <broken.1@esimerkki.fi>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Hei, tilaukseni ei näy tililläni, vaikka maksu on veloitettu.\r\n".encode()
    )


def _duplicate_pair() -> tuple[bytes, bytes]:
    """One customer mail delivered to two of our addresses: only the delivery headers differ."""
    common = (
        b"From: Johan Berg <johan.berg@exempel.example>\r\n"
        b"To: support@northwind.example, sales@northwind.example\r\n"
        b"Subject: =?iso-8859-1?q?Offert:_12_sovs=E4ckar?=\r\n"
        b"Date: Tue, 03 Nov 2026 12:00:00 +0000\r\n"
        b"Message-ID: <offert.1@exempel.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Hej! Kan ni ge oss en offert på 12 sovsäckar till vår scoutkår?\r\n".encode("latin-1")
    )
    return (
        b"Delivered-To: support@northwind.example\r\nReceived: from a by mx1\r\n" + common,
        b"Delivered-To: sales@northwind.example\r\nReceived: from a by mx2\r\n" + common,
    )


first_copy, second_copy = _duplicate_pair()
MAILS += [
    Mail("bounce", ("", "x@x"), "", "", raw_override=_bounce()),
    Mail("broken", ("", "x@x"), "", "", raw_override=_malformed()),
    Mail("offert-a", ("", "x@x"), "", "", raw_override=first_copy),
    Mail("offert-b", ("", "x@x"), "", "", raw_override=second_copy),
]
