"""What every command of `inbox` shares: the config, loaded once on first use, and the
exits a person reads when the config or the rules cannot be used. Its own module, so that
the command groups (inbox/cli/*.py) and the main group import it, not each other."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import structlog

from inbox.config import ConfigError, LoadedConfig, load_config
from inbox.log_setup import configure_logging

if TYPE_CHECKING:
    from inbox.config import Settings
    from rules.holder import RulesInForce

log = structlog.get_logger(__name__)


class AppContext:
    """What every subcommand needs: the config path and overrides, loaded on first use."""

    def __init__(self, config_path: Path | None, overrides: dict[str, Any]) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self._loaded: LoadedConfig | None = None

    def config(self) -> LoadedConfig:
        if self._loaded is None:
            try:
                self._loaded = load_config(self.config_path, overrides=self.overrides)
            except ConfigError as error:
                fail_with_config_error(error)
            logging = self._loaded.settings.logging
            configure_logging(logging.level, logging.format)
        return self._loaded

    def existing_store_url(self) -> str:
        """The store's URL, for commands that read a store someone else (the daemon) made.
        A SQLite file that is not there is an error here: opening it would create an empty
        one, and a person whose config lacks the daemon's data_dir would then be told to
        migrate a store nobody uses."""
        from sqlalchemy.engine import make_url

        url = self.config().settings.effective_database_url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database)
            if not path.exists():
                raise click.ClickException(
                    f"no store at {path}: is data_dir (or database_url) in "
                    f"{self.config_path or 'the config'} the daemon's? Under systemd it is "
                    '/var/lib/inbox: data_dir = "/var/lib/inbox"'
                )
        return url


def fail_with_config_error(error: ConfigError) -> NoReturn:
    count = len(error.problems)
    click.echo(
        f"inbox: the configuration cannot be used ({count} problem{'s' if count != 1 else ''}):",
        err=True,
    )
    for problem in error.problems:
        click.echo(f"  {error.source}: {problem}", err=True)
    sys.exit(2)


pass_app = click.make_pass_decorator(AppContext)


def rules_in_force(settings: Settings) -> RulesInForce | None:
    """The configured rules, loaded; exits 2 with every problem if the file cannot be used
    (at start there are no rules in force to keep, and running unrouted would hide it)."""
    from rules.errors import RulesInvalid
    from rules.holder import RulesInForce

    if settings.rules_file is None:
        log.warning("no_rules_file_configured")
        return None
    try:
        return RulesInForce(Path(settings.rules_file))
    except RulesInvalid as invalid:
        click.echo(f"inbox: the rules cannot be used ({invalid}):", err=True)
        for problem in invalid.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def person_name(given: str | None) -> str:
    """Who acts, for the history (`--by`, else the login name)."""
    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # neither $USER nor a passwd entry, as in a bare container
            raise click.UsageError("cannot tell who you are: give --by NAME") from None
    name = given.strip()
    if not name:
        raise click.UsageError("--by needs a name")
    return name
