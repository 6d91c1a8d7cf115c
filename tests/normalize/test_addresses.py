"""Address parsing: the fast path for plain mailboxes must read every value exactly as the
standard library's parser does, and the canonical forms must make one customer one identity."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.normalize.addresses import normalize_address, parse_addresses, split_addresses
from inbox.normalize.types import Address

VALUES = [
    "matti@example.fi",
    "  Matti.Meikalainen@Example.FI  ",
    "Matti Meikäläinen <matti@example.fi>",
    "Matti   Meikäläinen\r\n <matti@example.fi>",
    "<anna@example.ee>",
    "=?utf-8?q?Jaan_Tamm?= <jaan@example.ee>",
    "=?koi8-r?b?6dfBzg==?= <ivan@example.ru>",
    '"Tamm, Jaan" <jaan@example.ee>',
    "Tamm, Jaan <jaan@example.ee>",
    "J. R. Smith <jr@example.com>",
    "jr@example.com (J R Smith)",
    "undisclosed-recipients:;",
    "support: a@example.com, b@example.com;",
    "a@example.com, B <b@example.com>",
    "ivan@пример.рф",
    "Иван <ivan@пример.рф>",
    "broken <no-at-sign>",
    "<>",
    "",
    "a@b",
    ".dot@example.com",
    "double..dot@example.com",
    "x@example.com.",
    "Name <x@example.com> trailing",
]


@pytest.mark.parametrize("value", VALUES)
def test_fast_path_reads_values_as_the_standard_parser_does(value: str) -> None:
    assert split_addresses([value]) == getaddresses([value])


_PIECES = st.sampled_from(
    [
        "a", "Zoë", "Ψ", "Ж", " ", "  ", "\t", "\r\n ", ".", ",", ";", ":", "<", ">", "@",
        '"', "(", ")", "[", "]", "\\", "=?", "?=", "-", "_", "'", "+", "example.com",
        "user", "x@y.fi", "<x@y.fi>", "Nimi", "ää",
    ]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_fast_path_agrees_with_the_standard_parser_on_hostile_values(value: str) -> None:
    assert split_addresses([value]) == getaddresses([value])


def test_one_customer_is_one_canonical_address() -> None:
    forms = [
        "Ivan@XN--E1AFMKFD.XN--P1AI",
        "ivan@пример.рф",
        "<IVAN@Пример.РФ>",
    ]
    assert {normalize_address(form) for form in forms} == {"ivan@xn--e1afmkfd.xn--p1ai"}


def test_names_are_decoded_after_the_value_is_split() -> None:
    # The decoded name holds a comma: decoding first would split it into two mailboxes.
    found = parse_addresses(["=?utf-8?q?Tamm=2C_Jaan?= <Jaan@Example.ee>, anna@example.ee"])
    assert found == (
        Address(address="jaan@example.ee", name="Tamm, Jaan", written="Jaan@example.ee"),
        Address(address="anna@example.ee", name=""),
    )


@pytest.mark.parametrize(
    ("value", "shown", "matched"),
    [
        ("Taro <Taro.Yamada.@Docomo.NE.jp>", "Taro.Yamada.@docomo.ne.jp", "taro.yamada.@docomo.ne.jp"),  # noqa: E501
        ('"Aino Virtanen"@Esimerkki.FI', '"Aino Virtanen"@esimerkki.fi', '"aino virtanen"@esimerkki.fi'),  # noqa: E501
        ("<Ivan@Пример.РФ>", "Ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("jaan@example.ee", "jaan@example.ee", "jaan@example.ee"),
    ],
)  # fmt: skip
def test_an_address_is_shown_as_written_and_matched_without_case(
    value: str, shown: str, matched: str
) -> None:
    """A customer reads their own address back as they wrote it; one customer writing their
    capitals differently is still one identity."""
    (found,) = parse_addresses([value])
    assert (found.shown, found.address) == (shown, matched)
