"""Writes the demo Maildir (inbox/demo/maildir/): support mail to a fictional outdoor-gear shop,
Northwind Outdoors, in the languages and encodings its customers really use.

    python -m inbox.demo.make_demo_maildir

Deterministic: fixed dates and file names, so the committed Maildir only changes when this file
does. Every name and domain is fictional (example.*, reserved or made up). See README.md here.
"""

from __future__ import annotations

import base64
import quopri
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from inbox.demo.demo_mail import MAILS, Mail

HERE = Path(__file__).resolve().parent
SUPPORT = "Northwind Outdoors <support@northwind.example>"
START = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)


def encoded_word(text: str, charset: str) -> str:
    if text.isascii():
        return text
    codec = "utf-8" if charset in ("us-ascii", "") else charset
    return f"=?{codec}?b?{base64.b64encode(text.encode(codec)).decode()}?="


def address(name: str, mail: str, charset: str) -> str:
    if not name:
        return mail
    shown = encoded_word(name, charset)
    if shown == name and any(char in name for char in ',;:"'):
        shown = f'"{name}"'  # RFC 5322 specials: quote the phrase, as Outlook does
    return f"{shown} <{mail}>"


def text_part(text: str, charset: str, encoding: str, label: str | None, subtype: str) -> bytes:
    data = text.replace("\n", "\r\n").encode(charset)
    shown = label if label is not None else charset
    content_type = f"text/{subtype}" + (f"; charset={shown}" if shown else "")
    if data.isascii():
        cte, payload = "7bit", data
    elif encoding == "qp":
        cte, payload = "quoted-printable", quopri.encodestring(data)
    elif encoding == "base64":
        cte, payload = "base64", base64.encodebytes(data)
    else:
        cte, payload = "8bit", data
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode("ascii") + payload + b"\r\n"


def attachment_part(filename: str, content_type: str, data: bytes) -> bytes:
    if filename.startswith("cid:"):
        cid = filename.removeprefix("cid:")
        head = (
            f"Content-Type: {content_type}\r\nContent-ID: <{cid}>\r\n"
            "Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        )
    else:
        # RFC 2231 for non-ASCII names, as Thunderbird and Apple Mail write them.
        quoted = "".join(
            chr(b) if b < 128 and (chr(b).isalnum() or chr(b) in "._-") else f"%{b:02X}"
            for b in filename.encode("utf-8")
        )
        disposition = (
            f'filename="{filename}"' if filename.isascii() else f"filename*=utf-8''{quoted}"
        )
        head = (
            f"Content-Type: {content_type}\r\nContent-Disposition: attachment; {disposition}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
    return head.encode("ascii") + base64.encodebytes(data)


def multipart(subtype: str, parts: list[bytes], boundary: str) -> bytes:
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()]
    out += [f"--{boundary}\r\n".encode() + part for part in parts]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def render(mail: Mail, ids: dict[str, str], chains: dict[str, list[str]]) -> bytes:
    if mail.raw_override:
        return mail.raw_override
    when = START + timedelta(minutes=mail.minutes)
    name, sender = mail.sender
    message_id = f"{mail.key}.{sender.split('@')[0]}@{sender.split('@')[1].encode('idna').decode()}"
    ids[mail.key] = message_id
    chain = chains.get(mail.reply_to_key, []) + (
        [ids[mail.reply_to_key]] if mail.reply_to_key else []
    )
    chains[mail.key] = chain
    headers = [
        ("Received", f"from mail.example by mx.northwind.example; {format_datetime(when)}"),
        ("From", address(name, sender, mail.charset)),
        ("To", SUPPORT),
        ("Subject", encoded_word(mail.subject, mail.charset)),
        ("Date", format_datetime(when)),
        ("Message-ID", f"<{message_id}>"),
        ("MIME-Version", "1.0"),
    ]
    if chain and mail.keep_references:
        headers.append(("In-Reply-To", f"<{chain[-1]}>"))
        headers.append(("References", " ".join(f"<{i}>" for i in chain)))
    headers += mail.headers
    html = text_part(mail.html, mail.charset, mail.encoding, mail.label, "html")
    body = text_part(mail.body, mail.charset, mail.encoding, mail.label, "plain")
    if mail.html and not mail.body:
        body = html  # HTML only, as Gmail's web client sends short mail
    elif mail.html:
        body = multipart("alternative", [body, html], f"alt-{mail.key}")
    if mail.attachments:
        parts = [attachment_part(n, t, d) for n, t, d in mail.attachments]
        body = multipart("mixed", [body, *parts], f"mixed-{mail.key}")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8")
    return head + body


def write(mails: list[Mail], root: Path) -> int:
    if root.exists():
        shutil.rmtree(root)
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
        (root / sub / ".keep").write_bytes(b"")
    ids: dict[str, str] = {}
    chains: dict[str, list[str]] = {}
    for number, mail in enumerate(mails):
        payload = render(mail, ids, chains)
        (root / "new" / f"{1_793_000_000 + number * 60}.M{number}P1.demo").write_bytes(payload)
    return len(mails)


def main() -> None:
    count = write(MAILS, HERE / "maildir")
    print(f"wrote {count} messages to {HERE / 'maildir'}")


if __name__ == "__main__":
    main()
