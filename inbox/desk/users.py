"""Who may use the web desk: the users file (`name:role:argon2-hash`, one a line), as
htpasswd keeps users, so an operator can read it, diff it and deploy it with the rest of the
configuration. Only hashes are kept; `inbox desk passwd` writes them.

The file is read again whenever it changes, so adding a user or changing a password needs no
restart, and a changed password ends that user's sessions (a session carries a fingerprint of
the hash it was opened with)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = structlog.get_logger(__name__)

ROLES = ("agent", "admin")
NAME = re.compile(r"^[^\s:]{1,100}$")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that a login takes as long either way."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = ""

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def fingerprint(self) -> str:
        """Changes with the password: sessions opened before a change no longer count."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


class UsersFileError(ValueError):
    pass


def parse_users(text: str, where: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, password_hash = rest.partition(":")
        if not NAME.match(name) or role not in ROLES or not password_hash.startswith("$argon2"):
            raise UsersFileError(
                f"{where}, line {number}: expected name:role:argon2-hash with role "
                f"{' or '.join(ROLES)} (write it with `inbox desk passwd`)"
            )
        users[name] = User(name, role, password_hash)
    return users


class Users:
    """The users file, read again when it changes. A file that cannot be read or parsed keeps
    the users read before (logged once), as a broken rules file keeps the rules in force."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()
        self.problem = ""

    def all(self) -> dict[str, User]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._users, self.problem = None, {}, ""
                return {}
            except OSError as error:
                return self._keep(f"cannot read {self.path}: {error.strerror}")
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._users = parse_users(self.path.read_text(encoding="utf-8"), str(self.path))
                    self.problem = ""
                except (OSError, UnicodeDecodeError, UsersFileError) as error:
                    return self._keep(str(error))
            return self._users

    def _keep(self, problem: str) -> dict[str, User]:
        if problem != self.problem:
            log.error("desk_users_unreadable", problem=problem, kept=len(self._users))
        self.problem = problem
        return self._users

    def get(self, name: str) -> User | None:
        return self.all().get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user whose password this is, else None (after the same work either way)."""
        user = self.get(name)
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def set_password(path: Path, name: str, role: str, password: str) -> bool:
    """Add the user or replace their line; True when they were new. Written to a temporary file
    and renamed, mode 0600, so that a daemon reading it never sees half a file."""
    if not NAME.match(name):
        raise UsersFileError(f"{name!r}: a user name has no spaces or colons")
    if role not in ROLES:
        raise UsersFileError(f"role {role!r}: give {' or '.join(ROLES)}")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    parse_users(text, str(path))  # refuse to rewrite a file we would garble
    lines = [line for line in text.splitlines() if line.partition(":")[0] != name]
    new = len(lines) == len(text.splitlines())
    lines.append(f"{name}:{role}:{hash_password(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".desk-users.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return new


def remove_user(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.partition(":")[0] != name]
    if len(lines) == len(text.splitlines()):
        return False
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return True
