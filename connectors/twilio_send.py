"""Replies by SMS: Twilio's Messages API, from the number the customer wrote to.

The HTTP client makes one attempt a call: a POST that Twilio may have acted on before failing
(a 5xx, no answer) must not be repeated blindly, so the outbox retries, and asks `was_sent`
first, which looks for our text to that number in the account's log since the reply was
written. Twilio's error codes that no retry changes (an invalid or unreachable number, a
landline, a number that replied STOP to Twilio) fail the reply at once with Twilio's words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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


def segments(text: str) -> int:
    """How many SMS a text is sent as (what the agent is told before sending a long one)."""
    if all(char in GSM7 for char in text):
        extended = sum(char in "^{}\\[~]|€" for char in text)
        length = len(text) + extended
        return 1 if length <= 160 else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


class TwilioReplySender:
    def __init__(self, client: Callable[[], Client], *, look_back: timedelta = timedelta(days=2)):
        self._client = client
        self.look_back = look_back

    def send(self, outgoing: Outgoing) -> Delivery:
        try:
            message = self._client().messages.create(
                to=outgoing.to, from_=outgoing.from_address, body=outgoing.text
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
