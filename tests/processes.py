"""Running `inbox` as a real process, and waiting for what it does."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from inbox.store.db import make_engine
from inbox.store.models import RawRecord


def inbox_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "inbox", "--config", str(config), *args]


def stored_raw(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(RawRecord)) or 0
    except Exception:
        return 0  # tables not created yet
    finally:
        engine.dispose()


def assert_no_process_tagged(tag: str) -> None:
    """The killed daemon's normalizing worker (which inherited the tag in its environment)
    must leave on its own, not linger."""
    marker = f"INBOX_TEST_RUN={tag}".encode()
    lingering: list[Path] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lingering = [p for p in Path("/proc").glob("[0-9]*") if marker in _reads(p / "environ")]
        if not lingering:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of the killed daemon still run: {lingering}")


def _reads(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = 10.0,
    state: Callable[[], object] | None = None,
) -> float:
    """Seconds until `condition()` held; fails after `timeout` saying what it waited for, and
    `state()` (what there is instead) when given."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            instead = f"; {state()}" if state is not None else ""
            raise AssertionError(f"waited {timeout} s for {what}{instead}")
        time.sleep(0.02)
    return time.monotonic() - started
