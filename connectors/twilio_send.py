"""Replies by SMS: Twilio's Messages API, from the number the customer wrote to.

The HTTP client makes one attempt a call: a POST that Twilio may have acted on before failing
(a 5xx, no answer) must not be repeated blindly, so the outbox retries, and asks `was_sent`
first, which looks for our text to that number in the account's log since the reply was
written. Twilio's error codes that no retry changes (an invalid or unreachable number, a
landline, a number that replied STOP to Twilio) fail the reply at once with Twilio's words.

With a status callback URL, each text asks Twilio to call back with what became of it (sent,
delivered, undelivered, failed); the reply's key rides in the URL's query, which Twilio signs
with the rest, so that a callback finds its reply even before the outbox has recorded the send.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from connectors.base import Delivery, Outgoing, SendFailed

#: Twilio error codes that mean "never": https://www.twilio.com/docs/api/errors
PERMANENT_CODES = frozenset({21211, 21214, 21217, 21408, 21610, 21612, 21614, 21606, 21602})
#: GSM-7 texts up to 160 characters are one segment, longer ones 153 each; UCS-2 (any
#: character outside GSM-7: Cyrillic, Greek beyond the capitals, emoji) 70 and 67.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
#: What the carrier said of a text that never arrived, in Twilio's words (ErrorCode of a
#: status callback): https://www.twilio.com/docs/api/errors
DELIVERY_ERRORS = {
    "30001": "queue overflow",
    "30002": "account suspended",
    "30003": "unreachable destination handset (off or out of coverage)",
    "30004": "message blocked (the recipient or their carrier blocks it)",
    "30005": "unknown destination handset (the number does not exist)",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown error",
    "30009": "missing segment",
    "30010": "message price exceeds the max price",
    "21610": "the recipient replied STOP",
}
#: The query parameter of the status callback URL that carries the reply's key.
REPLY_KEY = "reply"


def segments(text: str) -> int:
    """How many SMS a text is sent as (what the agent is told before sending a long one)."""
    if all(char in GSM7 for char in text):
        extended = sum(char in "^{}\\[~]|€" for char in text)
        length = len(text) + extended
        return 1 if length <= 160 else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


class TwilioReplySender:
    def __init__(
        self,
        client: Callable[[], Client],
        *,
        look_back: timedelta = timedelta(days=2),
        status_callback: str = "",
    ):
        self._client = client
        self.look_back = look_back
        #: Where Twilio reports each text's fate ("" asks for no reports).
        self.status_callback = status_callback

    def send(self, outgoing: Outgoing) -> Delivery:
        extra: dict[str, str] = {}
        if self.status_callback:
            joiner = "&" if "?" in self.status_callback else "?"
            extra["status_callback"] = (
                f"{self.status_callback}{joiner}{REPLY_KEY}={quote(outgoing.key, safe='')}"
            )
        try:
            message = self._client().messages.create(
                to=outgoing.to, from_=outgoing.from_address, body=outgoing.text, **extra
            )
        except TwilioRestException as error:
            raise _failed(error) from None
        except (TwilioException, OSError) as error:
            raise SendFailed(
                f"Twilio did not answer ({error}): the text may have been sent",
                temporary=True,
                unsure=True,
            ) from None
        said = f"{message.status} as {message.sid}, {message.num_segments or '?'} segment(s)"
        return Delivery(provider_id=str(message.sid), answer=said)

    def was_sent(self, outgoing: Outgoing) -> bool | None:
        """Our text, word for word, from our number to theirs within `look_back`."""
        since = datetime.now(UTC) - self.look_back
        try:
            found = self._client().messages.list(
                to=outgoing.to, from_=outgoing.from_address, date_sent_after=since, limit=200
            )
        except (TwilioException, OSError):
            return None
        return any((message.body or "") == outgoing.text for message in found)


def _failed(error: TwilioRestException) -> SendFailed:
    status = error.status
    said = f"Twilio answered HTTP {status}" + (
        f" (error {error.code}: {error.msg})" if error.code else ""
    )
    if status == 429:
        return SendFailed(said, temporary=True)
    if status >= 500:
        return SendFailed(said, temporary=True, unsure=True)
    if error.code in PERMANENT_CODES or status in (400, 404):
        return SendFailed(said, temporary=False)
    return SendFailed(said, temporary=True)  # 401/403: a credential to fix, then it goes


def delivery_detail(state: str, sid: str, error_code: str) -> str:
    """A status callback as the agent reads it on the reply."""
    said = f"{state} (Twilio {sid})"
    if error_code and error_code != "0":
        meaning = DELIVERY_ERRORS.get(error_code, "see twilio.com/docs/api/errors")
        said += f": error {error_code}, {meaning}"
    return said
