"""`inbox status`: the running daemon's /healthz, for a person; the store's view without it."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from inbox.cli.context import AppContext, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The daemon's /healthz as it is.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """How the daemon is doing: connectors, store, outbox, rules. Exit 0 when all is well, 1
    when something is degraded or the daemon does not answer."""
    settings = app.config().settings
    host, port = settings.web.host_port
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as error:  # 503: it answers, and says it is failing
        body = json.loads(error.read() or b"{}")
    except (OSError, ValueError) as error:
        _offline(app, url, error)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        _print(body)
    sys.exit(0 if body.get("status") == "ok" else 1)


def _print(body: dict[str, Any]) -> None:
    click.echo(f"inbox: {body.get('status')}, up {_ago(body.get('started_seconds_ago'))}")
    store = body.get("store") or {}
    click.echo(f"store: {'ok' if store.get('ok') else 'NOT REACHABLE: ' + store.get('error', '')}")
    for connector in body.get("connectors") or []:
        last = connector.get("last_success_seconds_ago")
        line = (
            f"  {connector['name']:<16} {connector['channel']:<6} {connector['state']:<9}"
            f" stored {connector['stored']}, last good poll "
            + (f"{_ago(last)} ago" if last is not None else "not yet")
        )
        click.echo(line)
        if connector.get("lease_held_by"):
            click.echo(f"      polled by the daemon {connector['lease_held_by']}")
        for failure in connector.get("failing") or []:
            click.echo(f"      failing: {failure}")
        spool = connector.get("spool")
        if spool and spool.get("waiting"):
            click.echo(f"      {spool['waiting']} webhook deliveries waiting in the spool")
    outbox = body.get("outbox") or {}
    click.echo(
        f"outbox: {outbox.get('pending', 0)} pending, {outbox.get('sending', 0)} sending, "
        f"{outbox.get('dead', 0)} dead, {outbox.get('sent', 0)} sent; oldest waiting "
        f"{_ago(outbox.get('oldest_pending_seconds'))}"
    )
    rules = body.get("rules")
    if rules:
        click.echo(
            f"rules: version {rules['version']}, {rules['reloads']} reloads, "
            f"{rules['failed_reloads']} refused"
        )


def _offline(app: AppContext, url: str, error: Exception) -> None:
    """No daemon answering: what the store alone can say."""
    from inbox.service.health import store_view
    from inbox.store.db import make_engine, make_sessionmaker

    click.echo(f"inbox: the daemon does not answer at {url} ({error})")
    engine = make_engine(app.existing_store_url())
    try:
        view = store_view(make_sessionmaker(engine))
    finally:
        engine.dispose()
    if not view.ok:
        click.echo(f"store: NOT REACHABLE: {view.error}")
        return
    outbox = view.outbox
    click.echo(
        f"store: ok; outbox: {outbox['pending']} pending, {outbox['dead']} dead, "
        f"oldest waiting {_ago(view.oldest_pending_seconds)}"
    )


def _ago(seconds: float | None) -> str:
    if not seconds:
        return "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
