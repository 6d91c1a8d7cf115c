"""A real, throwaway Dovecot IMAP server for tests.

The IMAP connector has to be tested against a server that behaves like the ones it will meet:
real SELECT/UIDVALIDITY semantics, real STARTTLS and implicit TLS, real SASL XOAUTH2. A fake
written in Python would only repeat our own assumptions, so this module starts Debian's Dovecot
2.3 (package `dovecot-imapd`) in a private directory instead; the system service need not run.

Layout of one instance (nothing shared with the system service or with other instances):

    DIR/dovecot.conf        written at every start, from the options and the ports in use
    DIR/dovecot.log         everything Dovecot logs (`Dovecot.log_path`)
    DIR/run, DIR/state      private base_dir and state_dir, so instances run side by side
    DIR/users               passwd-file: support / secret
    DIR/tls/*.pem           test CA, server certificate and key, an unrelated CA (tls=True)
    DIR/mail/support        the user's Maildir++ root (`Dovecot.maildir`)

Only 127.0.0.1 is listened on. Dovecot runs in the foreground (`-F`) under a small supervisor
process (this file run as a script) that adopts and reaps every process Dovecot leaves behind,
so `stop` ends with no process and no zombie left, and the supervisor dies with the test process,
taking Dovecot with it. Stopping costs about one second: Dovecot's master always sleeps 1 s on
shutdown to let its children close their listeners (services_monitor_wait_and_kill).
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from imapclient import IMAPClient

HOST = "127.0.0.1"
USER = "support"
PASSWORD = "secret"
INSTALL_HINT = "run `apt-get install dovecot-imapd` (the packaged service need not run)"

# Maildir info letters Dovecot understands: Draft, Flagged, Passed, Replied, Seen, Trashed.
MAILDIR_FLAGS = frozenset("DFPRST")

# Dovecot's own state for one Maildir folder, and the mailbox list index (which caches
# UIDVALIDITY for STATUS): what `change_uidvalidity` throws away, as an index rebuild would.
_FOLDER_STATE = ("dovecot-uidlist", "dovecot.index", "dovecot.index.log", "dovecot.index.cache")
_LIST_STATE = ("dovecot.list.index", "dovecot.list.index.log")

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PARENT_ENV = "INBOX_TEST_DOVECOT_PARENT"


class DovecotError(RuntimeError):
    """Dovecot could not be started or stopped; the message carries the log tail."""


class DovecotNotInstalled(DovecotError):
    """The `dovecot` binary (or user) is missing. CI installs it: fixtures fail, not skip."""


def find_binary(name: str) -> str:
    """Where `name` is: Debian puts dovecot in /usr/sbin, which a non-root PATH may lack."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/usr/local/sbin:/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise DovecotNotInstalled(f"`{name}` is not installed: {INSTALL_HINT}")
    return found


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0 on 127.0.0.1).

    Someone may take it before Dovecot binds it; `Dovecot.start` then retries with new ports.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _greets(port: int, context: ssl.SSLContext | None = None) -> bool:
    """Whether an IMAP server on `port` sends its greeting (over TLS with `context`).

    A bare TCP connect is not enough to call Dovecot ready: it spawns an imap-login process
    that is still starting when the probe hangs up, and a master stopped at that moment waits
    five seconds for it. The greeting comes only once imap-login and auth are up.
    """
    try:
        with socket.create_connection((HOST, port), timeout=2) as raw:
            if context is None:
                return raw.makefile("rb").readline().startswith(b"* OK")
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                return tls.makefile("rb").readline().startswith(b"* OK")
    except OSError:  # refused, reset, timed out, or a TLS failure (SSLError is an OSError)
        return False


def _scratch() -> str | None:
    """Where to make a server's directory.

    /dev/shm (tmpfs) when there is one: writing and renaming 10,000 message files there takes a
    quarter of a second, on this machine's disk it took one to six seconds. INBOX_TEST_DOVECOT_DIR
    overrides it. Never pytest's tmp_path: its parents are mode 0700, and the mail processes run
    as the `dovecot` user, which must be able to reach the Maildir.
    """
    chosen = os.environ.get("INBOX_TEST_DOVECOT_DIR")
    if chosen:
        return chosen
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return None  # the platform's temporary directory


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc), so each can be ended by its own PID."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return found


