"""Regenerate the demo Maildir (`inbox/demo/maildir`) that `inbox run --demo` ingests.

Run it from the repository root: `.venv/bin/python -m inbox.demo.make_demo_maildir`.

The messages are written for this project (the fictional shop Northwind Outdoors) and show what a
real support inbox receives: eight languages in the charsets their mail clients actually use,
threads that only the References chain or only the subject can join, automatic mail that must
never reopen a conversation, and one broken message that must still be readable.

Why MIME is assembled here by hand rather than with `email.generator`: the generator normalizes
whatever it writes (it re-encodes 8-bit bodies, re-folds headers, always labels the charset),
which would hide exactly what the demo must show: raw 8-bit Latin-1 bodies, a body with no
charset label, a label that lies, a missing closing boundary. The pieces that are encoded come
from the stdlib `email` package all the same (`email.header` for RFC 2047 words,
`email.utils` for dates, addresses and RFC 2231 parameters, `email.base64mime` for bodies), and
every message is parsed back with `email` before it is written.

The output is deterministic: fixed dates, Message-IDs, MIME boundaries and Maildir file names,
so regenerating it gives byte-identical files and a clean `git diff`.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import html
import os
import shutil
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import charset as email_charset
from email.base64mime import body_encode as base64_body
from email.header import Header
from email.utils import encode_rfc2231, format_datetime, formataddr
from pathlib import Path

from inbox.demo import DEMO_MAILDIR

SUPPORT = "support@northwind.example"
SALES = "sales@northwind.example"
SUPPORT_NAME = "Northwind Outdoors Support"
MX = "mx.northwind.example"
STORE = "mail.northwind.example"
MALFORMED_MESSAGE_ID = "<20241130011207.7731.webform@kauppa.esimerkki.fi>"

HeaderValue = str | bytes
Headers = list[tuple[str, HeaderValue]]


# --------------------------------------------------------------------------------------------
# Header pieces
# --------------------------------------------------------------------------------------------


def at(day: int, hour: int, minute: int, second: int = 0, *, utc_offset: float = 2) -> datetime:
    """A moment in November 2024 (December for day > 30) in the sender's own UTC offset."""
    zone = timezone(timedelta(hours=utc_offset))
    if day > 30:
        return datetime(2024, 12, day - 30, hour, minute, second, tzinfo=zone)
    return datetime(2024, 11, day, hour, minute, second, tzinfo=zone)


def _charset(name: str, encoding: str) -> email_charset.Charset:
    result = email_charset.Charset(name)
    result.header_encoding = email_charset.BASE64 if encoding == "B" else email_charset.QP
    return result


def words(text: str, charset: str, encoding: str = "Q", name: str = "Subject") -> str:
    """RFC 2047 the way most clients write it: leading ASCII words stay plain ("Re: ...")."""
    if text.isascii():
        return text
    tokens = text.split(" ")
    plain_count = next(i for i, token in enumerate(tokens) if not token.isascii())
    header = Header(header_name=name)
    if plain_count:
        header.append(" ".join(tokens[:plain_count]), "us-ascii")
    header.append(" ".join(tokens[plain_count:]), _charset(charset, encoding))
    return header.encode(linesep="\n")


def mailbox(name: str, address: str, charset: str = "utf-8", encoding: str = "Q") -> str:
    """A display name plus address; a non-ASCII name becomes one RFC 2047 word sequence."""
    if name.isascii():
        return formataddr((name, address))
    encoded = Header(name, _charset(charset, encoding), header_name="From").encode(linesep="\n")
    return f"{encoded} <{address}>"


def id_list(*message_ids: str) -> str:
    """References folded one ID per line, as Thunderbird and Outlook write long chains."""
    return "\n ".join(message_ids)


def received_from(
    helo: str, ip: str, stamp: datetime, qid: str, recipient: str = SUPPORT
) -> list[tuple[str, HeaderValue]]:
    """The trace an inbound message gets: the sender's MTA to our MX, then LMTP to the store."""
    mx_time = stamp + timedelta(seconds=3)
    store_time = stamp + timedelta(seconds=4)
    return [
        (
            "Received",
            f"from {MX} ({MX} [192.0.2.25])\n\tby {STORE} (Dovecot) with LMTP id {qid.lower()}\n"
            f"\tfor <{recipient}>; {format_datetime(store_time)}",
        ),
        (
            "Received",
            f"from {helo} ({helo} [{ip}])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
            f"(256/256 bits))\n\tby {MX} (Postfix) with ESMTPS id {qid}\n"
            f"\tfor <{recipient}>; {format_datetime(mx_time)}",
        ),
    ]


