"""Mail shaped like the real-world classes that came out wrong (issue 19), written here by hand.

Each fixture is built from text and a charset so that its bytes are exactly what such a client
sends: raw 8-bit CJK headers, labels real clients use that Python does not know, encoded words
of several charsets side by side, a header block broken by unfolded lines, display names with
encoded words glued to plain words. tests/normalize/test_realworld.py checks each decodes to
what its writer meant; `bench/corpus_check.py --fixtures` counts them by class.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from inbox.normalize.types import NormalizedMessage


@dataclass(frozen=True)
class Fixture:
    kind: str
    name: str
    raw: bytes
    subject: str | None = None
    sender_name: str | None = None
    sender_address: str | None = None
    #: Texts the body must contain.
    body: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()


def mismatches(fixture: Fixture, normalized: NormalizedMessage) -> list[str]:
    """What came out other than its writer meant: empty when the fixture reads right."""
    found = []
    sender = normalized.sender
    if fixture.subject is not None and normalized.subject != fixture.subject:
        found.append(f"subject {normalized.subject!r}")
    if fixture.sender_name is not None and (sender is None or sender.name != fixture.sender_name):
        found.append(f"sender name {sender.name if sender else None!r}")
    if fixture.sender_address is not None and (
        sender is None or sender.shown != fixture.sender_address
    ):
        found.append(f"sender address {sender.shown if sender else None!r}")
    found += [f"body lacks {text!r}" for text in fixture.body if text not in normalized.text]
    if "\ufffd" in normalized.text + normalized.subject:
        found.append("U+FFFD in the text")
    names = tuple(attachment.filename for attachment in normalized.attachments)
    if fixture.attachments and names != fixture.attachments:
        found.append(f"attachments {names!r}")
    return found


def mail(
    headers: list[tuple[str, bytes | str]],
    body: bytes | str,
    *,
    content_type: str = "text/plain; charset=utf-8",
    encoding: str = "8bit",
) -> bytes:
    """A message from header values as given (bytes stay raw 8-bit) and a body."""
    digest = hashlib.sha1(repr((headers, body)).encode()).hexdigest()[:16]
    lines = [f"Message-ID: <{digest}@fixtures.example>".encode()]
    lines += [b"Date: Tue, 03 Nov 2026 09:30:00 +0200", b"MIME-Version: 1.0"]
    for name, value in headers:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    lines.append(f"Content-Type: {content_type}".encode())
    lines.append(f"Content-Transfer-Encoding: {encoding}".encode())
    data = body if isinstance(body, bytes) else body.encode()
    return b"\r\n".join(lines) + b"\r\n\r\n" + data


def with_attachment(
    headers: list[tuple[str, bytes | str]], text: str, charset: str, filename: bytes
) -> bytes:
    """A text part in `charset` and a PDF whose file name is raw 8-bit bytes, no RFC 2231."""
    body = (
        b"--b1\r\nContent-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode(charset) + b"\r\n"
        b'--b1\r\nContent-Type: application/pdf; name="' + filename + b'"\r\n'
        b'Content-Disposition: attachment; filename="' + filename + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    return mail(headers, body, content_type='multipart/mixed; boundary="b1"', encoding="7bit")


def q_word(text: str, charset: str) -> str:
    """One RFC 2047 Q-encoded word, every non-alphanumeric byte escaped."""
    escaped = "".join(
        chr(b) if chr(b).isalnum() and b < 128 else ("_" if b == 32 else f"={b:02X}")
        for b in text.encode(charset)
    )
    return f"=?{charset}?Q?{escaped}?="


def b_word(data: bytes, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


# -- 1. raw 8-bit headers in CJK charsets ---------------------------------------------------

ZH = "关于订单的问题，请尽快回复"
ZH_BODY = "您好，我上周订购的帐篷还没有收到，请帮我查一下物流信息。谢谢！"
JA = "注文した商品がまだ届きません"
JA_BODY = "先週注文したテントがまだ届いていません。配送状況を確認していただけますか。"
KO = "주문한 상품이 아직 도착하지 않았습니다"
KO_BODY = "안녕하세요. 지난주에 주문한 텐트가 아직 도착하지 않았습니다. 배송 상태를 확인해 주세요."
TW = "訂單的問題，請盡快回覆"
TW_BODY = "您好，我上週訂購的帳篷還沒有收到，請幫我查一下物流資訊。謝謝！"

CJK_RAW: list[Fixture] = (
    [
        Fixture(
            "cjk-raw-headers",
            f"{charset}-subject-and-from",
            mail(
                [
                    ("From", name.encode(charset) + b" <customer@example.net>"),
                    ("Subject", subject.encode(charset)),
                ],
                body.encode(charset),
                content_type=f"text/plain; charset={label}",
            ),
            subject=subject,
            sender_name=name,
            body=(body,),
        )
        for charset, label, name, subject, body in [
            ("gbk", "gb2312", "王小明", ZH, ZH_BODY),
            ("shift_jis", "shift_jis", "山田太郎", JA, JA_BODY),
            ("euc_kr", "euc-kr", "김민수", KO, KO_BODY),
            ("big5", "big5", "陳大文", TW, TW_BODY),
            ("euc_jp", "euc-jp", "佐藤花子", JA, JA_BODY),
        ]
    ]
    + [
        # No hint at all: the body is ASCII, only the Subject is 8-bit.
        Fixture(
            "cjk-raw-headers",
            f"{charset}-subject-no-hint",
            mail([("From", "customer@example.net"), ("Subject", subject.encode(charset))], "Hi"),
            subject=subject,
            body=("Hi",),
        )
        for charset, subject in [("gbk", ZH), ("shift_jis", JA), ("euc_kr", KO), ("big5", TW)]
    ]
    + [
        Fixture(
            "cjk-raw-headers",
            f"{charset}-attachment-name",
            with_attachment(
                [("From", "customer@example.net"), ("Subject", "Quote")],
                body,
                label,
                filename.encode(charset),
            ),
            body=(body,),
            attachments=(filename,),
        )
        for charset, label, filename, body in [
            ("gbk", "gbk", "报价单（修订版）.pdf", ZH_BODY),
            ("shift_jis", "shift_jis", "見積書_最新版.pdf", JA_BODY),
            ("euc_kr", "euc-kr", "견적서_최종.pdf", KO_BODY),
        ]
    ]
)

# -- 2. charset labels and extensions real clients send --------------------------------------

FI_BODY = "Hyvää päivää! Tilaukseni on myöhässä jo viikon."
TH_BODY = "สวัสดีครับ สินค้าที่สั่งยังไม่ได้รับเลยครับ"
UTF7_SUBJECT = "Tilaus myöhässä – päivitys?"

ALIASES: list[Fixture] = [
    Fixture(
        "charset-aliases",
        f"label-{label}",
        mail(
            [("From", "customer@example.net"), ("Subject", "Order")],
            body.encode(codec),
            content_type=f"text/plain; charset={label}",
        ),
        body=(body,),
    )
    for label, codec, body in [
        ("iso-gb2312", "gb2312", ZH_BODY),
        ("gb_2312-80", "gb2312", ZH_BODY),
        ("x-gbk", "gbk", ZH_BODY),
        ("ks_c_5601-1987", "euc_kr", KO_BODY),
        ("x-sjis", "shift_jis", JA_BODY),
        ("windows-874", "cp874", TH_BODY),
        ("cp-850", "cp850", FI_BODY),
        ("utf8", "utf-8", FI_BODY),
        ("x-euc-jp", "euc_jp", JA_BODY),
        ("x-mac-roman", "mac_roman", FI_BODY),
    ]
] + [
    Fixture(
        "charset-aliases",
        "utf-7-encoded-word",
        mail(
            [
                ("From", "customer@example.net"),
                ("Subject", b_word(UTF7_SUBJECT.encode("utf-7"), "unicode-1-1-utf-7")),
            ],
            "Hi",
        ),
        subject=UTF7_SUBJECT,
    ),
    Fixture(
        "charset-aliases",
        "iso-2022-jp-with-nec-circled-digits",
        # Outlook and Becky! write ①② and full-width forms in "ISO-2022-JP" as CP50220 does.
        mail(
            [("From", "customer@example.net"), ("Subject", "注文")],
            "\x1b$B" + "\x2d\x21\x2d\x22" + "\x1b(B" + " 確認済み".encode("iso2022_jp").decode(),
            content_type="text/plain; charset=iso-2022-jp",
            encoding="7bit",
        ),
        body=("①② 確認済み",),
    ),
    Fixture(
        "charset-aliases",
        "iso-2022-jp-subject-with-full-width-tilde",
        mail(
            [
                ("From", "customer@example.net"),
                ("Subject", b_word("発送日～到着日".encode("cp932"), "shift_jis")),
            ],
            "Hi",
        ),
        subject="発送日～到着日",
    ),
]

# -- 3. mixed encoded words in one header ----------------------------------------------------

MIXED: list[Fixture] = [
    Fixture(
        "mixed-encoded-words",
        "utf8-latin1-cp1251-side-by-side",
        mail(
            [
                ("From", "customer@example.net"),
                (
                    "Subject",
                    f"{q_word('Päivää', 'utf-8')} {q_word('Grüße', 'iso-8859-1')} "
                    f"{b_word('Привет'.encode('cp1251'), 'windows-1251')} and more",
                ),
            ],
            "Hi",
        ),
        subject="PäivääGrüßeПривет and more",
    ),
    Fixture(
        "mixed-encoded-words",
        "utf8-split-mid-character",
        mail(
            [
                ("From", "customer@example.net"),
                (
                    "Subject",
                    # "Заказ №" split inside the two bytes of "к", folded between the words.
                    b_word("Зака".encode()[:7], "utf-8")
                    + "\r\n "
                    + b_word("Заказ №5".encode()[7:], "utf-8"),
                ),
            ],
            "Hi",
        ),
        subject="Заказ №5",
    ),
    Fixture(
        "mixed-encoded-words",
        "greek-first-letter-escaped",
        mail(
            [
                ("From", "customer@example.net"),
                ("Subject", q_word("Σπασμένο φερμουάρ", "iso-8859-7")),
            ],
            "Hi",
        ),
        subject="Σπασμένο φερμουάρ",
    ),
    Fixture(
        "mixed-encoded-words",
        "plain-text-between-words-kept",
        mail(
            [
                ("From", "customer@example.net"),
                (
                    "Subject",
                    f"Re: {q_word('Ärende', 'iso-8859-1')} 4471 {q_word('på väg', 'utf-8')}",
                ),
            ],
            "Hi",
        ),
        subject="Re: Ärende 4471 på väg",
    ),
    Fixture(
        "mixed-encoded-words",
        "lowercase-q-and-b",
        mail(
            [
                ("From", "customer@example.net"),
                (
                    "Subject",
                    b_word("Вопрос ".encode("koi8-r"), "koi8-r").replace("?B?", "?b?")
                    + " "
                    + q_word("по заказу", "koi8-r").replace("?Q?", "?q?"),
                ),
            ],
            "Hi",
        ),
        subject="Вопрос по заказу",
    ),
]

# -- 4. a header block broken by an unfolded continuation line -------------------------------

TRACK = base64.b64encode(bytes(range(256)) * 2).decode()
BROKEN_BLOCK: list[Fixture] = [
    Fixture(
        "broken-header-block",
        f"tracking-token-{width}-wide",
        mail(
            [
                ("X-Mailer-Track", "\r\n".join(TRACK[i : i + width] for i in range(0, 600, width))),
                ("From", "Aino Virtanen <aino@esimerkki.fi>"),
                ("Subject", "Tilaus 4471"),
            ],
            FI_BODY.encode("iso-8859-1"),
            content_type="text/plain; charset=iso-8859-1",
        ),
        subject="Tilaus 4471",
        sender_name="Aino Virtanen",
        sender_address="aino@esimerkki.fi",
        body=(FI_BODY,),
    )
    for width in (64, 76, 998)
]

# -- 5. display names ------------------------------------------------------------------------

DISPLAY: list[Fixture] = [
    Fixture(
        "display-names",
        "encoded-word-glued-to-a-word",
        mail([("From", "=?utf-8?q?B=C3=84KO?=Schönland <info@baeko.example>".encode())], "Hi"),
        sender_name="BÄKOSchönland",
        sender_address="info@baeko.example",
    ),
    Fixture(
        "display-names",
        "space-between-word-and-text-kept",
        mail([("From", "=?utf-8?q?J=C3=BCrgen?= Meier <jm@example.de>")], "Hi"),
        sender_name="Jürgen Meier",
    ),
    Fixture(
        "display-names",
        "two-encoded-words-joined",
        mail([("From", "=?utf-8?q?Jyrki_?= =?utf-8?q?J=C3=A4rvinen?= <jj@example.fi>")], "Hi"),
        sender_name="Jyrki Järvinen",
    ),
    Fixture(
        "display-names",
        "quoted-name-with-comma",
        mail([("From", '"Virtanen, Aino" <aino@esimerkki.fi>')], "Hi"),
        sender_name="Virtanen, Aino",
        sender_address="aino@esimerkki.fi",
    ),
    Fixture(
        "display-names",
        "quoted-local-part",
        mail([("From", 'Aino <"Aino Virtanen"@Esimerkki.FI>')], "Hi"),
        sender_name="Aino",
        sender_address='"Aino Virtanen"@esimerkki.fi',
    ),
    Fixture(
        "display-names",
        "trailing-dot-in-local-part",
        # Japanese carriers handed such addresses out for years; they must stay as written.
        mail([("From", "Taro <Taro.Yamada.@Docomo.NE.jp>")], "Hi"),
        sender_name="Taro",
        sender_address="Taro.Yamada.@docomo.ne.jp",
    ),
]

FIXTURES: list[Fixture] = CJK_RAW + ALIASES + MIXED + BROKEN_BLOCK + DISPLAY
