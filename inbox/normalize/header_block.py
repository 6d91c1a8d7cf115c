"""A header block broken by unfolded continuation lines, mended before parsing.

Some senders (tracking and list software, mostly) write a long header value, a base64 token
say, over several lines without the leading whitespace that marks a continuation. The
standard parser takes the first such line for the start of the body: Subject, From and the
MIME structure after it are lost, and the body shows base64. Real desks read such lines as
continuations of the header before them while a header follows; so do we, and say so in the
message's parse errors. The raw bytes are never changed: only what is parsed.
"""

from __future__ import annotations

import re

#: What the standard parser takes for a header line (email.feedparser's headerRE): a name and
#: a colon, a continuation, or an mbox "From " line.
_HEADER_LINE = re.compile(rb"(?:From |[\x21-\x39\x3b-\x7e]*:|[\t ])")
#: A line after the first that the parser cannot take for a header: the fast test (a search
#: for a newline is three times quicker than one for a line start).
_FOREIGN_LINE = re.compile(rb"\n(?!From |[\x21-\x39\x3b-\x7e]*:|[\t ]|\r?$)")
#: A run of foreign lines followed by the blank line is joined only if each is one token
#: (an encoded value); text with spaces there is a body whose separator is missing.
_TOKEN = re.compile(rb"[^\s:]+\r?")


def mend_header_block(raw: bytes) -> tuple[bytes, str]:
    """The bytes to parse, and what was mended ("" when nothing was)."""
    end = _end_of_block(raw)
    if _FOREIGN_LINE.search(raw, 0, end) is None:
        return raw, ""  # nearly all mail
    lines = raw[:end].split(b"\n")
    if not _is_header_line(lines[0]):
        return raw, ""  # no header block at all: nothing to mend
    mended: list[bytes] = []
    joined_to: list[str] = []
    index = 0
    while index < len(lines):
        if _is_header_line(lines[index]):
            mended.append(lines[index])
            index += 1
            continue
        run_end = index
        while run_end < len(lines) and not _is_header_line(lines[run_end]):
            run_end += 1
        run = lines[index:run_end]
        if not _continues(run, followed_by_header=run_end < len(lines)):
            break  # the body starts here, without its blank line: the parser copes with that
        joined_to.append(_header_name(mended))
        mended.extend(b" " + line for line in run)
        index = run_end
    if not joined_to:
        return raw, ""
    names = ", ".join(dict.fromkeys(joined_to))
    problem = f"header block: lines without leading whitespace read as continuing {names}"
    return b"\n".join(mended + lines[index:]) + raw[end:], problem[:300]


def _end_of_block(raw: bytes) -> int:
    """Where the line before the first blank line ends (its CR, if any, stays with it)."""
    crlf = raw.find(b"\n\r\n")
    limit = len(raw) if crlf == -1 else crlf
    lf = raw.find(b"\n\n", 0, limit)  # bounded: a CRLF message is not scanned to its end
    return lf if lf != -1 else limit


def _is_header_line(line: bytes) -> bool:
    return _HEADER_LINE.match(line) is not None


def _continues(run: list[bytes], *, followed_by_header: bool) -> bool:
    """A header follows the run: the run sits inside the block, so it continues a header.
    Only the blank line follows: join it if it looks like an encoded value, not like text."""
    return followed_by_header or all(_TOKEN.fullmatch(line) for line in run)


def _header_name(lines: list[bytes]) -> str:
    """The name of the header that the last of these lines belongs to."""
    for line in reversed(lines):
        if not line.startswith((b" ", b"\t")):
            return line.split(b":", 1)[0].decode("ascii", "replace")[:60]
    return "?"
