"""`python -m inbox` is the `inbox` command."""

from inbox.cli import main

main()
