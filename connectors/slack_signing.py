"""Whether a request really comes from Slack: its v0 signature with the app's signing secret,
and a timestamp recent enough that a captured request cannot be replayed. Shared by the
customer-chat connector's Events API receiver and the agents' one (inbox/service/agent_replies.py).
"""

from __future__ import annotations

import time

from slack_sdk.signature import SignatureVerifier

from inbox.webhook import WebRequest

#: Slack's own advice: refuse requests older than five minutes.
MAX_AGE_SECONDS = 5 * 60


def unverified(verifier: SignatureVerifier, request: WebRequest) -> tuple[str, str] | None:
    """None for a genuine request; else (the reason to log, the answer's text for a 401)."""
    timestamp = request.header("x-slack-request-timestamp")
    signature = request.header("x-slack-signature")
    if not timestamp or not signature:
        return "unsigned", "missing Slack signature"
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        age = float("inf")
    if age > MAX_AGE_SECONDS:
        return "stale or bad timestamp", "request timestamp too old"
    if not verifier.is_valid(request.body, timestamp, signature):
        return "bad signature", "bad Slack signature"
    return None
