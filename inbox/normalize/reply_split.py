"""What the customer just wrote, apart from the quoted history and the signature.

Rules and pings must see the new words: "urgent" in a message quoted three replies ago is not
urgent now. The splitter looks for where the history starts, in the forms real clients write in
our customers' languages:

- an attribution line ("On Mon, 25 Nov 2024 at 10:12, Aino <aino@example.fi> wrote:",
  "ma 25.11.2024 klo 10.12 Aino Virtanen <aino@example.fi> kirjoitti:", "Am ... schrieb ...:",
  "... написал(а):", "Στις ... έγραψε:", "... kirjutas kuupäeval ...:"), possibly wrapped over
  two lines as Gmail does;
- an Outlook header block ("From: / Sent:", "Lähettäjä: / Lähetetty:", "Von: / Gesendet:",
  "От: / Отправлено:", "Από: / Στάλθηκε:", "Saatja: / Saadetud:") or its separator line
  ("-----Original Message-----", "----- Alkuperäinen viesti -----");
- lines quoted with ">".

The signature is what follows the "-- " delimiter (RFC 3676 section 4.3), or a mobile client's
"Sent from my iPhone" line in any of those languages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERBS = (
    r"wrote|writes|kirjoitti|kirjutas|skrev|schrieb|написал\(а\)|написала|написал|пишет"
    r"|έγραψε|a\s+écrit|escribió|schreef|napisał\(a\)|napisała|napisał|ha\s+scritto|escreveu"
    r"|yazdı|írta|kirjutas\s+kuupäeval"
)
_ATTRIBUTION = re.compile(rf"^(?=.*[\d@]).{{0,250}}\b(?:{_VERBS})\b.{{0,120}}[:：]\s*$", re.I)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|alkuperäinen viesti|ursprüngliche nachricht"
    r"|originalmeddelande|ursprungligt meddelande|исходное сообщение|αρχικό μήνυμα|algne kiri"
    r"|algsõnum|message d'origine|oorspronkelijk bericht|wiadomość oryginalna|mensaje original"
    r"|messaggio originale|original-nachricht)\s*-{2,}\s*$",
    re.I,
)
_HEADER_FROM = re.compile(
    r"^\s*\*?(?:from|lähettäjä|från|von|от|από|saatja|de|van|od|fra|da|kimden)\s*:\*?\s*\S", re.I
)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|lähetetty|päivämäärä|skickat|datum|gesendet|отправлено|дата|στάλθηκε"
    r"|ημερομηνία|saadetud|kuupäev|envoyé|verzonden|wysłano|data|sendt|inviato|enviado"
    r"|gönderildi|tarih|to|vastaanottaja|till|an|кому|προς|saaja)\s*:",
    re.I,
)
_UNDERLINE = re.compile(r"^\s*_{10,}\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:sent from my|sent from|get outlook for|lähetetty (?:iphonesta|android|minun|"
    r"mobiilista|.*laitteesta)|hanki outlook|saadetud (?:minu )?|skickat från|skickades från"
    r"|von meinem|gesendet von|отправлено (?:с|из)|στάλθηκε από|envoyé de mon|enviado desde mi"
    r"|inviato da|verzonden vanaf|wysłane z)",
    re.I,
)
_SIGNATURE_MAX_LINES = 15


@dataclass(frozen=True, slots=True)
class SplitText:
    new_text: str
    quoted_text: str
    signature: str


def split_reply(text: str) -> SplitText:
    lines = text.splitlines()
    start = _history_start(lines)
    if start is not None:
        head, quoted = lines[:start], lines[start:]
    else:
        head, quoted = _interleaved(lines)
    body, signature = _split_signature(head)
    return SplitText(
        new_text="\n".join(body).strip(),
        quoted_text="\n".join(quoted).strip(),
        signature="\n".join(signature).strip(),
    )


def _history_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        # Cheap looks at the first character and the colon keep the regexes off most lines.
        first = stripped[0]
        if first == "-" and _SEPARATOR.match(stripped):
            return index
        if first == "_" and _UNDERLINE.match(stripped) and _outlook_block_at(lines, index + 1):
            return index
        if ":" in stripped and _HEADER_FROM.match(stripped) and _outlook_block_at(lines, index):
            return index
        if stripped.startswith(">"):
            if _only_quotes_after(lines, index):
                return _attribution_above(lines, index)
            continue
        # Attribution lines end with a colon; checking that first keeps the regex off most lines.
        if stripped.endswith((":", "：")) and _ATTRIBUTION.match(stripped):
            return index
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if following.endswith((":", "：")) and len(stripped) < 200:
            joined = f"{stripped} {following}"
            if _ATTRIBUTION.match(joined) and not _ATTRIBUTION.match(following):
                return index
    return None


def _outlook_block_at(lines: list[str], index: int) -> bool:
    if index >= len(lines) or not _HEADER_FROM.match(lines[index]):
        return False
    return any(_HEADER_SENT.match(line) for line in lines[index + 1 : index + 5])


def _only_quotes_after(lines: list[str], index: int) -> bool:
    return all(not line.strip() or line.lstrip().startswith(">") for line in lines[index:])


def _attribution_above(lines: list[str], index: int) -> int:
    """The line before a quoted block that names who wrote it belongs to the history."""
    above = index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and lines[above].rstrip().endswith((":", "：")):
        return above
    return index


def _interleaved(lines: list[str]) -> tuple[list[str], list[str]]:
    """Inline replies: the customer's lines between quoted ones are all new text."""
    if not any(line.lstrip().startswith(">") for line in lines):
        return lines, []
    new = [line for line in lines if not line.lstrip().startswith(">")]
    quoted = [line for line in lines if line.lstrip().startswith(">")]
    return new, quoted


def _split_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    limit = max(0, len(lines) - _SIGNATURE_MAX_LINES)
    for index in range(len(lines) - 1, limit - 1, -1):
        if lines[index].rstrip() == "--" or lines[index] == "-- ":
            return lines[:index], lines[index + 1 :]
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last >= 0 and _MOBILE_SIGNATURE.match(lines[last]) and len(lines[last]) < 80:
        return lines[:last], lines[last:]
    return lines, []
