"""Bytes to text when the label may be wrong, missing or unknown.

Order: the declared charset (through an alias table, the way browsers read labels: ASCII and
Latin-1 mean windows-1252), checked for plausibility; then UTF-8; then detection with
charset-normalizer; last, UTF-8 with replacement characters. Never an empty result for a
non-empty input: "???" or an empty body because decoding failed is what we are here to prevent.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import chardet
from charset_normalizer import from_bytes

from inbox.normalize.iso2022jp import decode_cp5022x

#: Labels seen in real mail that Python does not know, or knows as something narrower than
#: what senders mean (WHATWG Encoding Standard, and mail clients' habits).
ALIASES = {
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "ansi_x3.4-1968": "windows-1252",
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "iso_8859-1": "windows-1252",
    "latin1": "windows-1252",
    "latin-1": "windows-1252",
    "l1": "windows-1252",
    "cp-850": "cp850",
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "iso-gb2312": "gb18030",
    "csgb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "big5-hkscs": "big5hkscs",
    "x-x-big5": "big5",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-ce": "mac_latin2",
    "x-mac-greek": "mac_greek",
    "x-mac-turkish": "mac_turkish",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "utf8": "utf-8",
    "utf8mb4": "utf-8",
    "x-utf-8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-cyrillic": "mac-cyrillic",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "x-user-defined": "windows-1252",
}

_ASCII_LABELS = {"us-ascii", "ascii", "ansi_x3.4-1968", "us"}
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_MARKS = tuple(mark for mark, _ in _BYTE_ORDER_MARKS)
_ISO2022_JP_ESCAPES = re.compile(rb"\x1b\$[@B]|\x1b\(I")
#: Latin charsets other than the Western ones, which chardet may pick over a Latin label.
_OTHER_LATIN = {"cp1250", "iso8859-2", "cp1254", "iso8859-9", "cp1257", "iso8859-13", "cp1258"}
#: What Central European and Turkish text looks like read as windows-1252 or Latin-1: þ ý ð
#: (Turkish ş ı ğ), ¼ ¿ ³ ¹ ¥ Ÿ ª º ± ¶ æ ê ñ after a consonant (Polish ź ż ł ą ...).
_FOREIGN_LATIN_TELLS = re.compile(
    "[\u00fe\u00fd\u00f0\u00de\u00dd\u00d0\u00bc\u00bf\u00b3\u00b9\u00a5\u0178"
    "\u00aa\u00ba\u00b1\u00b6\u0153\u009c\u008c]|[bcdfghjklmnprstwz][\u00e6\u00ea\u00f1\u00ca]"
)

#: Charsets under which ASCII bytes are not ASCII text: 7-bit ones, and UTF-16/32.
_NOT_ASCII_COMPATIBLE = {"utf-7", "hz", "utf-16", "utf-16-le", "utf-16-be", "utf-32"}
_NOT_ASCII_COMPATIBLE |= {"utf-32-le", "utf-32-be"}

#: Single-byte Latin charsets under which text in another script turns into plausible-looking
#: accented letters ("Ïðèâåò" for "Привет"): those labels are checked before being believed.
_LATIN_FAMILY = {"cp1252", "iso8859-15", "iso8859-2", "cp1250", "iso8859-13", "cp1257"}


#: What detection chooses among once Latin text is ruled out. Restricting the candidates makes
#: short texts come out right: unrestricted detection reads a Finnish sentence as Big5.
NON_LATIN_CANDIDATES = [
    "utf_8",
    "cp1251",
    "koi8_r",
    "koi8_u",
    "iso8859_5",
    "cp866",
    "mac_cyrillic",
    "cp1253",
    "iso8859_7",
    "shift_jis",
    "euc_jp",
    "gb18030",
    "big5",
    "cp949",
    "cp1254",
    "cp1255",
    "cp1256",
    "iso8859_13",
    "cp1257",
    "cp1250",
]


#: A text without a usable label is guessed by chardet first (its first 4 KB), then by the
#: Latin reading and charset-normalizer. Measured on 58 short texts (subjects, names, file
#: names) in 13 languages and 23 charsets: chardet 56 right (the two misses: kanji-only
#: EUC-JP names, which GB18030 and CP949 read as well), the charset-normalizer path alone 35
#: (it read CJK bytes as Cyrillic); 0.15 ms a short text, 0.5 ms for 4 KB.
_ASCII_BYTES = bytes(range(128))
_NOT_LOW_BYTES = bytes(range(0x07, 256))
#: Every byte but the C0 controls no 8-bit text has (tab, line ends, form feed and ESC are
#: text's own): CJK in UTF-16 has one in about every ten characters; 8-bit mail has none.
_NOT_CONTROL_BYTES = bytes({*range(0x20, 256), 0x09, 0x0A, 0x0C, 0x0D, 0x1B})
#: Scripts written together, by the first word of a character's Unicode name.
_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "FULLWIDTH", "HALFWIDTH", "IDEOGRAPHIC"}
#: What chardet chooses among: the desk's scripts. Leaving out the DOS, Mac and Arabic sets
#: matters: with them, "Äiti" came out as HP Roman-8 and short CJK as cp1256.
GUESS_CANDIDATES = [
    "utf-8",
    "cp1252",
    "iso8859-15",
    "cp1250",
    "iso8859-2",
    "cp1257",
    "iso8859-13",
    "cp1254",
    "iso8859-9",
    "cp1258",
    "cp1251",
    "koi8-r",
    "koi8-u",
    "iso8859-5",
    "cp1253",
    "iso8859-7",
    "gb18030",
    "big5hkscs",
    "cp932",
    "shift_jis_2004",
    "euc_jis_2004",
    "cp949",
    "euc_kr",
]


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    charset: str
    #: Why the result may not be what the sender wrote (empty when the label was right).
    problem: str = ""


@lru_cache(maxsize=256)
def codec_for(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None if unknown or absent."""
    if not label:
        return None
    cleaned = label.strip().strip("\"'").lower()
    # Then the spellings clients invent around a known name: "x-cp1251", "cp-1252".
    for candidate in (
        cleaned,
        cleaned.removeprefix("x-"),
        re.sub(r"^(cp|windows)[-_ ]", "cp", cleaned),
    ):
        try:
            return codecs.lookup(ALIASES.get(candidate, candidate)).name
        except LookupError:
            continue
    return None


