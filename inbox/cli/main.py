"""The `inbox` command: run the daemon, manage the store, import mail, look at conversations."""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path
from typing import Any

import click

from inbox.cli.context import (
    AppContext,
    fail_with_config_error,
    pass_app,
    rules_in_force,
    stderr_console,
)
from inbox.config import ConfigError


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (TOML). Default: $INBOX_CONFIG, else /etc/inbox/inbox.toml if present.",
)
@click.option("--database-url", help="Overrides database_url (also: INBOX_DATABASE_URL).")
@click.version_option(package_name="inbox")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, database_url: str | None) -> None:
    """Inbox: email, SMS and chat in one conversation store, routed by rules."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    ctx.obj = AppContext(config_path, overrides)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory: Path, force: bool) -> None:
    """Write a commented example config (inbox.toml) and rules file (rules.yaml)."""
    directory.mkdir(parents=True, exist_ok=True)
    templates = resources.files("inbox") / "templates"
    for name in ("inbox.toml", "rules.yaml"):
        target = directory / name
        if target.exists() and not force:
            raise click.ClickException(f"{target} exists (use --force to overwrite)")
        target.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        click.echo(f"wrote {target}")
    click.echo(
        f"next: edit {directory / 'inbox.toml'}, then: inbox --config "
        f"{directory / 'inbox.toml'} run"
    )


@main.command()
@click.option("--once", is_flag=True, help="Poll every connector once, then exit.")
@click.option(
    "--demo",
    is_flag=True,
    help="Ingest the bundled multilingual demo Maildir instead of configured sources.",
)
@pass_app
def run(app: AppContext, once: bool, demo: bool) -> None:
    """Run the daemon in the foreground (systemd runs exactly this)."""
    from inbox.service.daemon import Daemon
    from inbox.service.plugins import build_connectors

    if demo:
        from inbox.demo import DEMO_MAILDIR

        app.overrides["connectors"] = [
            {"name": "demo", "type": "maildir", "path": str(DEMO_MAILDIR), "after_ingest": "leave"}
        ]
        if "rules_file" not in app.overrides:
            from rules import example_rules_path

            app.overrides["rules_file"] = str(example_rules_path())
    loaded = app.config()
    try:
        connectors = build_connectors(loaded)
        daemon = Daemon(loaded.settings, connectors, rules=rules_in_force(loaded.settings))
    except ConfigError as error:
        fail_with_config_error(error)
    daemon.install_signal_handlers()
    totals = daemon.run(once=once)
    if once:
        click.echo(
            f"stored {totals.stored} messages, {totals.duplicates} duplicate deliveries, "
            f"{totals.raw_only} kept raw only, into {daemon.url_for_humans()}",
            err=True,
        )
        if daemon.failed_connectors:
            failed = ", ".join(daemon.failed_connectors)
            raise click.ClickException(f"connectors failed (see the log above): {failed}")


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_app
def db_upgrade(app: AppContext, revision: str) -> None:
    """Apply the migrations (safe to repeat)."""
    from inbox.store.db import upgrade

    upgrade(app.config().settings.effective_database_url, revision)
    click.echo("database is at revision " + revision)


@db.command("current")
@pass_app
def db_current(app: AppContext) -> None:
    """Print the schema revision of the store."""
    from inbox.store.db import current_revision, make_engine

    engine = make_engine(app.config().settings.effective_database_url)
    click.echo(current_revision(engine) or "(empty: run `inbox db upgrade`)")


@main.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--connector",
    default="import",
    show_default=True,
    help="Name recorded as the source of these messages.",
)
@pass_app
def ingest(app: AppContext, path: Path, connector: str) -> None:
    """Import a Maildir, an mbox, a folder of .eml files, or one .eml file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from connectors.mail_files import open_source
    from inbox.pipeline.ingest import BatchResult, unrouted_pipeline

    settings = app.config().settings
    try:
        source = open_source(path)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    totals = BatchResult()
    with unrouted_pipeline(settings) as wired:
        wired.migrate()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=stderr_console(),
        ) as progress:
            task = progress.add_task(f"{source.kind} {path.name}", total=source.count)
            for batch, result in wired.pipeline.ingest_many(
                source.batches(connector, settings.ingest.batch_size)
            ):
                totals.add(result)
                progress.advance(task, len(batch.messages))
    click.echo(
        f"{source.count} messages: {totals.stored} stored, {totals.duplicates} duplicates, "
        f"{totals.already_stored} already stored, {totals.parse_errors} parsed with errors, "
        f"{totals.raw_only} kept raw only, {totals.crashed} crashed"
    )


