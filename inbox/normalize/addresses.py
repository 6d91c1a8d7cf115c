"""Mail addresses to one canonical form, so one customer is one identity.

Canonical, for matching: the whole address lowercased (providers treat local parts
case-insensitively in practice, and customers type them every which way), the domain in ASCII
(IDNA/punycode), so `ivan@пример.рф` and `ivan@xn--e1afmkfd.xn--p1ai` are the same identity.
What people read keeps the local part as written (`Address.written`). ASCII because that is
what SMTP envelopes, DKIM and most logs carry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import getaddresses

import idna

from inbox.normalize.headers import decode_value, unescape_raw
from inbox.normalize.types import Address


def normalize_address(address: str) -> str:
    return as_written(address).lower()


def as_written(address: str) -> str:
    """The local part as written (quotes, dots, capitals: people read it so), the domain in
    its canonical form. `normalize_address` is this lowercased."""
    address = address.strip().strip("<>").strip()
    if "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}"


def ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        try:
            return domain.encode("idna").decode("ascii")
        except UnicodeError:
            return domain  # not a valid IDN; keep it, lowercased, rather than lose the sender


_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
#: `addr@example.com` or `Display Name <addr@example.com>`, with no RFC 5322 special in the
#: name: most From, To and Cc values. Anything else (quotes, comments, groups, lists, IDN
#: domains) goes to the stdlib parser. tests/normalize/test_addresses.py checks that both agree.
_SIMPLE = re.compile(
    rf"\s*(?:(?P<bare>{_LOCAL}@{_DOMAIN})|(?P<name>[^()<>@,;:\\\".\[\]]*?)\s*"
    rf"<(?P<angle>{_LOCAL}@{_DOMAIN})>)\s*"
)


def split_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(raw name, raw address) pairs, as `email.utils.getaddresses` gives them.

    getaddresses cost 13% of normalizing (cProfile over bench/ingest.py mail) for values that
    are almost always one plain mailbox: those take a regex instead.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        simple = _SIMPLE.fullmatch(value)
        if simple is None:
            pairs.extend(getaddresses([value]))
        elif simple["bare"]:
            pairs.append(("", simple["bare"]))
        else:
            pairs.append((" ".join(simple["name"].split()), simple["angle"]))
    return pairs


def parse_addresses(values: list[str], hints: Sequence[str] = ()) -> tuple[Address, ...]:
    """Addresses from one or more header values; names decoded (RFC 2047, raw 8-bit with the
    message's charsets as `hints`), addresses normalized. Parsing happens before decoding: a
    decoded name may contain commas."""
    if not values:
        return ()
    found = []
    unescaped = [unescape_raw(str(v), hints) for v in values if v]
    for raw_name, raw_address in split_addresses(unescaped):
        if not raw_address and not raw_name:
            continue
        address = decode_value(raw_address) if "=?" in raw_address else raw_address
        if "@" not in address and "@" in raw_name:
            address, raw_name = raw_name, ""
        if not address:
            continue
        name = decode_value(raw_name, hints).strip('"').strip()
        written = as_written(address)
        key = written.lower()
        found.append(Address(address=key, name=name, written="" if written == key else written))
    return tuple(dict.fromkeys(found))