def decode_bytes(data: bytes, declared: str | None, hints: Sequence[str] = ()) -> Decoded:
    """`hints`: charsets the same message declares elsewhere (a raw 8-bit Subject is nearly
    always in the body's charset), tried before detection when `declared` does not fit."""
    if not data:
        return Decoded("", declared or "")
    codec = codec_for(declared)
    if (
        data.isascii()
        and b"\x1b" not in data
        and b"\x00" not in data
        and codec not in _NOT_ASCII_COMPATIBLE
    ):
        return Decoded(data.decode("ascii"), "ascii")
    marked = _by_byte_order_mark(data)
    if marked is not None:
        told = "its byte order mark" if data.startswith(_MARKS) else "the pattern of its bytes"
        relabel = "" if codec and codec.startswith(marked.charset[:6]) else told
        return Decoded(marked.text, marked.charset, relabel and f"charset from {relabel}")
    if _says_ascii(declared):
        # Any 8-bit byte under us-ascii is a mislabel: the label tells nothing.
        codec, problem = None, f"8-bit text labelled {declared!r}"
    else:
        problem = f"unknown charset {declared!r}" if declared and codec is None else ""
    if codec is not None:
        labelled = _as_labelled(data, codec, declared or "")
        if labelled is not None:
            return labelled
        problem = f"text is not valid {declared}"
    return _unlabelled(data, hints, problem)


def _as_labelled(data: bytes, codec: str, declared: str) -> Decoded | None:
    """The text under its label, unless the label cannot be true; None if it does not fit."""
    relabelled = _utf8_despite_label(data, codec)
    if relabelled is not None:
        return Decoded(relabelled, "utf-8", f"labelled {declared!r}, but the text is UTF-8")
    if codec in _LATIN_FAMILY and _ISO2022_JP_ESCAPES.search(data):
        japanese = _iso2022_jp(data)  # 7-bit Japanese under a Latin label
        if japanese is not None:
            return Decoded(japanese.text, japanese.charset, f"charset {declared!r} was wrong")
    try:
        text = _decode_allowing_cut_tail(data, codec)
    except (UnicodeDecodeError, LookupError):
        return None
    if codec not in _LATIN_FAMILY:
        return Decoded(text, codec)
    if _plausible_latin(text):
        other = _another_latin(data, text, codec)
        if other is not None:
            return Decoded(other.text, other.charset, f"charset {declared!r} was wrong")
        return Decoded(text, codec)
    # A Latin label on text that is mostly accented capitals and symbols: mislabelled.
    better = _detect(data)
    if better is not None and better.charset != codec:
        return Decoded(better.text, better.charset, f"charset {declared!r} was wrong")
    return Decoded(text, codec)