def maildir_folder_name(folder: str) -> str:
    """The directory of an IMAP folder in Maildir++: "" for INBOX (the root), else `.Name`.

    Dovecot keeps non-ASCII names in modified UTF-7 on disk and uses "." as the hierarchy
    separator in this layout, so "Archive.2024" is a child of "Archive".
    """
    if folder.upper() == "INBOX":
        return ""
    if not folder or "/" in folder or folder.startswith(".") or folder.endswith("."):
        raise ValueError(f"not a Maildir++ folder name: {folder!r}")
    from imapclient.imap_utf7 import encode

    encoded: bytes = encode(folder)
    return "." + encoded.decode("ascii")


class _IntrospectionHandler(BaseHTTPRequestHandler):
    """RFC 7662 token introspection, as Dovecot's oauth2 passdb asks for it (mode `post`)."""

    server: _IntrospectionServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        user = self.server.owner._introspect(form.get("token", [""])[0])
        # An inactive token still names a user: Dovecot checks the username before `active`,
        # and a missing one is a temporary failure (NO [UNAVAILABLE]), not a refused login.
        answer: dict[str, object] = {"active": False, "username": USER}
        if user is not None:
            answer = {"active": True, "username": user, "scope": "mail", "token_type": "Bearer"}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: `Dovecot.introspected` records the requests instead."""


class _IntrospectionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: Dovecot) -> None:
        super().__init__((HOST, 0), _IntrospectionHandler)
        self.owner = owner


class Dovecot:
    """One Dovecot on 127.0.0.1 with user `support` / `secret`, its mail in a Maildir.

    Use it as a context manager, or call `start` and `close`. `stop` then `start` (or
    `restart`) keeps the directory, the mail, the tokens and the ports: a test can take the
    server away and bring it back where the client expects it.
    """

    host = HOST
    user = USER
    password = PASSWORD

    def __init__(
        self,
        directory: Path | None = None,
        *,
        tls: bool = False,
        oauth2: bool = False,
        capabilities: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self._owns_directory = directory is None
        #: What the server announces after login instead of its own list (Dovecot's
        #: `imap_capability`): an older server without MOVE or IDLE, for fallback tests.
        self.capabilities = capabilities
        self.directory = Path(
            directory or tempfile.mkdtemp(prefix="inbox-dovecot-", dir=_scratch())
        )
        self.directory.chmod(0o755)
        self.tls = tls
        self.oauth2 = oauth2
        self.start_timeout = start_timeout
        #: Both 0 until the first start picks them; kept from then on.
        self.port = 0
        self.tls_port = 0
        #: Bearer tokens the fake introspection endpoint calls active (for user `support`
        #: unless `grant_token` named another user).
        self.oauth_tokens: set[str] = set()
        #: Every token Dovecot asked the introspection endpoint about, in order.
        self.introspected: list[str] = []
        self._token_users: dict[str, str] = {}
        self._lock = threading.Lock()
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._http: _IntrospectionServer | None = None
        self._http_thread: threading.Thread | None = None
        self._last_name_time = (0, 0)
        self._name_counter = 0
        self._ca_file: Path | None = None
        self._wrong_ca_file: Path | None = None
        self._mail_ids = _mail_owner()
        self._prepare()

    # -- where things are ----------------------------------------------------------------

    @property
    def maildir(self) -> Path:
        """The Maildir++ root of user `support`: INBOX, with other folders as `.Name` in it."""
        return self.directory / "mail" / USER

    @property
    def log_path(self) -> Path:
        """Dovecot's log: print it when a test against this server fails."""
        return self.directory / "dovecot.log"

    @property
    def config_path(self) -> Path:
        return self.directory / "dovecot.conf"

    @property
    def ca_file(self) -> Path:
        """PEM of the test CA that signed the server's certificate (tls=True only)."""
        if self._ca_file is None:
            raise DovecotError("this Dovecot runs without TLS: use Dovecot(tls=True)")
        return self._ca_file

    @property
    def wrong_ca_file(self) -> Path:
        """PEM of an unrelated CA, to show that a certificate from an unknown CA is refused."""
        if self._wrong_ca_file is None:
            raise DovecotError("this Dovecot runs without TLS: use Dovecot(tls=True)")
        return self._wrong_ca_file

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    @property
    def introspection_url(self) -> str:
        """The fake OAuth2 introspection endpoint (oauth2=True, while running)."""
        if self._http is None:
            raise DovecotError("the introspection server runs only with oauth2=True, when started")
        return f"http://{HOST}:{self._http.server_address[1]}/introspect"

    @property
    def introspection_count(self) -> int:
        """How many times Dovecot asked the fake OAuth2 server about a token."""
        with self._lock:
            return len(self.introspected)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def master_pid(self) -> int | None:
        """The PID in Dovecot's own master.pid, if that process is really ours.

        A stale file must never make us signal an unrelated process that reused the number, so
        the PID counts only while its parent is our supervisor.
        """
        if self._supervisor is None:
            return None
        try:
            pid = int((self.directory / "run" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _parent_of(pid) == self._supervisor.pid else None

    def pids(self) -> list[int]:
        """Dovecot's master and all its children (empty when stopped)."""
        if self._supervisor is None:
            return []
        return descendants(self._supervisor.pid)

    # -- OAuth2 tokens -----------------------------------------------------------------------

    def grant_token(self, token: str, user: str = USER) -> None:
        """Make `token` a valid bearer token for `user`, from the next login on."""
        with self._lock:
            self.oauth_tokens.add(token)
            self._token_users[token] = user

    def revoke_token(self, token: str) -> None:
        """Make `token` invalid. Dovecot caches nothing, so the very next login is refused."""
        with self._lock:
            self.oauth_tokens.discard(token)
            self._token_users.pop(token, None)

    def _introspect(self, token: str) -> str | None:
        """The user `token` is active for, or None; records the request."""
        with self._lock:
            self.introspected.append(token)
            if token not in self.oauth_tokens:
                return None
            return self._token_users.get(token, USER)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start Dovecot and return once every listener accepts connections.

        The first start picks free ports, and picks again (up to three times) if one was taken
        meanwhile. Later starts reuse them. A failed start raises DovecotError with the log tail.
        """
        if self.running:
            return self
        binary = find_binary("dovecot")
        fresh_ports = self.port == 0
        attempt = 0
        while True:
            attempt += 1
            if fresh_ports:
                self.port = free_port()
                self.tls_port = free_port() if self.tls else 0
            try:
                self._start_once(binary)
            except DovecotError as error:
                if not fresh_ports or attempt == 3 or "Address already in use" not in str(error):
                    raise
            else:
                return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot as `systemctl stop dovecot` does, and wait until all of it is gone.

        SIGTERM to the PID in Dovecot's own master.pid (what `doveadm stop` does); once the
        master is gone, SIGTERM to the processes it left (IMAP sessions still serving their
        clients, stats, log), as systemd does to the rest of the service's cgroup; SIGKILL to
        whatever is left after `timeout`. Returns once every Dovecot process is gone and the
        ports are closed. Signals only PIDs below our own supervisor, never by name: other
        Dovecots (the system's, other tests') are left alone.
        """
        supervisor = self._supervisor
        try:
            if supervisor is not None and supervisor.poll() is None:
                deadline = time.monotonic() + timeout
                master = self.master_pid()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(master if master is not None else supervisor.pid, signal.SIGTERM)
                while (
                    master is not None
                    and _parent_of(master) == supervisor.pid
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.02)
                for pid in descendants(supervisor.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                try:
                    supervisor.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    for pid in [*descendants(supervisor.pid), supervisor.pid]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    supervisor.wait(timeout)
            self._wait_ports_closed(timeout)
        finally:
            self._supervisor = None
            self._stop_introspection()

    def restart(self) -> Self:
        """Stop, then start again on the same ports with the same mail."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and delete the directory if this object made it."""
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- mail on disk ------------------------------------------------------------------------

    def folder_path(self, folder: str = "INBOX") -> Path:
        """The Maildir directory holding `folder`."""
        return self.maildir / maildir_folder_name(folder)

    def create_folder(self, name: str) -> Path:
        """Create a Maildir++ folder on disk, owned by the mail user; Dovecot need not run
        (a running one notices it at the next LIST)."""
        path = self.folder_path(name)
        made = [p for p in (path, path / "cur", path / "new", path / "tmp") if not p.exists()]
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if path != self.maildir and not (path / "maildirfolder").exists():
            (path / "maildirfolder").touch()
            made.append(path / "maildirfolder")
        if os.getuid() == 0:
            for item in made:
                os.chown(item, *self._mail_ids)
        return path

    def deliver(
        self,
        raw: bytes,
        folder: str = "INBOX",
        flags: str = "",
        *,
        internal_date: datetime | None = None,
    ) -> None:
        """Drop one message into the Maildir as an MTA does: write it in tmp/, rename into new/.

        `flags` are Maildir info letters (S seen, F flagged, R replied, D draft, T trashed,
        P passed); a message with flags goes to cur/, since new/ cannot carry any. Messages get
        UIDs in delivery order. `internal_date` sets the file's mtime, which is INTERNALDATE.
        """
        self.deliver_many([raw], folder, flags, internal_date=internal_date)

    def deliver_many(
        self,
        messages: Iterable[bytes],
        folder: str = "INBOX",
        flags: str = "",
        *,
        internal_date: datetime | None = None,
    ) -> int:
        """Deliver many messages fast (10,000 in about 0.3 s on tmpfs): plain file writes, each
        chowned on its open descriptor and renamed; no IMAP. Returns how many were written."""
        unknown = set(flags) - MAILDIR_FLAGS
        if unknown:
            raise ValueError(f"not Maildir flags: {''.join(sorted(unknown))!r}")
        path = self.folder_path(folder)
        if not (path / "new").is_dir():
            self.create_folder(folder)
        info = ":2," + "".join(sorted(set(flags))) if flags else ""
        # Plain strings, not Path objects: pathlib's overhead is a third of the time here.
        temporary_dir = f"{path}/tmp/"
        target_dir = f"{path}/{'cur' if flags else 'new'}/"
        uid, gid = self._mail_ids
        chown = os.getuid() == 0
        stamp = internal_date.timestamp() if internal_date is not None else None
        count = 0
        for raw in messages:
            base = self._unique_name(len(raw))
            temporary = temporary_dir + base
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                if chown:
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
            if stamp is not None:
                os.utime(temporary, (stamp, stamp))
            os.rename(temporary, target_dir + base + info)
            count += 1
        return count

    def _unique_name(self, size: int) -> str:
        """`sec.M<usec>P<pid>Q<n>.inbox-tests,S=<size>`, strictly increasing in (sec, usec):
        Dovecot numbers new files in that order, so UIDs follow delivery order even for
        thousands of files written in the same microsecond."""
        seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if (seconds, micros) <= self._last_name_time:
            seconds, micros = self._last_name_time
            micros += 1
            if micros == 1_000_000:
                seconds, micros = seconds + 1, 0
        self._last_name_time = (seconds, micros)
        self._name_counter += 1
        return f"{seconds}.M{micros}P{os.getpid()}Q{self._name_counter}.inbox-tests,S={size}"

    # -- IMAP --------------------------------------------------------------------------------

    def ssl_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        """A verifying client context that trusts only `ca_file` (default: the test CA)."""
        return ssl.create_default_context(cafile=str(ca_file or self.ca_file))

    def connect(
        self,
        *,
        tls: bool = False,
        starttls: bool = False,
        login: bool = True,
        ca_file: Path | None = None,
        timeout: float = 10.0,
    ) -> IMAPClient:
        """An `IMAPClient` to this server, logged in as support/secret unless `login=False`.

        `tls` uses the implicit-TLS port, `starttls` upgrades the plain one; both trust
        `ca_file` (default: the test CA).
        """
        from imapclient import IMAPClient

        context = self.ssl_context(ca_file) if tls or starttls else None
        client = IMAPClient(
            HOST, self.tls_port if tls else self.port, ssl=tls, ssl_context=context, timeout=timeout
        )
        try:
            if starttls:
                client.starttls(context)
            if login:
                client.login(USER, PASSWORD)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    @contextlib.contextmanager
    def session(
        self, *, tls: bool = False, starttls: bool = False, login: bool = True
    ) -> Iterator[IMAPClient]:
        """`connect(...)`, logged out (or at least closed) at the end of the block."""
        client = self.connect(tls=tls, starttls=starttls, login=login)
        try:
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                with contextlib.suppress(Exception):
                    client.shutdown()

    def append(self, raw: bytes, folder: str = "INBOX", flags: Iterable[str] = ()) -> int | None:
        """APPEND through IMAP, as a mail client would; returns the new UID (UIDPLUS)."""
        with self.session() as client:
            response = client.append(folder, raw, flags=tuple(flags))
        text = response.decode("ascii", "replace") if isinstance(response, bytes) else ""
        if "[APPENDUID " not in text:
            return None
        return int(text.split("[APPENDUID ", 1)[1].split()[1].rstrip("]"))

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """UIDVALIDITY of `folder`, as an IMAP client sees it (STATUS)."""
        with self.session() as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
        return int(status[b"UIDVALIDITY"])

    def change_uidvalidity(self, folder: str = "INBOX") -> int:
        """Give `folder` a new UIDVALIDITY while it keeps its messages, as an index rebuild does.

        Stops Dovecot, deletes the folder's dovecot-uidlist and index files and the mailbox list
        index (which caches UIDVALIDITY for STATUS), and starts it again. Dovecot rescans cur/
        and new/, numbers the messages again from UID 1, and takes the new UIDVALIDITY from the
        Maildir's dovecot-uidvalidity counter, which is above every value it handed out before:
        no waiting for the clock. Returns the new value; raises if it did not change.
        """
        old = self.uidvalidity(folder)
        self.stop()
        path = self.folder_path(folder)
        for name in _FOLDER_STATE:
            for stale in path.glob(name + "*"):
                stale.unlink()
        for name in _LIST_STATE:
            for stale in self.maildir.glob(name + "*"):
                stale.unlink()
        self.start()
        new = self.uidvalidity(folder)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {folder} stayed {old} after dropping its index")
        return new

    # -- internals ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        for sub in ("run", "state"):
            (self.directory / sub).mkdir(exist_ok=True)
        mail = self.directory / "mail"
        mail.mkdir(exist_ok=True)
        if os.getuid() == 0:
            os.chown(mail, *self._mail_ids)
        self.create_folder("INBOX")
        (self.directory / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        if self.tls:
            self._make_certificates()

    def _make_certificates(self) -> None:
        """A test CA, a server certificate for 127.0.0.1 and localhost, and an unrelated CA.

        Dovecot reads `ssl_cert = <file` in its config process, which runs as the same user as
        the master, so the files' default modes are enough.
        """
        import trustme

        folder = self.directory / "tls"
        folder.mkdir(exist_ok=True)
        authority = trustme.CA(organization_name="Inbox tests")
        server = authority.issue_cert(HOST, "localhost")
        authority.cert_pem.write_to_path(str(folder / "ca.pem"))
        server.private_key_pem.write_to_path(str(folder / "server.key"))
        (folder / "server.pem").write_bytes(
            b"".join(blob.bytes() for blob in server.cert_chain_pems)
        )
        stranger = trustme.CA(organization_name="Somebody else")
        stranger.cert_pem.write_to_path(str(folder / "wrong-ca.pem"))
        self._ca_file = folder / "ca.pem"
        self._wrong_ca_file = folder / "wrong-ca.pem"

    def _config(self) -> str:
        directory = self.directory
        mail_uid, mail_gid = self._mail_ids
        if os.getuid() == 0:
            internal_user, login_user, internal_group = "dovecot", "dovenull", "dovecot"
        else:
            # Unprivileged (a CI runner without root): every process and the mail are ours.
            internal_user = login_user = pwd.getpwuid(os.getuid()).pw_name
            internal_group = grp.getgrgid(os.getgid()).gr_name
        mechanisms = "plain login" + (" xoauth2 oauthbearer" if self.oauth2 else "")
        if self.tls:
            # `yes`, not `required`: plain LOGIN and STARTTLS on the plain port must work too.
            tls = f"ssl = yes\nssl_cert = <{directory}/tls/server.pem\n"
            tls += f"ssl_key = <{directory}/tls/server.key\n"
            imaps = f"address = {HOST}\n    port = {self.tls_port}\n    ssl = yes"
        else:
            tls, imaps = "ssl = no\n", "port = 0"
        capabilities = ""
        if self.capabilities is not None:
            capabilities = f"  imap_capability = {self.capabilities}\n"
        oauth_passdb = ""
        if self.oauth2:
            oauth_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {directory}/dovecot-oauth2.conf.ext\n}}\n"
            )
        return f"""# Written by tests/dovecot.py for one test server; see its docstring.
protocols = imap
listen = {HOST}
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {self.log_path}
{tls}disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# No auth cache (the default, stated because a revoked token must be refused at the very next
# login), no delay before answering a failed login, and failures logged.
auth_cache_size = 0
auth_failure_delay = 0
auth_verbose = yes
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{directory}/mail/%u
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {directory}/users
}}
{oauth_passdb}userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={directory}/mail/%u
}}
service imap-login {{
  chroot =
  # One long-lived login process, started with the master ("high-performance mode"), instead
  # of one per connection: a master stopped while a fresh imap-login is still starting (say,
  # right after a client's bare TCP connect) waits 5 s for it; this way it never has to.
  service_count = 0
  process_min_avail = 1
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
service anvil {{
  chroot =
  # No growing penalty for repeated failed logins from 127.0.0.1 either.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
{capabilities}}}
"""

    def _oauth2_config(self) -> str:
        """Dovecot 2.3's oauth2 passdb. Without tokeninfo_url every login is exactly one
        RFC 7662 introspection POST; the passdb keeps no token cache of its own (only
        auth_cache would cache, and it is off)."""
        return f"""introspection_url = {self.introspection_url}
introspection_mode = post
force_introspection = yes
username_attribute = username
username_format = %u
active_attribute = active
active_value = true
timeout_msecs = 5000
"""

    def _start_introspection(self) -> None:
        if self._http is not None:
            return
        self._http = _IntrospectionServer(self)
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="dovecot-oauth2-introspection",
            daemon=True,
        )
        self._http_thread.start()

    def _stop_introspection(self) -> None:
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        if self._http_thread is not None:
            self._http_thread.join(5)
        self._http = None
        self._http_thread = None

    def _start_once(self, binary: str) -> None:
        if self.oauth2:
            self._start_introspection()
            (self.directory / "dovecot-oauth2.conf.ext").write_text(self._oauth2_config())
        self.config_path.write_text(self._config())
        (self.directory / "run" / "master.pid").unlink(missing_ok=True)
        stderr_path = self.directory / "dovecot.stderr"
        command = [
            sys.executable,
            __file__,
            "--supervise",
            binary,
            "-F",
            "-c",
            str(self.config_path),
        ]
        with open(stderr_path, "wb") as stderr:
            self._supervisor = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Not in the terminal's process group: Ctrl-C reaches pytest, whose fixtures stop
                # Dovecot; if pytest dies, the supervisor's parent-death signal does.
                start_new_session=True,
                env={**os.environ, _PARENT_ENV: str(os.getpid())},
            )
        ports = [self.port, *([self.tls_port] if self.tls else [])]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self._supervisor.poll() is None:
            if (
                self.master_pid() is not None
                and _greets(self.port)
                and (not self.tls or _greets(self.tls_port, self.ssl_context()))
            ):
                return
            time.sleep(0.02)
        exited = self._supervisor.poll() is not None
        self.stop()
        what = "exited" if exited else f"did not listen within {self.start_timeout} s"
        raise DovecotError(
            f"Dovecot {what} (ports {ports}, config {self.config_path}).\n"
            f"--- {self.log_path} ---\n{_tail(self.log_path)}\n"
            f"--- {stderr_path} ---\n{_tail(stderr_path)}"
        )

    def _wait_ports_closed(self, timeout: float) -> None:
        ports = [p for p in (self.port, self.tls_port) if p]
        deadline = time.monotonic() + timeout
        while any(port_open(p) for p in ports):
            if time.monotonic() > deadline:
                raise DovecotError(f"ports {ports} still open after stopping Dovecot")
            time.sleep(0.02)


