"""Every benchmark under bench/ runs, at a tiny size, and still checks what it measures.

The figures are not looked at (a benchmark prints them; no test times anything): what is
asserted is what each benchmark checks of its own run, that every message reached the store,
each ping or SMS exactly once, the fixtures read right, so that a benchmark broken by a change
elsewhere (a renamed hook, a new argument) fails here instead of on the next person who
measures. A new benchmark must be added to SMOKE_RUNS: a test checks that none is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

#: Each benchmark's tiny run: its arguments, and lines its output must hold.
SMOKE_RUNS: dict[str, tuple[list[str], list[str]]] = {
    "corpus_check.py": (
        ["--fixtures"],
        ["cjk-raw-headers", "charset-aliases", "broken-header-block"],
    ),
    "imap.py": (
        ["--messages", "40", "--batch-size", "20"],
        ["(a) bare imapclient download", "(b) full sync", "the store holds 40 messages (as "],
    ),
    "ingest.py": (
        ["--messages", "40", "--batch-size", "20", "--workers", "1", "--postgres", POSTGRES_URL],
        ["pipeline into SQLite, one process", "pipeline into PostgreSQL", "store holds all"],
    ),
    "language.py": (
        ["--per-cell", "20"],
        ["CLD2 first, then lingua (ours)", "as well as lingua alone on every kind of text"],
    ),
    "notify.py": (
        ["--assignments", "20", "--agents", "3"],
        ["exactly once: yes"],
    ),
    "replies.py": (
        ["--replies", "30"],
        ["30 replies, 30 delivered", "exactly once: yes"],
    ),
    "rules.py": (
        [
            *("--rules", "20", "--messages", "60"),
            *("--scaling-messages", "20", "--scaling-sizes", "10,30"),
        ],
        ["speed-up", "scaling:"],
    ),
    "rules_instructions.py": (
        ["--rules", "20", "--warm", "20", "--counted", "5"],
        ["20 rules: ", "instructions a message"],
    ),
    "sla.py": (
        [
            *("--conversations", "300", "--due", "20", "--window", "2"),
            *("--burst", "50", "--interval", "0.5", "--postgres", POSTGRES_URL),
        ],
        [
            "SQLite: idle sweep over 600 timers",
            "20 of 20 fired, exactly once: yes",
            "PostgreSQL: burst of 50 due at once",
        ],
    ),
    "web.py": (
        ["--conversations", "300", "--requests", "2", "--postgres", POSTGRES_URL],
        ["PostgreSQL: 300 conversations written", "queue pages over 300 conversations, all:"],
    ),
    "sms.py": (
        ["--messages", "30", "--duplicates", "5", "--clients", "2"],
        ["stored 30 of 30: each once"],
    ),
}

#: Modules of bench/ that are not benchmarks.
HELPERS = {"_checkout.py", "_figures.py", "_stores.py"}


def run_benchmark(script: str, arguments: list[str], timeout: float = 240) -> str:
    """Runs bench/SCRIPT as a person would, in its own process group (it may start Dovecot,
    the daemon, worker processes): on a timeout the whole group is ended, nothing is left."""
    process = subprocess.Popen(
        [sys.executable, str(BENCH / script), *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"bench/{script} ran over {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, f"bench/{script} exited {process.returncode}:\n{output[-3000:]}"
    return output


def test_every_benchmark_has_a_smoke_run() -> None:
    benchmarks = {path.name for path in BENCH.glob("*.py")} - HELPERS
    assert benchmarks == set(SMOKE_RUNS)


@pytest.mark.parametrize("script", sorted(SMOKE_RUNS))
def test_benchmark_runs_at_a_tiny_size(script: str) -> None:
    arguments, expected = SMOKE_RUNS[script]
    output = run_benchmark(script, arguments)
    missing = [line for line in expected if line not in output]
    assert not missing, f"bench/{script} printed none of {missing}:\n{output[-3000:]}"


def write_eml(folder: Path, name: str, payload: bytes) -> None:
    (folder / name).write_bytes(payload)


def test_corpus_check_counts_a_folder_of_mail(tmp_path: Path) -> None:
    """The folder mode, on mail written here: a clean one, a mislabelled one, a truncated
    multipart, and the same bytes twice (one external id: stored once, not a loss)."""
    clean = (
        b"From: Aino <aino@example.fi>\r\nTo: tuki@example.com\r\nSubject: Tilaus\r\n"
        b"Message-ID: <a1@example.fi>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hei, tilaukseni ei ole saapunut. Voitteko tarkistaa?\r\n"
    )
    mislabelled = (
        b"From: Mari <mari@example.ee>\r\nTo: tugi@example.com\r\nSubject: Arve\r\n"
        b"Message-ID: <b2@example.ee>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        + "Tere, mul on küsimus arve kohta, palun vaadake üle.\r\n".encode()
    )
    truncated = (
        b"From: Nikos <nikos@example.gr>\r\nSubject: =?iso-8859-7?q?=D3=F0=E1=F3=EC=DD=ED=EF?=\r\n"
        b"Message-ID: <c3@example.gr>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="cut"\r\n\r\n--cut\r\n'
        b"Content-Type: text/plain; charset=iso-8859-7\r\n\r\n"
        + "Η παραγγελία μου".encode("iso-8859-7")
    )
    write_eml(tmp_path, "1.eml", clean)
    write_eml(tmp_path, "2.eml", mislabelled)
    write_eml(tmp_path, "3.eml", truncated)
    write_eml(tmp_path, "4.eml", clean)

    output = run_benchmark("corpus_check.py", [str(tmp_path), "--show-errors"])

    lines = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in output.splitlines())
        if value
    )
    assert lines["files"] == "4"
    assert lines["stored as messages"] == "3"
    assert lines["already stored"] == "1"
    assert lines["crashed"] == "0"
    assert lines["text with U+FFFD"] == "0"
    assert "OK: every message stored, none crashed" in output