def _unlabelled(data: bytes, hints: Sequence[str], problem: str) -> Decoded:
    japanese = _iso2022_jp(data)
    if japanese is not None:
        return japanese
    try:
        utf8 = _decode_allowing_cut_tail(data, "utf-8")
    except UnicodeDecodeError:
        utf8 = ""
    # Valid UTF-8 is almost never an accident, except for a single character: two bytes of
    # GB2312 or Big5 are valid UTF-8 one time in eight. Then the message's own charsets decide.
    if utf8 and not (hints and _one_non_ascii(utf8)):
        return Decoded(utf8, "utf-8", problem)
    hinted = _hinted(data, hints)
    if hinted is not None:
        return Decoded(hinted.text, hinted.charset, problem or hinted.problem)
    if utf8:
        return Decoded(utf8, "utf-8", problem)
    guessed = _guess(data)
    if guessed is not None and not _too_few_to_leave_latin(data, guessed):
        return Decoded(guessed.text, guessed.charset, problem or "charset guessed")
    # Unlabelled 8-bit mail from our customers is most often Western European (Finnish,
    # Swedish, German, Estonian all fit windows-1252). Believe it when the text reads as Latin.
    western = data.decode("cp1252", "replace")
    if _plausible_latin(western):
        return Decoded(western, "cp1252", problem or "charset guessed")
    detected = _detect(data)
    if detected is not None:
        return Decoded(detected.text, detected.charset, problem or "charset guessed")
    return Decoded(
        data.decode("utf-8", "replace"), "utf-8", problem or "undecodable bytes replaced"
    )


def _says_ascii(label: str | None) -> bool:
    return bool(label) and label.strip().strip("\"'").lower() in _ASCII_LABELS  # type: ignore[union-attr]


def _by_byte_order_mark(data: bytes) -> Decoded | None:
    """A byte order mark says what the text is, whatever the label: UTF-16 mail labelled
    latin-1 or nothing came out as "ÿþH\x00e\x00". Without one, UTF-16 of Latin, Cyrillic or
    Greek text has the same small byte (the script's block) in every other byte, which no
    8-bit text has."""
    for mark, codec in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return _decoded_strictly(data[len(mark) :], codec)
    sample = data[:4096]
    if len(sample) < 8 or len(data) % 2:
        return None
    if len(sample.translate(None, _NOT_LOW_BYTES)) < 0.3 * len(sample):
        # 8-bit text has almost no bytes under 0x07: the quick way out, unless the text has
        # control bytes no 8-bit text has, as CJK in UTF-16 does.
        if len(sample.translate(None, _NOT_CONTROL_BYTES)) == 0:
            return None
        return _utf16_of_one_script(data)
    for high_bytes, codec in ((sample[1::2], "utf-16-le"), (sample[0::2], "utf-16-be")):
        # The high byte of Latin, Greek, Cyrillic, Hebrew or Arabic UTF-16 is one small value.
        block = Counter(high_bytes[:512]).most_common(1)[0][0]
        if block < 0x07 and high_bytes.count(block) > 0.6 * len(high_bytes):
            return _decoded_strictly(data, codec)
    return None


def _utf16_of_one_script(data: bytes) -> Decoded | None:
    """Chinese, Japanese or Korean in UTF-16 without a byte order mark: no small high byte
    gives it away, but read in the right byte order it is one script (ideographs with kana,
    full-width punctuation, ASCII) and nothing unassigned, while the wrong order, or an 8-bit
    text with a stray control byte, scatters over Hangul, Yi, private use and controls."""
    for codec in ("utf-16-le", "utf-16-be"):
        decoded = _decoded_strictly(data, codec)
        if decoded is not None and _one_script(decoded.text[:2048]):
            return decoded
    return None


def _one_script(text: str) -> bool:
    """One script, nothing unassigned, and not ASCII read two bytes at a time: "Hello" in
    pairs is three CJK ideographs ("Bush hid the facts"), where real Chinese or Japanese in
    UTF-16 has a byte outside printable ASCII in most characters."""
    if sum(_printable_ascii_pair(char) for char in text) > 0.9 * len(text):
        return False
    return _mostly_one_script(text)


def _printable_ascii_pair(char: str) -> bool:
    code = ord(char)
    return 0x20 <= code & 0xFF <= 0x7E and 0x20 <= code >> 8 <= 0x7E


