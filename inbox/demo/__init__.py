"""The bundled demo: a Maildir of multilingual support mail written for this project
(see README.md here), and a generator of varied mail for benchmarks and load tests."""

from __future__ import annotations

from pathlib import Path

DEMO_MAILDIR = Path(__file__).resolve().parent / "maildir"
