"""Folding and word splitting: the fast paths (code pages, runs set aside) must give exactly
what folding every character on its own gives, whatever mix of scripts a message has."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import fold, words

_ALPHABET = st.sampled_from(
    list("aAzZ09_ -.,!?\n\t€№«»'")
    + list("äöåõüšžéèçñßÄÖÅÕÜŠŽÉ")  # Western code page
    + list("ăğłøœŒ")  # Latin outside it
    + list("άέήίόύώϊΐςΣΑΠΕΊΓΟΝαβγ")  # Greek
    + list("абвгдеёжзийЁЖЙ")  # Cyrillic
    + ["ア", "中", "\u2063", "\x00", "☃", "İ", "e\u0301", "и\u0306", "\u0308"]
)


def reference_fold(text: str) -> str:
    """Every character folded on its own: the definition the fast paths must meet."""
    out = []
    for char in unicodedata.normalize("NFC", text).casefold().replace("\u0307", ""):
        if char in "ёЁ":
            out.append("е")
        elif char == "ς":
            out.append("σ")
        elif unicodedata.category(char)[0] == "L" and (
            "\u00c0" <= char < "\u0250" or "\u0370" <= char < "\u0400" or char >= "\u1e00"
        ):
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            out.append(base.casefold() or char)
        else:
            out.append(char)
    return "".join(out)


def reference_words(text: str) -> list[str]:
    folded = reference_fold(text)
    return "".join(c if c.isalnum() or c == "_" else " " for c in folded).split()


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_fast_folding_equals_folding_each_character(text: str) -> None:
    assert fold(text) == reference_fold(text)
    assert words(text) == reference_words(text)


def test_what_admins_expect() -> None:
    assert fold("KIIREELLINEN") == "kiireellinen"
    assert fold("ΕΠΕΊΓΟΝ") == fold("Επειγον") == "επειγον"
    assert fold("Ёлка") == "елка"
    assert fold("мой") == "мой"  # й stays й
    assert fold("Cafe\u0301") == fold("Café") == "cafe"  # decomposed, as macOS sends it
    assert words("İSTANBUL ofisi") == ["istanbul", "ofisi"]
    assert words("Tere! Arve счёт№12 ja e-mail") == [
        "tere",
        "arve",
        "счет",
        "12",
        "ja",
        "e",
        "mail",
    ]