def inbound(
    sender: str, helo: str, ip: str, stamp: datetime, qid: str, recipient: str = SUPPORT
) -> Headers:
    """Envelope headers the delivery agent adds to a customer's message."""
    return [
        ("Return-Path", f"<{sender}>"),
        ("Delivered-To", recipient),
        *received_from(helo, ip, stamp, qid, recipient),
    ]


def outbound_copy(stamp: datetime, qid: str) -> Headers:
    """Our own agent's reply, Bcc'd back into the support mailbox by the agent's client."""
    return [
        ("Return-Path", f"<{SUPPORT}>"),
        ("Delivered-To", SUPPORT),
        (
            "Received",
            f"from agent-ws-07.office.northwind.example (unknown [10.20.0.57])\n"
            f"\tby {MX} (Postfix) with ESMTPSA id {qid}; {format_datetime(stamp)}",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Body pieces
# --------------------------------------------------------------------------------------------


@dataclass
class Part:
    """One MIME entity: its headers and its already transfer-encoded body bytes."""

    headers: Headers
    body: bytes

    def render(self) -> bytes:
        return render_headers(self.headers) + b"\n" + self.body


def render_headers(headers: Iterable[tuple[str, HeaderValue]]) -> bytes:
    lines = []
    for name, value in headers:
        raw = value if isinstance(value, bytes) else value.encode("ascii")
        lines.append(name.encode("ascii") + b": " + raw + b"\n")
    return b"".join(lines)


def transfer_encode(raw: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64_body(raw, maxlinelen=76, eol="\n").encode("ascii")
    if cte == "quoted-printable":
        return binascii.b2a_qp(raw, istext=True)
    return raw


def text(
    content: str,
    charset: str,
    cte: str,
    subtype: str = "plain",
    *,
    label: str | None = None,
    params: str = "",
) -> Part:
    """A text part; `label` overrides the declared charset (empty string: no charset at all)."""
    raw = content.encode(charset)
    declared = charset if label is None else label
    content_type = f"text/{subtype}"
    if declared:
        content_type += f'; charset="{declared}"'
    content_type += params
    return Part(
        [("Content-Type", content_type), ("Content-Transfer-Encoding", cte)],
        transfer_encode(raw, cte),
    )


def multipart(
    subtype: str,
    boundary: str,
    parts: Sequence[Part],
    *,
    params: str = "",
    preamble: str = "This is a multi-part message in MIME format.\n",
) -> Part:
    chunks = [preamble.encode("ascii")]
    for part in parts:
        chunks.append(f"\n--{boundary}\n".encode("ascii"))
        chunks.append(part.render().rstrip(b"\n") + b"\n")
    chunks.append(f"\n--{boundary}--\n".encode("ascii"))
    header = f'multipart/{subtype};{params}\n\tboundary="{boundary}"'
    return Part([("Content-Type", header)], b"".join(chunks))


def attachment(
    data: bytes,
    content_type: str,
    filename: str,
    *,
    inline: bool = False,
    content_id: str | None = None,
) -> Part:
    """An attachment named both ways real clients do: RFC 2231 and an RFC 2047 `name`."""
    if filename.isascii():
        name_param = f'name="{filename}"'
        disposition_param = f'filename="{filename}"'
    else:
        name_param = f'name="{words(filename, "utf-8", "Q", "Content-Type")}"'
        disposition_param = f"filename*={encode_rfc2231(filename, 'utf-8')}"
    headers: Headers = [("Content-Type", f"{content_type};\n\t{name_param}")]
    disposition = "inline" if inline else "attachment"
    headers.append(("Content-Disposition", f"{disposition};\n\t{disposition_param}"))
    if content_id:
        headers.append(("Content-ID", f"<{content_id}>"))
    headers.append(("Content-Transfer-Encoding", "base64"))
    return Part(headers, transfer_encode(data, "base64"))


def message(headers: Headers, body: Part) -> bytes:
    """Message headers, then MIME-Version and the body's own Content-* headers."""
    return render_headers([*headers, ("MIME-Version", "1.0"), *body.headers]) + b"\n" + body.body


def quote(content: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in content.strip("\n").split("\n"))


def paragraphs_html(content: str) -> str:
    blocks = content.strip("\n").split("\n\n")
    return "".join(
        f"<div>{'<br>'.join(html.escape(line, quote=False) for line in block.split(chr(10)))}"
        "</div><div><br></div>"
        for block in blocks
    )


def gmail_html(content: str, attribution: str = "", quoted: str = "") -> str:
    """Gmail's markup: dir="ltr" divs, and the history in div.gmail_quote > blockquote."""
    out = f'<div dir="ltr">{paragraphs_html(content)}</div>'
    if attribution:
        out += (
            '<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            f"{html.escape(attribution, quote=False)}<br></div>"
            '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
            'border-left:1px solid rgb(204,204,204);padding-left:1ex">'
            f"{paragraphs_html(quoted)}</blockquote></div>"
        )
    return out + "\n"


OUTLOOK_HEAD = """<html xmlns:v="urn:schemas-microsoft-com:vml" \
xmlns:o="urn:schemas-microsoft-com:office:office" \
xmlns:w="urn:schemas-microsoft-com:office:word" \
xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" xmlns="http://www.w3.org/TR/REC-html40">
<head>
<meta http-equiv="Content-Type" content="text/html; charset={charset}">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<style><!--
/* Font Definitions */
@font-face
\t{{font-family:"Cambria Math";
\tpanose-1:2 4 5 3 5 4 6 3 2 4;}}
@font-face
\t{{font-family:Calibri;
\tpanose-1:2 15 5 2 2 2 4 3 2 4;}}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;
\tmso-fareast-language:EN-US;}}
a:link, span.MsoHyperlink
\t{{mso-style-priority:99;
\tcolor:#0563C1;
\ttext-decoration:underline;}}
.MsoChpDefault
\t{{mso-style-type:export-only;
\tfont-size:10.0pt;}}
@page WordSection1
\t{{size:612.0pt 792.0pt;
\tmargin:70.85pt 2.0cm 2.0cm 2.0cm;}}
div.WordSection1
\t{{page:WordSection1;}}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->
</head>
<body lang="{lang}" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">
<div class="WordSection1">
"""


def outlook_html(
    charset: str,
    lang: str,
    content: str,
    header_block: Sequence[tuple[str, str]] = (),
    quoted: str = "",
    signature_html: str = "",
) -> str:
    """Outlook's Word-generated markup: MsoNormal paragraphs, <o:p>, a bordered header block."""

    def paragraphs(block_text: str) -> str:
        out = []
        for line in block_text.strip("\n").split("\n"):
            body = html.escape(line, quote=False) if line else "<o:p>&nbsp;</o:p>"
            out.append(f'<p class="MsoNormal">{body}<o:p></o:p></p>\n')
        return "".join(out)

    out = OUTLOOK_HEAD.format(charset=charset, lang=lang) + paragraphs(content) + signature_html
    if header_block:
        fields = "<br>\n".join(
            f"<b>{html.escape(name)}</b> {html.escape(value)}" for name, value in header_block
        )
        out += (
            '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">\n'
            f'<p class="MsoNormal">{fields}<o:p></o:p></p>\n</div>\n'
            '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n' + paragraphs(quoted)
        )
    return out + "</div>\n</body>\n</html>\n"


def outlook_text(content: str, header_block: Sequence[tuple[str, str]] = (), quoted: str = "") -> str:
    """Outlook's plain-text alternative: the header block and the history, unquoted."""
    out = content.strip("\n") + "\n"
    if header_block:
        out += "\n" + "\n".join(f"{name} {value}" for name, value in header_block) + "\n\n"
        out += quoted.strip("\n") + "\n"
    return out


def tiny_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one flat colour, a few hundred bytes: real image bytes, no binary blob."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    pixels = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def tiny_pdf(line: str) -> bytes:
    """A one-page PDF with one line of ASCII text and a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out + trailer.encode()


# --------------------------------------------------------------------------------------------
# The mailbox
# --------------------------------------------------------------------------------------------


@dataclass
class Entry:
    folder: str  # "new" or "cur"
    flags: str  # Maildir info flags for cur/ ("S", "RS", "" ...)
    delivered: datetime
    data: bytes


@dataclass
class DemoBox:
    entries: list[Entry] = field(default_factory=list)

    def add(self, data: bytes, delivered: datetime, *, folder: str = "cur", flags: str = "S") -> None:
        self.entries.append(Entry(folder, flags, delivered, data))

    def file_names(self) -> list[str]:
        """Maildir names `<epoch>.M<n>P1.demo`, with `:2,<flags>` only in cur/."""
        names = []
        for number, entry in enumerate(self.entries, start=1):
            key = f"{int(entry.delivered.timestamp())}.M{number}P1.demo"
            names.append(f"{entry.folder}/{key}:2,{entry.flags}" if entry.folder == "cur" else f"new/{key}")
        return names


# --------------------------------------------------------------------------------------------
# Finnish: an order that never arrived (ISO-8859-1 8bit, UTF-8, iPhone, Outlook "VS:")
# --------------------------------------------------------------------------------------------

AINO = "aino@example.fi"
AINO_1 = "<8f2c1e0a-4b7d-4c52-9d1e-3f6a0b2c7d11@example.fi>"
AINO_2 = "<CAN7wd3=Q1x8h4Kp0v@northwind.example>"
AINO_3 = "<6E1B2C4D-9A7F-4E3B-8C21-5D0F9A3B7E42@example.fi>"
AINO_4 = "<HE1PR07MB4123A1B2C3D4E5F6@HE1PR07MB4123.eurprd07.prod.outlook.example>"

AINO_FIRST = """Hei,

tilasin 14.11. teltan (Northwind Fjäll 2) ja kaksi makuupussia, tilausnumero 48213.
Seurantakoodin mukaan paketti on ollut "matkalla" jo viikon, mutta mitään ei ole
kuulunut.

Lähdemme Lappiin perjantaina, joten asia on minulle kiireellinen. Voitteko
tarkistaa, missä paketti on, tai lähettää tilalle uuden pikatoimituksena?

Ystävällisin terveisin
Aino Virtanen
040 000 1234
"""

SANNA_REPLY = """Hei Aino,

kiitos viestistäsi ja pahoittelut viivästyksestä. Tarkistin asian kuljetusyhtiöltä:
paketti on jäänyt Vantaan lajittelukeskukseen virheellisen osoitetarran vuoksi.
Lähetämme sinulle tänään korvaavan toimituksen pikana, ja sen pitäisi olla perillä
torstaina.

Uusi seurantakoodi: NW-FI-7730215

Ystävällisin terveisin
Sanna Laine
"""

SANNA_SIGNATURE = """--\x20
Northwind Outdoors | asiakaspalvelu
support@northwind.example | ma-pe 8-17
"""


def thread_order_not_arrived(box: DemoBox) -> None:
    sent = at(25, 10, 12, 7)
    box.add(
        message(
            [
                *inbound(AINO, "smtp.example.fi", "198.51.100.23", sent, "4Y1kQz2mVbz9rT1"),
                ("From", "Aino Virtanen <aino@example.fi>"),
                ("To", SUPPORT),
                ("Subject", words("Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen", "iso-8859-1")),
                ("Date", format_datetime(sent)),
                ("Message-ID", AINO_1),
                ("User-Agent", "Roundcube Webmail/1.6.9"),
            ],
            text(AINO_FIRST, "iso-8859-1", "8bit", params="; format=flowed"),
        ),
        sent,
        flags="RS",
    )
    replied = at(25, 14, 5, 31)
    reply = (
        SANNA_REPLY
        + SANNA_SIGNATURE
        + "\nma 25.11.2024 klo 10.12 Aino Virtanen <aino@example.fi> kirjoitti:\n"
        + quote(AINO_FIRST)
        + "\n"
    )
    box.add(
        message(
            [
                *outbound_copy(replied, "4Y1lXc0vQ7z9rT4"),
                ("From", mailbox("Sanna Laine | Northwind Outdoors", SUPPORT)),
                ("To", "Aino Virtanen <aino@example.fi>"),
                ("Bcc", SUPPORT),
                ("Subject", words("Re: Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen", "utf-8")),
                ("Date", format_datetime(replied)),
                ("Message-ID", AINO_2),
                ("In-Reply-To", AINO_1),
                ("References", AINO_1),
            ],
            text(reply, "utf-8", "quoted-printable"),
        ),
        replied,
    )
    evening = at(25, 21, 47, 12)
    iphone = (
        "Kiitos nopeasta vastauksesta! Ehtiikö paketti varmasti torstaiksi? Jos ei, voinko\n"
        "noutaa sen Helsingin myymälästä?\n\nAino\n\nLähetetty iPhonesta\n\n"
        "> Sanna Laine | Northwind Outdoors <support@northwind.example> kirjoitti "
        "25.11.2024 kello 14.05:\n>\n" + quote(SANNA_REPLY + SANNA_SIGNATURE) + "\n"
    )
    box.add(
        message(
            [
                *inbound(AINO, "smtp.example.fi", "198.51.100.23", evening, "4Y1wRt5kHnz9rV2"),
                ("From", "Aino Virtanen <aino@example.fi>"),
                ("Content-Type", "text/plain;\n\tcharset=utf-8"),
                ("Subject", words("Re: Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen", "utf-8", "B")),
                ("Date", format_datetime(evening)),
                ("Message-ID", AINO_3),
                ("In-Reply-To", AINO_2),
                ("References", id_list(AINO_1, AINO_2)),
                ("To", mailbox("Sanna Laine | Northwind Outdoors", SUPPORT)),
                ("X-Mailer", "iPhone Mail (22B91)"),
            ],
            text(iphone, "utf-8", "quoted-printable"),
        ),
        evening,
    )
    # Outlook on her work laptop answers the same mail again, but this client keeps no
    # References or In-Reply-To: only the Finnish "VS:" subject ties it to the thread.
    early = at(27, 7, 2, 44)
    content = (
        "Hei,\n\nseuranta näyttää yhä \u201dlähetys vastaanotettu\u201d, eikä paketti ole "
        "liikkunut. Tämä on nyt todella kiire \u2013 lähtö on perjantaiaamuna klo 6. "
        "Soittakaa minulle numeroon 040 000 1234.\n\nt. Aino\n"
    )
    block = [
        ("Lähettäjä:", f"Sanna Laine | Northwind Outdoors <{SUPPORT}>"),
        ("Lähetetty:", "maanantai 25. marraskuuta 2024 14.05"),
        ("Vastaanottaja:", "Aino Virtanen <aino@example.fi>"),
        ("Aihe:", "Re: Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen"),
    ]
    box.add(
        message(
            [
                *inbound(AINO, "smtp.example.fi", "198.51.100.24", early, "4Y3bNf1Jc8z9rW6"),
                ("From", "Aino Virtanen <aino@example.fi>"),
                ("To", "\"Sanna Laine | Northwind Outdoors\" <support@northwind.example>"),
                ("Subject", words("VS: Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen", "windows-1252")),
                ("Thread-Topic", words("Tilaukseni 48213 ei ole vieläkään saapunut - kiireellinen", "windows-1252")),
                ("Thread-Index", "AQHbP0x2Vv9nK3d1Tk6dV0iBq8m1eLKw"),
                ("Date", format_datetime(early)),
                ("Message-ID", AINO_4),
                ("Accept-Language", "fi-FI, en-US"),
                ("Content-Language", "fi-FI"),
                ("X-MS-Has-Attach", ""),
            ],
            multipart(
                "alternative",
                "_000_HE1PR07MB4123A1B2C3D4E5F6HE1PR07MB4123eurprd_",
                [
                    text(outlook_text(content, block, SANNA_REPLY), "windows-1252", "quoted-printable"),
                    text(
                        outlook_html("Windows-1252", "FI", content, block, SANNA_REPLY),
                        "windows-1252",
                        "quoted-printable",
                        "html",
                    ),
                ],
                preamble="",
            ),
        ),
        early,
        folder="new",
    )
