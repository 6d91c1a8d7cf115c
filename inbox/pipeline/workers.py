"""How a worker process of the pipeline behaves: it only computes (inbox/normalize/prepare.py),
holds no database connection, and ignores SIGINT and SIGTERM, so that the main process alone
decides when to stop. Nothing here imports the store: a worker starts quickly.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from inbox.log_setup import configure_logging

PARENT_CHECK_SECONDS = 0.5


def worker_init(parent: int, log_level: str, log_format: str) -> None:
    """`parent` comes from the parent itself: if it died while this worker was starting, the
    worker's own getppid() would already name init, and nothing would look wrong."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(log_level, "json" if log_format == "auto" else log_format)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot stop its workers, and the pool's pipes stay open in
    the resource tracker: a worker that sees itself orphaned leaves on its own."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)
