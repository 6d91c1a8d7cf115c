"""Imported first by every benchmark, so that `import rules` finds the package, not
bench/rules.py: a script's own folder comes first on sys.path, and the rules benchmark has the
name of the package it measures. The checkout goes first instead, and bench/ last (not away:
worker processes started with spawn get this sys.path and import this module again)."""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
sys.path[:] = [
    str(_BENCH.parent),
    *(entry for entry in sys.path if Path(entry or ".").resolve() not in (_BENCH, _BENCH.parent)),
    str(_BENCH),
]