def _mail_owner() -> tuple[int, int]:
    """Who owns the mail. Dovecot refuses to serve mail as root, so as root it is the `dovecot`
    system user; run unprivileged, everything runs as the current user."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("dovecot")
    except KeyError:
        raise DovecotNotInstalled(f"there is no `dovecot` user: {INSTALL_HINT}") from None
    return entry.pw_uid, entry.pw_gid


def _supervise(argv: list[str]) -> int:
    """Run Dovecot's master in the foreground and reap every process it leaves behind.

    Dovecot's master exits before some of its children (stats, log). Orphans go to PID 1, which
    in some containers never reaps them, leaving zombies. As a child subreaper this process
    adopts them instead and exits only once all are gone, so waiting for it means "every
    Dovecot process is gone". PR_SET_PDEATHSIG makes the chain die with the test process: the
    kernel sends us SIGTERM (passed on to the master), and the master SIGTERM if we die.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != os.environ.get(_PARENT_ENV):
        return 1  # the test process died before the parent-death signal was armed
    master = os.fork()
    if master == 0:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        os.execv(argv[0], argv)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code
        if pid == master:
            code = os.waitstatus_to_exitcode(status)


if __name__ == "__main__" and sys.argv[1:2] == ["--supervise"]:
    sys.exit(_supervise(sys.argv[2:]))
