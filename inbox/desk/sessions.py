"""Signed, expiring session cookies and the CSRF token of each session.

Nothing is kept server-side: the cookie holds the user's name, a random session id and the
fingerprint of their password hash, signed (itsdangerous, HMAC-SHA1 over a key derived from the
secret) with its time. A cookie older than `session_hours`, or signed with another key, or
from before a password change, opens nothing. The CSRF token is an HMAC of the session id:
a form from another site cannot know it, and a stolen form of one session is useless in another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from inbox.secrets import Secret, SecretSource

COOKIE = "inbox_desk"


@dataclass(frozen=True)
class DeskSession:
    user: str
    session_id: str
    fingerprint: str


def desk_secret(source: SecretSource | None, data_dir: Path) -> str:
    """The configured secret, else one made on first use and kept in data_dir (0600), so that
    sessions outlive a restart and several daemons on one data_dir agree."""
    if source is not None:
        return Secret(source).get()
    path = data_dir / "desk-secret"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another daemon made it first
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return value


class Sessions:
    def __init__(self, secret: str, *, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="inbox-desk-session")
        self._csrf_key = hashlib.sha256(f"csrf:{secret}".encode()).digest()
        self.max_age_seconds = max_age_seconds

    def open(self, user: str, fingerprint: str) -> tuple[DeskSession, str]:
        """A new session and its cookie value."""
        session = DeskSession(user, secrets.token_urlsafe(16), fingerprint)
        value = self._serializer.dumps([session.user, session.session_id, session.fingerprint])
        return session, value

    def read(self, cookie: str | None) -> DeskSession | None:
        if not cookie:
            return None
        try:
            user, session_id, fingerprint = self._serializer.loads(
                cookie, max_age=int(self.max_age_seconds)
            )
        except (BadSignature, ValueError, TypeError):
            return None
        return DeskSession(str(user), str(session_id), str(fingerprint))

    def csrf_token(self, session: DeskSession) -> str:
        return hmac.new(self._csrf_key, session.session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: DeskSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")