@main.command()
@click.argument("connector_name", metavar="CONNECTOR")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="On a first sync, take only mail from this date on (overrides the config's `since`).",
)
@pass_app
def sync(app: AppContext, connector_name: str, since: Any) -> None:
    """Fetch everything new from one connector now, with progress, routed by the rules.

    The same work `inbox run` does for it, once: use it for the first sync of a big mailbox.
    Safe to interrupt and run again: it goes on from the last stored batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from connectors.base import Configured
    from inbox.pipeline.ingest import BatchResult, routed_pipeline
    from inbox.service.plugins import build_connectors
    from inbox.store.leases import Leases, one_off_holder

    loaded = app.config()
    settings = loaded.settings
    try:
        connectors = {c.name: c for c in build_connectors(loaded)}
    except ConfigError as error:
        fail_with_config_error(error)
    connector = connectors.get(connector_name)
    if connector is None:
        known = ", ".join(sorted(connectors)) or "none enabled"
        raise click.ClickException(f"no enabled connector named {connector_name!r} ({known})")
    if since is not None:
        if (
            not isinstance(connector, Configured)
            or "since" not in type(connector.config).model_fields
        ):
            raise click.ClickException(f"connector {connector_name!r} has no `since` option")
        connector.config = connector.config.model_copy(update={"since": since.date()})
    wired = routed_pipeline(settings, rules_in_force(settings))
    wired.migrate()
    pipeline = wired.pipeline
    # A daemon polling this connector would fetch alongside, and move the same mail.
    leases = Leases(
        wired.writers,
        seconds=settings.ingest.lease_seconds,
        holder=one_off_holder(settings.data_dir),
        takes_over=False,
    )
    totals = BatchResult()
    fetched = 0
    try:
        standby = leases.hold(connector_name)
        if standby is not None:
            raise click.ClickException(
                f"{connector_name} is polled by the daemon {standby.holder} (its lease runs "
                f"until {standby.until:%Y-%m-%d %H:%M:%S} UTC): stop it, or let it do the sync"
            )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
        ) as progress:
            task = progress.add_task(connector_name, total=None)
            batches = connector.fetch(pipeline.cursors(connector_name), settings.ingest.batch_size)
            for batch, result in pipeline.ingest_many(batches, fence=leases.fence):
                totals.add(result)
                connector.acknowledge(batch)
                fetched += len(batch.acknowledge) or len(batch.messages)
                total = fetched + batch.remaining if batch.remaining is not None else None
                progress.update(
                    task,
                    completed=fetched,
                    total=total,
                    description=f"{connector_name} {batch.cursor_scope}".strip(),
                )
    except click.ClickException:
        raise
    except Exception as error:
        raise click.ClickException(f"{connector_name}: {error} (run again to go on)") from None
    finally:
        connector.close()
        with contextlib.suppress(Exception):  # the store is away: the lease runs out
            leases.release([connector_name])
        wired.close()
    click.echo(
        f"{connector_name}: {fetched} fetched, {totals.stored} stored, {totals.duplicates} "
        f"duplicates, {totals.already_stored} already stored, {totals.raw_only} kept raw only"
    )


def _register_subcommands() -> None:
    from inbox.cli.conversations import conversations
    from inbox.cli.desk import desk
    from inbox.cli.outbox import outbox
    from inbox.cli.raw import raw
    from inbox.cli.reply import answers_group
    from inbox.cli.report import report
    from inbox.cli.rules import rules
    from inbox.cli.status import status

    main.add_command(conversations)
    main.add_command(raw)
    main.add_command(rules)
    main.add_command(outbox)
    main.add_command(status)
    main.add_command(answers_group)
    main.add_command(report)
    main.add_command(desk)


_register_subcommands()
