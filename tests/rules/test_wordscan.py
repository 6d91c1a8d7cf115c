"""The word scanner: the native pass must find exactly the keywords and phrases that words()
finds, for every script, mark, emoji and odd character a customer can send; and a keyword is a
whole word or nothing."""

from __future__ import annotations

import unicodedata
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import words
from rules.wordscan import (
    _UNIFORM_BLOCKS,
    NATIVE,
    WordScanner,
    _composition_seconds,
    _entry,
    _tables,
)

#: Keywords folded as Keywords.folded holds them (words joined by one space).
KEYWORDS = [
    "lasku",
    "kiire",
    "ei toimi",
    "ei toimi enaa",
    "cafe",
    "счет",
    "срочно",
    "επειγον",
    "e mail",
    "strasse",
    "ss",
    "i",
    "中",
    "dz",
    "ιʼ",
    "x_1",
    "toimi ei",
]

_PIECES = st.sampled_from(
    [
        "Lasku",
        "LASKU",
        "lasku",
        "kiire",
        "Kiireellinen",
        "ei",
        "EI",
        "toimi",
        "enää",
        "ENÄÄ",
        "Café",
        "CAFE",
        "cafe\u0301",  # e + combining acute, as macOS mail sends it
        "СЧЁТ",
        "счет",
        "Срочно",
        "ΕΠΕΙΓΟΝ",
        "Επείγον",
        "E-mail",
        "Straße",
        "STRASSE",
        "ß",
        "İ",
        "ǅ",
        "ŉ",
        "ΐ",
        "中",
        "中文",
        "x_1",
        "😀",
        "👍🏽",
        "🇫🇮",
        "𝐀",  # a letter beyond the BMP: Python's path
        "𐐀",
        "\u0308",
        "\u0307",
        "\ufe0f",
        "\u200d",
        "\x00",
        "\u1161",  # a Hangul vowel jamo: NFC joins it to the syllable before
        "\u1100",
        " ",
        "  ",
        "\n",
        "\t",
        "-",
        ".",
        ",",
        "!",
        "'",
        "’",
        "_",
        "0",
        "7",
        "a",
    ]
)
texts = st.lists(_PIECES, max_size=40).map("".join)


@pytest.fixture(scope="module")
def scanner() -> WordScanner:
    return WordScanner(KEYWORDS)


def expected(text: str) -> set[str]:
    """The definition: a keyword is found when its words follow each other in words(text)."""
    tokens = words(text)
    found = set()
    for keyword in KEYWORDS:
        parts = keyword.split(" ")
        if any(tokens[i : i + len(parts)] == parts for i in range(len(tokens))):
            found.add(keyword)
    return found


def found(scanner: WordScanner, text: str) -> set[str]:
    slots = scanner.scan(text)
    assert len(slots) == len(set(slots)), "a keyword is reported once"
    return {scanner.keywords[slot] for slot in slots}


@settings(max_examples=600, deadline=None)
@given(texts)
def test_the_scanner_finds_what_words_finds(scanner: WordScanner, text: str) -> None:
    assert found(scanner, text) == expected(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_at_all_gives_the_same_answer(scanner: WordScanner, text: str) -> None:
    assert found(scanner, text) == expected(text)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_python_path_agrees_with_the_native_one(scanner: WordScanner, text: str) -> None:
    assert set(scanner.scan_in_python(text)) == set(scanner.scan(text))


@pytest.mark.parametrize(
    ("text", "keywords"),
    [
        ("Lasku ei TOIMI!", {"lasku", "ei toimi"}),
        ("Laskussa vika", set()),  # a keyword is a whole word: "lasku" is not in "laskussa"
        ("ei\ntoimi", {"ei toimi"}),  # a phrase across a line break
        ("ei, toimi", {"ei toimi"}),  # and across punctuation: words are what count
        ("toimi ei toimi enää", {"ei toimi", "ei toimi enaa", "toimi ei"}),
        ("СЧЁТ оплачен", {"счет"}),
        ("Το ΕΠΕΊΓΟΝ θέμα", {"επειγον"}),
        ("Café", {"cafe"}),
        ("cafe\u0301", {"cafe"}),
        ("Straße", {"strasse"}),
        ("Send an E-mail", {"e mail"}),
        ("İstanbul", set()),
        ("I", {"i"}),
        ("😀lasku😀", {"lasku"}),  # emoji separate words
        ("𝐀lasku", set()),  # a mathematical bold A is a letter: "𝐀lasku" is one word
        ("x_1", {"x_1"}),
        ("", set()),
        ("lasku" * 100, set()),  # longer than any keyword
    ],
)
def test_examples(scanner: WordScanner, text: str, keywords: set[str]) -> None:
    assert found(scanner, text) == keywords
    assert expected(text) == keywords


def test_every_keyword_finds_itself_written_in_capitals(scanner: WordScanner) -> None:
    for keyword in KEYWORDS:
        assert found(scanner, keyword.upper()) >= {keyword}


def test_the_native_scanner_is_built_here() -> None:
    """CI builds the extension (gcc is there): a silent fall back to Python would cost the
    engine its speed, and this says so."""
    assert NATIVE, "rules._wordscan was not built: pip install -e . needs a C compiler"


def test_a_keyword_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="once"):
        WordScanner(["lasku", "lasku"])


