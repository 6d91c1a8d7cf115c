"""A customer's answer to a satisfaction survey: a score from 1 to 5 in a short reply ("5",
"4/5", "5!", "hyvä", "отлично", "väga hea"), or nothing when the message says something else
(then it is a message like any other, and opens the conversation again).

Only a short answer counts: "1 more thing: ..." is a question, not a score. Words are matched
whole, in any case and with or without accents, in the languages the desk serves.
"""

from __future__ import annotations

import re
import unicodedata

#: The longest reply still read as a score.
MAX_CHARS = 40
_NUMBER = re.compile(r"^\s*([1-5])\s*(?:/\s*5|(?:stars?|tähteä|tähti|★+))?\s*[.!]*\s*$", re.I)
_STARS = re.compile(r"^\s*(★{1,5}|⭐{1,5})\s*$")
#: Words and short phrases, unaccented and casefolded, to scores.
WORDS: dict[str, int] = {
    # English
    "terrible": 1, "awful": 1, "very bad": 1, "bad": 2, "poor": 2, "ok": 3, "okay": 3,
    "fine": 3, "average": 3, "good": 4, "very good": 5, "great": 5, "excellent": 5,
    "awesome": 5,
    # Finnish
    "erittain huono": 1, "surkea": 1, "huono": 2, "kohtalainen": 3, "keskinkertainen": 3,
    "hyva": 4, "erittain hyva": 5, "erinomainen": 5, "loistava": 5, "mahtava": 5,
    # Estonian
    "vaga halb": 1, "halb": 2, "rahuldav": 3, "keskmine": 3, "hea": 4, "vaga hea": 5,
    "suureparane": 5,
    # Russian
    "ужасно": 1, "очень плохо": 1, "плохо": 2, "нормально": 3, "средне": 3, "хорошо": 4,
    "очень хорошо": 5, "отлично": 5, "прекрасно": 5,
    # Greek (unaccented)
    "απαραδεκτα": 1, "κακα": 2, "κακη": 2, "μετρια": 3, "καλα": 4, "καλη": 4, "πολυ καλα": 5,
    "αριστα": 5, "εξαιρετικα": 5,
    # Swedish
    "mycket dalig": 1, "dalig": 2, "okej": 3, "bra": 4, "mycket bra": 5, "utmarkt": 5,
    # German
    "sehr schlecht": 1, "schlecht": 2, "gut": 4, "sehr gut": 5, "ausgezeichnet": 5,
}  # fmt: skip


def parse_score(text: str) -> int | None:
    """The score a short reply gives, or None."""
    reply = _first_line(text)
    if not reply or len(reply) > MAX_CHARS:
        return None
    number = _NUMBER.match(reply)
    if number:
        return int(number.group(1))
    stars = _STARS.match(reply)
    if stars:
        return len(stars.group(1))
    return WORDS.get(_folded(reply))


def _first_line(text: str) -> str:
    """What the customer wrote above any quote or signature."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = re.sub(r"[^\w\s]", " ", bare)
    return " ".join(words.split())
