"""Reply and forward prefixes in our customers' languages, stripped for subject threading."""

from __future__ import annotations

import pytest

from inbox.normalize.subject import normalize_subject


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Teltan vetoketju", "teltan vetoketju"),
        ("VS: Vs: Teltan vetoketju", "teltan vetoketju"),  # Finnish Outlook and Gmail
        ("SV: Beställning 4411", "beställning 4411"),  # Swedish
        ("AW: WG: Rechnung", "rechnung"),  # German Outlook
        ("Ответ: Палатка", "палатка"),  # Russian
        ("Отв: Fwd: Палатка", "палатка"),
        ("ΑΠ: Παράδοση", "παράδοση"),  # Greek Outlook
        ("ΣΧΕΤ: Παράδοση", "παράδοση"),
        ("Ynt: Sipariş", "sipariş"),  # Turkish
        ("Odp: Zamówienie", "zamówienie"),  # Polish
        ("回复：帐篷", "帐篷"),  # Chinese, full-width colon
        ("答复: 帐篷", "帐篷"),
        ("Re[2]: Invoice", "invoice"),
        ("Re^3: Invoice", "invoice"),
        ("RE : Réf : Facture", "facture"),  # French Outlook puts a space before the colon
        ("Fwd: Re: Odp: Ynt: SV: hello", "hello"),
        ("[support] Re: Hello  there", "hello there"),
        ("Reply needed", "reply needed"),  # a word that starts like a prefix is kept
        ("Re:", ""),
        ("", ""),
    ],
)
def test_prefixes_are_stripped(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_a_hostile_subject_of_endless_prefixes_is_bounded() -> None:
    subject = "Re: " * 100_000 + "x"
    assert normalize_subject(subject).startswith("re:")
