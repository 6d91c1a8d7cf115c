"""The `inbox` command: one module per command group, what they share in context.py."""

from inbox.cli.main import main

__all__ = ["main"]
