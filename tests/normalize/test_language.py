"""The language a message is stored with: CLD2's quick answer where it is sure, lingua's among
the desk's languages everywhere else (inbox/normalize/language.py)."""

from __future__ import annotations

import pytest

from inbox.normalize.language import detect_language

DESK = ("de", "el", "en", "et", "fi", "ru", "sv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Long enough for CLD2's answer to stand.
        ("Hyvää päivää, tilaukseni on myöhässä jo kaksi viikkoa, mitä on tapahtunut?", "fi"),
        ("Tere, minu tellimus on juba kaks nädalat hilinenud, palun vaadake üle mis juhtus.", "et"),
        ("Здравствуйте, мой заказ задерживается уже две недели, что случилось с доставкой?", "ru"),
        # Short: lingua decides.
        ("Lasku on väärin", "fi"),
        ("Kas saaksite arve üle vaadata?", "et"),
        ("Fakturan är fel", "sv"),
    ],
)
def test_the_language_of_long_and_short_texts(text: str, expected: str) -> None:
    assert detect_language(text, DESK) == expected


@pytest.mark.parametrize(
    "spoiler",
    # CLD2 refuses control characters; neither detector takes a lone surrogate.
    ["\x01", "\x7f", "\ud800"],
)
def test_text_that_cld2_refuses_still_gets_a_language(spoiler: str) -> None:
    text = f"Hyvää päivää {spoiler} tilaukseni on myöhässä jo kaksi viikkoa, mitä on tapahtunut?"
    assert detect_language(text, DESK) == "fi"


def test_an_answer_outside_the_desks_languages_is_never_given() -> None:
    hungarian = (
        "Jó napot kívánok, a rendelésem már két hete késik, kérem nézzék meg mi történt vele."
    )
    assert detect_language(hungarian, DESK) in (*DESK, "")
    assert detect_language(hungarian, ("fi", "et")) in ("fi", "et", "")
