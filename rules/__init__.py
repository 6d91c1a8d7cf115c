"""The rules engine: admins' routing rules files, loaded, compiled and applied (README.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_rules_path() -> Path:
    """The example desk's rules (rules/examples/desk.yaml): the demo runs them."""
    return Path(str(resources.files("rules") / "examples" / "desk.yaml"))