def test_a_scanner_without_phrases_or_without_words_works() -> None:
    assert WordScanner(["ei toimi"]).scan("EI toimi") == [0]
    assert WordScanner(["lasku"]).scan("ei toimi lasku") == [0]
    assert WordScanner([]).scan("lasku") == []


def test_text_not_in_nfc_and_letters_beyond_the_bmp_are_still_found() -> None:
    scanner = WordScanner(["cafe", "lasku"])
    decomposed = unicodedata.normalize("NFD", "CAFÉ lasku")
    assert sorted(scanner.scan(decomposed)) == [0, 1]
    assert sorted(scanner.scan("𐐀 café lasku")) == [0, 1]


def test_many_keywords_each_found_alone() -> None:
    many = [f"sana{number}" for number in range(5_000)] + [
        f"sana{number} sana{number + 1}" for number in range(0, 5_000, 7)
    ]
    scanner = WordScanner(many)
    for number in (0, 7, 4_998):
        text = f"Hei, SANA{number} sana{number + 1}."
        assert set(found(scanner, text)) == {
            f"sana{number}",
            f"sana{number + 1}",
            f"sana{number} sana{number + 1}",
        } & set(many)


def test_the_blocks_built_in_one_go_are_what_each_character_gives() -> None:
    table = array("I")
    table.frombytes(_tables()[0])
    seconds = _composition_seconds()
    for block, _ in _UNIFORM_BLOCKS:
        for codepoint in block:
            assert table[codepoint] == _entry(codepoint, seconds, array("I")), hex(codepoint)


@pytest.mark.skipif(not NATIVE, reason="the native scanner was not built (see the test above)")
def test_the_native_scanner_refuses_what_it_cannot_use_safely() -> None:
    """The C constructor checks what it is given, so that no scan reads outside its arrays."""
    from rules import _wordscan  # type: ignore[attr-defined]

    table, expansions = _tables()
    scanner = _wordscan.Scanner
    with pytest.raises(RuntimeError, match="not built"):
        scanner.__new__(scanner).scan("lasku", True)
    with pytest.raises(ValueError, match="one entry per BMP"):
        scanner(table[:-4], expansions, ["a"], [0], [], [])
    outside = array("I", [3 << 29] * 0x10000).tobytes()  # every character an expansion at 0
    with pytest.raises(ValueError, match="outside"):
        scanner(outside, array("I", [5]).tobytes(), ["a"], [0], [], [])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        scanner(table, expansions, ["a"], [0], [[0, 7]], [1])
    with pytest.raises(ValueError, match="beyond"):
        scanner(table, expansions, ["a"], [5], [], [])

    class Shrinking:
        """A phrase whose len() says 2 and which then yields nothing."""

        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> int:
            raise IndexError

    with pytest.raises(ValueError, match="changed"):
        scanner(table, expansions, ["a"], [0], [Shrinking()], [1])
    built = scanner(table, expansions, ["a"], [0], [], [])
    with pytest.raises(RuntimeError, match="once"):
        built.__init__(table, expansions, ["a"], [0], [], [])
    assert built.scan("A a", True) == [0]


def test_a_keyword_with_an_empty_word_is_refused() -> None:
    for bad in ([""], ["lasku "], [" lasku"], ["ei  toimi"]):
        with pytest.raises(ValueError, match="none empty"):
            WordScanner(bad)
