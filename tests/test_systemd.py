"""The unit file as systemd reads it, and the daemon speaking the sd_notify protocol to a
socket that stands in for systemd's (systemd itself is not PID 1 here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inbox.demo.generate import write_maildir
from tests.processes import inbox_command
from tests.test_daemon import write_config

UNIT = Path(__file__).parent.parent / "systemd" / "inbox.service"
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze is not installed (CI installs systemd)",
)


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's inbox: verify checks that the
    program exists and is executable."""
    inbox = Path(sys.executable).parent / "inbox"
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace("ExecStart=/opt/inbox/venv/bin/inbox run", f"ExecStart={inbox} run")
    unit = tmp_path / "inbox.service"
    unit.write_text(text, encoding="utf-8")
    return unit


@needs_systemd_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_systemd_analyze
def test_the_units_exposure_score_is_below_2(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(local_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for inbox\.service: ([0-9.]+) (\w+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr
    assert float(found.group(1)) < 2.0
    assert found.group(2) == "OK"


def receive(listener: socket.socket, wanted: str, timeout: float = 60.0) -> list[str]:
    """Datagrams until one holds the line `wanted`; all of them, oldest first."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen.append(listener.recv(4096).decode())
        except TimeoutError:
            break
        if wanted in seen[-1].splitlines():
            return seen
    raise AssertionError(f"no {wanted} from the daemon; it sent {seen}")


def test_the_daemon_says_ready_feeds_the_watchdog_reloads_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "maildir"
    write_maildir(maildir, 50, seed=3)
    config = write_config(tmp_path, maildir, f"sqlite:///{tmp_path / 'inbox.db'}")
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    environment = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    daemon = subprocess.Popen(
        inbox_command(config, "run"),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        started = receive(listener, "READY=1")
        assert any(line.startswith("STATUS=1 connectors") for line in started[-1].splitlines())
        # Half the watchdog interval: two within about a second and a half.
        began = time.monotonic()
        receive(listener, "WATCHDOG=1", timeout=5)
        receive(listener, "WATCHDOG=1", timeout=5)
        assert time.monotonic() - began < 3.0
        daemon.send_signal(signal.SIGHUP)
        reloaded = receive(listener, "READY=1", timeout=10)
        assert any("RELOADING=1" in datagram.splitlines() for datagram in reloaded)
        daemon.send_signal(signal.SIGTERM)
        stopping = receive(listener, "STOPPING=1", timeout=30)
        assert "STATUS=stopping (SIGTERM)" in stopping[-1].splitlines()
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=30)
        listener.close()
        assert daemon.stderr is not None
        daemon.stderr.close()


def test_without_notify_socket_nothing_is_sent(tmp_path: Path) -> None:
    from inbox.service.systemd_notify import SystemdNotifier

    quiet = SystemdNotifier({})
    assert not quiet.enabled
    assert quiet.notify("READY=1") is False
    elsewhere = SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert elsewhere.watchdog_seconds == 0  # the watchdog is another process's
