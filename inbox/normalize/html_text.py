"""HTML mail to readable text, with inscriptis (it keeps the layout of tables and lists that
support mail is full of), and the quoted history of HTML replies found by its markup.

Gmail wraps history in `div.gmail_quote`, Apple Mail and Thunderbird in `blockquote`, Outlook
starts it at `div#divRplyFwdMsg` (everything after that div is history) or `div#appendonsend`.
"""

from __future__ import annotations

import re

import lxml.html
from inscriptis import get_text
from lxml import etree

_TAGS = re.compile(r"<[^>]*>")
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)
_QUOTE_XPATH = (
    "//blockquote | //div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //div[@id='divRplyFwdMsg'] | //div[@id='appendonsend']"
    " | //div[contains(@class, 'moz-cite-prefix')]"
)


def html_to_text(html: str) -> str:
    if not html.strip():
        return ""
    try:
        return _clean(get_text(html))
    except Exception:  # lxml refuses some broken documents; a crude strip still reads
        return _crude(html)


def split_html_reply(html: str) -> tuple[str, str]:
    """(new text, quoted text) of an HTML reply, by removing the history's markup."""
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return html_to_text(html), ""
    quoted_parts: list[str] = []
    removed: set[etree._Element] = set()
    for element in root.xpath(_QUOTE_XPATH):
        parent = element.getparent()
        if parent is None or element in removed or removed.intersection(element.iterancestors()):
            continue  # inside history already taken out (a blockquote in a gmail_quote)
        block = [element]
        if element.get("id") in ("divRplyFwdMsg", "appendonsend"):
            # Outlook: the header div, then the quoted body as its following siblings.
            block.extend(element.itersiblings())
        for part in block:
            quoted_parts.append(_element_text(part))
            removed.add(part)
            parent.remove(part)
    if not quoted_parts:
        return html_to_text(html), ""
    remaining = etree.tostring(root, encoding="unicode", method="html")
    return html_to_text(remaining), _clean("\n".join(quoted_parts))


def _element_text(element: etree._Element) -> str:
    try:
        return html_to_text(etree.tostring(element, encoding="unicode", method="html"))
    except (TypeError, ValueError):
        return ""


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    cleaned: list[str] = []
    for line in lines:
        if line or (cleaned and cleaned[-1]):
            cleaned.append(line)
    return "\n".join(cleaned).strip()


def _crude(html: str) -> str:
    import html as html_module

    return _clean(html_module.unescape(_TAGS.sub(" ", _SCRIPT_STYLE.sub(" ", html))))
