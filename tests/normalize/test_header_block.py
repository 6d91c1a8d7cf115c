"""A header block broken by continuation lines that lack their leading whitespace.

Tracking software writes long base64 header values over several lines without folding them;
the standard parser then ends the headers at the first such line. The fixtures are written
here; the shape is what list and tracking software sends.
"""

from __future__ import annotations

import base64
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.normalize.email import normalize_email
from inbox.normalize.header_block import mend_header_block

TOKEN = base64.b64encode(random.Random(7).randbytes(400)).decode()
BODY = "Hyvää päivää, tilaukseni on myöhässä."


def unfolded(token: str, width: int) -> str:
    """A long value written over lines of `width` characters with no leading whitespace."""
    return "\r\n".join(token[i : i + width] for i in range(0, len(token), width))


def broken_mail(*, before: str = "", width: int = 76) -> bytes:
    head = (
        f"Return-Path: <aino@esimerkki.fi>\r\n{before}"
        f"X-Campaign-Track: {unfolded(TOKEN, width)}\r\n"
        "From: Aino Virtanen <aino@esimerkki.fi>\r\n"
        "Subject: Tilaus 4471\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    )
    body = (
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{BODY}\r\n"
        "--b1\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="kuitti.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    return head.encode() + body.encode()


def test_subject_sender_and_parts_survive_an_unfolded_tracking_header() -> None:
    normalized = normalize_email(broken_mail())
    assert normalized.subject == "Tilaus 4471"
    assert normalized.sender is not None and normalized.sender.address == "aino@esimerkki.fi"
    assert normalized.text.strip() == BODY
    assert [a.filename for a in normalized.attachments] == ["kuitti.pdf"]
    assert any("X-Campaign-Track" in error for error in normalized.errors)
    # The broken value is kept whole (its lines joined), for a rule that tests it.
    kept = dict(normalized.headers)["x-campaign-track"]
    assert kept.replace(" ", "").startswith(TOKEN[:300])


@settings(max_examples=60, deadline=None)
@given(width=st.integers(min_value=8, max_value=200), bare_lf=st.booleans())
def test_any_line_width_and_line_ending_keeps_the_headers(width: int, bare_lf: bool) -> None:
    raw = broken_mail(width=width)
    if bare_lf:
        raw = raw.replace(b"\r\n", b"\n")
    normalized = normalize_email(raw)
    assert normalized.subject == "Tilaus 4471"
    assert normalized.text.strip() == BODY
    assert len(normalized.attachments) == 1


def test_the_raw_bytes_and_the_dedupe_hash_are_those_of_the_message_as_sent() -> None:
    raw = broken_mail()
    mended, problem = mend_header_block(raw)
    assert problem and mended != raw
    # Mending never touches the body, and the hash is taken over the body as sent: the same
    # mail with its header folded right is the same message.
    assert mended.endswith(raw[raw.index(b"\r\n\r\n") :])
    folded = raw.replace(
        unfolded(TOKEN, 76).encode(), unfolded(TOKEN, 76).replace("\n", "\n ").encode()
    )
    assert normalize_email(folded).content_hash == normalize_email(raw).content_hash


def test_a_body_that_starts_without_its_blank_line_is_not_swallowed_by_a_header() -> None:
    raw = (
        "From: Mart Tamm <mart@naide.ee>\r\nSubject: Küsimus\r\n"
        "Tere, mul on küsimus tellimuse kohta.\r\nKas see on teel?\r\n"
    ).encode()
    assert mend_header_block(raw) == (raw, "")
    normalized = normalize_email(raw)
    assert normalized.subject == "Küsimus"
    assert "mul on küsimus" in normalized.text


def test_a_token_left_dangling_before_the_blank_line_is_joined() -> None:
    raw = (
        "From: Mart Tamm <mart@naide.ee>\r\nSubject: Tellimus\r\n"
        f"X-Track: {TOKEN[:60]}\r\n{TOKEN[60:120]}\r\n\r\nTere!\r\n"
    ).encode()
    normalized = normalize_email(raw)
    assert dict(normalized.headers)["x-track"] == f"{TOKEN[:60]} {TOKEN[60:120]}"
    assert normalized.text.strip() == "Tere!"


@settings(max_examples=100, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
            st.from_regex(r"[ -~]{0,60}", fullmatch=True),
        ),
        max_size=12,
    ),
    body=st.binary(max_size=300),
)
def test_well_formed_mail_is_parsed_exactly_as_sent(
    headers: list[tuple[str, str]], body: bytes
) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    raw = f"{head}From: a@b.fi\r\n\r\n".encode() + body
    assert mend_header_block(raw) == (raw, "")
