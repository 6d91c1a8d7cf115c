"""Where a secret comes from: a file, the environment, a systemd credential or a command.

A secret is never written in the config itself: the config says where to read it, so the file
can be world-readable, checked into an admin's repository, and shown in a bug report. Secrets are
read when they are needed (at each connection), so a rotated password or a refreshed token file
is picked up without a restart, and they never appear in a repr, a log line or an error.

Under systemd, `LoadCredential=imap-password:/etc/inbox/imap-password` puts the file in
`$CREDENTIALS_DIRECTORY`, readable by the service alone; `{credential = "imap-password"}` reads it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from inbox.log_setup import remember_secret

#: A token command that has not answered by then is stuck (a browser prompt, a dead network).
COMMAND_TIMEOUT_SECONDS = 30.0
#: A token is renewed this long before the expiry its command announced.
EXPIRY_MARGIN_SECONDS = 60.0


class SecretError(Exception):
    """The secret cannot be read. The message says from where, never what."""


class SecretSource(BaseModel):
    """Exactly one of `file`, `env`, `credential` or `command`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    env: str | None = None
    credential: str | None = None
    #: Prints the secret (an OAuth access token, say) on standard output: either the token alone
    #: or JSON with `access_token` and `expires_in` seconds (what OAuth token endpoints answer).
    command: list[str] | str | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "a secret is not written in the config: give {file = ...}, {env = ...}, "
                "{credential = ...} (systemd LoadCredential=) or {command = [...]}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        given = [name for name in ("file", "env", "credential", "command") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of file, env, credential, command (got {given or 'none'})"
            )
        return self

    def describe(self) -> str:
        """Where the secret comes from, for error messages."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.credential is not None:
            return f"systemd credential {self.credential}"
        return f"command {self._argv()[0]!r}"

    def _argv(self) -> list[str]:
        command = self.command or []
        return shlex.split(command) if isinstance(command, str) else list(command)


class Secret:
    """A secret read from its source when asked, kept only as long as it is valid."""

    def __init__(self, source: SecretSource) -> None:
        self.source = source
        self._value: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"Secret({self.source.describe()})"

    def get(self) -> str:
        """The secret; commands run again once their token has expired. Each value read is
        handed to the logging setup, which redacts it from every line should a library or an
        exception ever print it."""
        if self.source.command is None:
            value = self._read()
        else:
            if self._value is None or time.monotonic() >= self._expires_at:
                self._value, lifetime = self._run()
                self._expires_at = time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)
            value = self._value
        remember_secret(value)
        return value

    def forget(self) -> None:
        """The server refused it: the next `get` asks the command again."""
        self._value = None

    def _read(self) -> str:
        source = self.source
        if source.env is not None:
            value = os.environ.get(source.env)
            if not value:
                raise SecretError(f"{source.describe()} is not set")
            return value
        if source.credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise SecretError(
                    f"{source.describe()}: $CREDENTIALS_DIRECTORY is not set "
                    "(LoadCredential= in the unit provides it)"
                )
            path = Path(directory) / source.credential
        else:
            assert source.file is not None
            path = source.file.expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SecretError(f"cannot read {source.describe()}: {error.strerror}") from None
        if not value:
            raise SecretError(f"{source.describe()} is empty")
        return value

    def _run(self) -> tuple[str, float]:
        argv = self.source._argv()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SecretError(f"{self.source.describe()} failed: {error}") from None
        if done.returncode != 0:
            # Its standard error may say why (expired refresh token); its output is the secret.
            reason = done.stderr.decode("utf-8", "replace").strip()[-300:]
            raise SecretError(
                f"{self.source.describe()} exited with {done.returncode}: {reason or 'no reason'}"
            )
        return parse_token(done.stdout.decode("utf-8", "replace"), self.source.describe())


def parse_token(output: str, where: str) -> tuple[str, float]:
    """(token, seconds it is valid) from a token command's output; forever when not said."""
    text = output.strip()
    if text.startswith("{"):
        try:
            answer = json.loads(text)
            token = str(answer["access_token"])
        except (ValueError, KeyError, TypeError):
            raise SecretError(f"{where} printed JSON without an access_token") from None
        expires = answer.get("expires_in")
        lifetime = float(expires) if isinstance(expires, int | float | str) and expires else 0.0
        return token, lifetime if lifetime > 0 else float("inf")
    if not text or "\n" in text:
        raise SecretError(f"{where} must print one token (or OAuth JSON), got {len(text)} chars")
    return text, float("inf")
