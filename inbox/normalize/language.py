"""Language detection over a configured set of candidates, with lingua.

Fewer candidates is both faster and surer: a desk that serves Finnish, Estonian and Russian
customers should not have a short Finnish note come out as Hungarian. The detector is built once
per candidate set (building it loads the language models) and reads only the first
`SAMPLE_CHARS` characters: measured here, 0.2 ms a message for 200 characters against 0.37 ms
for 400, with the same answers on our test mail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

SAMPLE_CHARS = 200
_LETTER = re.compile(r"[^\W\d_]")
#: Below this many letters a guess is noise ("ok", "thanks!").
MIN_LETTERS = 12


def supported_codes() -> set[str]:
    return {language.iso_code_639_1.name.lower() for language in Language.all()}


@lru_cache(maxsize=8)
def _detector(codes: tuple[str, ...]) -> LanguageDetector | None:
    languages = []
    for code in codes:
        try:
            languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError):
            continue  # unknown codes are refused by the config; tolerate them here
    if not languages:
        return None
    if len(languages) == 1:
        languages.append(Language.ENGLISH if languages[0] != Language.ENGLISH else Language.GERMAN)
    return (
        LanguageDetectorBuilder.from_languages(*languages)
        .with_minimum_relative_distance(0.05)
        .with_low_accuracy_mode()
        .build()
    )


def detect_language(text: str, candidates: Sequence[str]) -> str:
    """ISO 639-1 code of the text's language among `candidates`, or "" when unsure."""
    sample = text[:SAMPLE_CHARS]
    if len(_LETTER.findall(sample)) < MIN_LETTERS:
        return ""
    detector = _detector(tuple(sorted(set(candidates))))
    if detector is None:
        return ""
    found = detector.detect_language_of(sample)
    if found is None:
        return ""
    return found.iso_code_639_1.name.lower()