def _mostly_one_script(text: str) -> bool:
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isascii():
            if char.isprintable() or char in "\t\n\r":
                continue
            return False
        if unicodedata.category(char) in ("Cc", "Cn", "Co", "Cs"):
            return False
        script = unicodedata.name(char, "?").split(" ", 1)[0]
        scripts["CJK" if script in _EAST_ASIAN else script] += 1
    if not scripts:
        return False
    return scripts.most_common(1)[0][1] >= 0.95 * scripts.total()


def _decoded_strictly(data: bytes, codec: str) -> Decoded | None:
    try:
        return Decoded(_decode_allowing_cut_tail(data, codec), codec)
    except UnicodeDecodeError:
        return None


def _another_latin(data: bytes, text: str, codec: str) -> Decoded | None:
    """Polish in ISO-8859-2 or Turkish in ISO-8859-9 labelled latin-1 reads as plausible Latin
    with the wrong letters ("siê ju¿", "Sipariþim"). Such readings have letters Western
    European text does not; only then is chardet asked (it costs 0.3 ms, and most Latin mail
    is Western), and its guess taken if it is another Latin charset that reads otherwise."""
    if not _FOREIGN_LATIN_TELLS.search(text, 0, 4000):
        return None
    guessed = _guess(data)
    if guessed is None or guessed.charset == codec or guessed.charset not in _OTHER_LATIN:
        return None
    return None if guessed.text == text else guessed


def _utf8_despite_label(data: bytes, codec: str) -> str | None:
    """Valid UTF-8 under another label: the label is wrong (a form or a gateway declared
    us-ascii or latin-1 and sent UTF-8). Real text in a single-byte charset is practically
    never valid UTF-8: an accented letter would have to be followed each time by one of
    the symbols that UTF-8 continues with. Under a multi-byte label a character or two can
    be chance (one GB2312 pair in nine is valid UTF-8), so four are asked for there."""
    if codec == "utf-8" or codec in _NOT_ASCII_COMPATIBLE or codec.startswith("iso2022"):
        return None
    try:
        text = _decode_allowing_cut_tail(data, "utf-8")
    except UnicodeDecodeError:
        return None
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return text if non_ascii >= (1 if _single_byte(codec) else 4) else None


@lru_cache(maxsize=64)
def _single_byte(codec: str) -> bool:
    try:
        return len(bytes(range(128, 256)).decode(codec, "replace")) == 128
    except LookupError:
        return False


def _one_non_ascii(text: str) -> bool:
    return len(text.encode("ascii", "ignore")) == len(text) - 1


def _hinted(data: bytes, hints: Sequence[str]) -> Decoded | None:
    for hint in dict.fromkeys(hints):
        codec = codec_for(hint)
        if codec is None or codec == "utf-8":
            continue  # UTF-8 was tried already
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec not in _LATIN_FAMILY or _plausible_latin(text):
            return Decoded(text, codec, f"charset taken from the message's {hint!r} parts")
    return None


def _guess(data: bytes) -> Decoded | None:
    """chardet, among the desk's scripts, on the 8-bit words of the first 4 KB: it reads
    short texts that charset-normalizer cannot judge. Shown the 8-bit words only: beside an
    ASCII address, "山田太郎" in Shift_JIS read as cp1252."""
    words = b" ".join(word for word in data[:4096].split() if not word.isascii())
    guess = chardet.detect(words, include_encodings=GUESS_CANDIDATES)["encoding"]
    if not guess:
        return None
    try:
        return Decoded(_decode_allowing_cut_tail(data, guess), codecs.lookup(guess).name)
    except (UnicodeDecodeError, LookupError):
        return None


def _too_few_to_leave_latin(data: bytes, guess: Decoded) -> bool:
    """One or two 8-bit bytes are one or two letters: too few for a model to leave the Latin
    scripts on ("Öö" is likelier from our customers than "Жі"). Between Latin charsets its
    guess stands: "yanlış" is cp1254."""
    if guess.charset in _LATIN_FAMILY or guess.charset in _OTHER_LATIN:
        return False
    return len(data.translate(None, _ASCII_BYTES)) <= 2


