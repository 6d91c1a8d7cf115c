"""Hostile and broken input: no exception escapes, memory stays bounded, the text survives."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.normalize.email import normalize_email

HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Auto-Submitted",
        "X-Junk",
    ]
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"multipart/mixed; boundary=x",
            b"text/plain; charset=koi8-r",
            b'text/html; charset="',
            b"base64",
            b"quoted-printable",
            b"=?utf-8?b?////?=",
            b"=?x?q?=ZZ?=",
            b"<a@b> <c@",
            b"attachment; filename*=utf-8''%ZZ%",
            b"Mon, 99 Foo 12345 99:99:99 +9999",
        ]
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12))
    body = draw(
        st.one_of(
            st.binary(max_size=2000),
            st.sampled_from([b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--", b"--x\r\n--x"]),
        )
    )
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


def assert_storable(normalized: object) -> None:
    """Every text field must be storable in PostgreSQL: no NUL, no lone surrogates."""
    for value in vars_of(normalized):
        if isinstance(value, str):
            assert "\x00" not in value
            value.encode("utf-8")


def vars_of(normalized: object) -> list[object]:
    from dataclasses import fields

    found: list[object] = []
    for item in fields(normalized):  # type: ignore[arg-type]
        value = getattr(normalized, item.name)
        found.extend(value if isinstance(value, tuple) else [value])
    return found


@settings(max_examples=300, deadline=None)
@given(messages())
def test_random_mime_never_raises_and_is_storable(raw: bytes) -> None:
    normalized = normalize_email(raw)
    assert_storable(normalized)
    assert len(normalized.content_hash) == 64


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert_storable(normalize_email(raw))


def nested(depth: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nbottom\r\n" + closing


def test_ten_thousand_nested_parts_are_cut_short_with_a_note() -> None:
    normalized = normalize_email(nested(10_000))
    assert normalized.subject == "deep"
    assert normalized.errors
    assert normalized.text  # the body is kept as text rather than lost


def test_ten_thousand_sibling_parts_are_bounded() -> None:
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        + b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 10_000
        + b"--x--\r\n"
    )
    normalized = normalize_email(raw)
    assert any("MIME parts" in error for error in normalized.errors)


def test_a_50_mb_body_is_cut_and_memory_stays_bounded() -> None:
    line = "Hyvää päivää, tämä on pitkä viesti. ".encode()
    raw = (
        b"From: a@example.fi\r\nSubject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + line * (50_000_000 // len(line))
    )
    tracemalloc.start()
    try:
        normalized = normalize_email(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(normalized.text) == 1_000_000
    assert normalized.text.startswith("Hyvää päivää")
    assert any("parsed" in error for error in normalized.errors)
    assert peak < 6 * len(raw), f"peak {peak / 1e6:.0f} MB for {len(raw) / 1e6:.0f} MB"


def test_nul_bytes_and_broken_encodings_do_not_spoil_the_message() -> None:
    raw = (
        b"From: Ai\x00no <aino@example.fi>\r\nSubject: =?utf-8?b?!!!?= tilaus\x00 4411\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"SGVp\x00IG1p@@@c3PDpCB0aWxhdXM/"
    )
    normalized = normalize_email(raw)
    assert_storable(normalized)
    assert "4411" in normalized.subject
    assert normalized.sender is not None and normalized.sender.address == "aino@example.fi"
