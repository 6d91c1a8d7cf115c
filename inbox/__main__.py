"""`python -m inbox` is the `inbox` command."""

from inbox.cli import main

# The guard matters: normalizing workers are spawned, and spawning re-imports the main module.
if __name__ == "__main__":
    main()