def _decode_allowing_cut_tail(data: bytes, codec: str) -> str:
    """Strict decoding, except that a multi-byte character cut by a size cap at the very end
    is dropped rather than failing the whole text. Only where the text before it already has
    multi-byte characters: a lone 8-bit byte at the end of ASCII ("CAF\xc9" in cp1252, a
    one-letter subject) is a Latin letter, not half of one."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        if error.start < len(data) - 8 or error.reason != "unexpected end of data":
            raise
        head = data[: error.start]
        if head.isascii():
            raise
        return head.decode(codec)


def _detect(data: bytes) -> Decoded | None:
    """For text its Latin label cannot be true of: chardet, then charset-normalizer (CJK
    bytes under a Latin label came out as Cyrillic with charset-normalizer alone)."""
    guessed = _guess(data)
    if guessed is not None and guessed.charset not in _LATIN_FAMILY:
        return guessed
    # Cap the input so a 50 MB body costs what a 64 KB one does for the guess, then decode
    # the whole with the guess.
    best = from_bytes(data[:65536], cp_isolation=NON_LATIN_CANDIDATES).best()
    guess = best.encoding if best is not None else None
    if guess and best is not None and best.coherence:
        return _decoded_as(data, guess)
    # Too short for the detector's language models (a subject line): judge by letter case.
    by_case = _by_letter_case(data)
    if by_case is not None:
        return by_case
    return _decoded_as(data, guess) if guess else None


def _decoded_as(data: bytes, encoding: str) -> Decoded | None:
    try:
        return Decoded(data.decode(encoding, "replace"), codecs.lookup(encoding).name)
    except LookupError:
        return None


#: Single-byte sets told apart by letter case: KOI8-R read as windows-1251 (and the reverse)
#: comes out in the wrong case, while real text is mostly lowercase.
_CASE_CANDIDATES = ("cp1251", "koi8_r", "iso8859_5", "cp866", "cp1253", "iso8859_7")


def _by_letter_case(data: bytes) -> Decoded | None:
    sample = data[:4096]
    best: tuple[float, str] | None = None
    for codec in _CASE_CANDIDATES:
        try:
            text = sample.decode(codec)
        except UnicodeDecodeError:
            continue
        high = [char for char, byte in zip(text, sample, strict=True) if byte >= 0x80]
        if not high:
            return None
        score = sum((char.isalpha() + char.islower()) for char in high) / (2 * len(high))
        if best is None or score > best[0]:
            best = (score, codec)
    if best is None or best[0] < 0.6:
        return None
    return Decoded(data.decode(best[1], "replace"), best[1])


def _iso2022_jp(data: bytes) -> Decoded | None:
    """ISO-2022-JP is 7-bit: unlabelled, it passes for ASCII with escape codes in it. With
    Microsoft's extensions (①, ㈱, half-width katakana) Python's codec refuses it."""
    if b"\x1b$" not in data and b"\x1b(I" not in data:
        return None
    try:
        return Decoded(data.decode("iso2022_jp_ext"), "iso2022_jp_ext")
    except UnicodeDecodeError:
        text = decode_cp5022x(data)
    return None if text is None else Decoded(text, "cp50220")


#: Letters from the upper half of Latin-1 and Latin Extended (ä, õ, š, ß, ...).
_LATIN_UPPER_LETTERS = re.compile(r"[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_ASCII_LETTERS = re.compile(r"[A-Za-z]")
#: Upper-half symbols that real Latin-script text almost never has, but that Japanese or
#: Chinese bytes read as windows-1252 are full of (‚ ƒ „ † ‡ ˆ ‰ ‹ ¤ ¦ ...). Outlook's smart
#: quotes, dashes, €, «», §, ° and the no-break space are left out: Latin text is full of them.
_ODD_SYMBOLS = re.compile(
    r"[\x80-\x9f\xa2-\xa6\xa8\xaa\xac\xad\xaf\xb2\xb3\xb5\xb6\xb8-\xba\xbc-\xbe"
    r"\u0192\u201a\u2020\u2021\u02c6\u2030\u2039\u203a\u02dc\u2122\ufffd]"
)


def _plausible_latin(text: str) -> bool:
    """Latin-script languages are mostly ASCII letters, and their few others are letters too.
    Cyrillic or Greek bytes read as Latin-1 are almost only upper-half letters (Finnish
    "Hyvää päivää" is about half); Japanese or Chinese bytes read as Latin-1 are full of odd
    symbols. Counted with regexes: this runs on every Latin-labelled part."""
    sample = text[:4000]
    if sample.isascii():
        return True
    odd = len(_ODD_SYMBOLS.findall(sample))
    upper = len(_LATIN_UPPER_LETTERS.findall(sample))
    if odd > 2 and odd > 0.3 * (odd + upper):
        return False
    if upper == 0:
        return True
    letters = upper + len(_ASCII_LETTERS.findall(sample))
    # Under a handful of letters there is nothing to judge by ("Öö" is fine Finnish).
    return letters <= 3 or upper / letters < 0.7
