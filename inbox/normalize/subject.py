"""Subjects compared as people mean them: without the reply and forward prefixes that mail
clients add in their users' languages, repeated or counted ("Re[2]:", "Re^2:", "VS: Vs: SV:")."""

from __future__ import annotations

import re

#: Reply and forward prefixes, as real clients write them. Sources: Wikipedia's "List of email
#: subject abbreviations" and the localizations of Outlook, Gmail and Thunderbird.
PREFIXES = (
    # English and the Latin-script languages
    "re",
    "fw",
    "fwd",
    "r",
    "rif",
    "i",
    "tr",
    "réf",
    "ref",
    "rép",
    "enc",
    "res",
    "rv",
    "trs",
    "antw",
    "doorst",
    "odp",
    "pd",
    "ynt",
    "ilt",
    "vá",
    "továbbítás",
    # German, Nordic, Estonian
    "aw",
    "wg",
    "sv",
    "vs",
    "vl",
    "vb",
    "fs",
    "bls",
    "vastus",
    "edasi",
    # Greek, Russian
    "απ",
    "σχετ",
    "πρθ",
    "ответ",
    "отв",
    "пересл",
    # Chinese, Japanese
    "回复",
    "回覆",
    "答复",
    "转发",
    "轉寄",
    "返信",
    "転送",
)
_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:"
    + "|".join(sorted((re.escape(p) for p in set(PREFIXES)), key=len, reverse=True))
    + r")\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG_ONLY = re.compile(r"^\s*\[[^\]]*\]\s*")
_WHITESPACE = re.compile(r"\s+")


def normalize_subject(subject: str) -> str:
    """Lowercased subject without reply/forward prefixes; "" if nothing is left."""
    text = subject
    for _ in range(50):  # bounded: a hostile subject of a million "Re:" costs 50 passes
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _WHITESPACE.sub(" ", text).strip().casefold()


def strip_tags(subject: str) -> str:
    """Subject without a leading "[list-name]" tag, which lists add and replies keep."""
    return _TAG_ONLY.sub("", subject, count=1)
