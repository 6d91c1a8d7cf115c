"""`inbox conversations reply` and `close`: an agent's answer to the customer, or an internal
note, written by inbox/routing/reply.py as the Slack thread and the web desk write theirs. The
reply leaves with the daemon's next pass over the outbox (`inbox run`, or `inbox run --once`)."""

from __future__ import annotations

from pathlib import Path

import click

from inbox.cli.common import store_writers
from inbox.cli.context import AppContext, pass_app, person_name
from inbox.routing.person import NoSuchConversation, close_by_person
from inbox.routing.reply import CannotReply, write_reply
from inbox.store.db import transaction


@click.command("reply")
@click.argument("conversation_id", type=int)
@click.option("--text", help="What to write.")
@click.option(
    "--file",
    "text_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read it from this UTF-8 file ('-' is not taken: use --text \"$(cat)\").",
)
@click.option("--note", is_flag=True, help="An internal note: stored, never sent.")
@click.option("--by", "person", help="Who writes, for the history (default: your login name).")
@pass_app
def reply_conversation(
    app: AppContext,
    conversation_id: int,
    text: str | None,
    text_file: Path | None,
    note: bool,
    person: str | None,
) -> None:
    """Answer the customer over the channel they wrote on, threaded after their last message."""
    if (text is None) == (text_file is None):
        raise click.UsageError("give the reply with exactly one of --text or --file")
    if text_file is not None:
        try:
            text = text_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise click.ClickException(f"{text_file} is not UTF-8 ({error.reason})") from None
    assert text is not None
    author = person_name(person)
    try:
        with transaction(store_writers(app)) as session:
            written = write_reply(session, conversation_id, author=author, text=text, note=note)
    except (NoSuchConversation, CannotReply) as error:
        raise click.ClickException(str(error)) from None
    if note:
        click.echo(f"note {written.message_id} added to conversation {conversation_id}")
        return
    click.echo(
        f"reply {written.message_id} queued for conversation {conversation_id}: it leaves with "
        "the daemon's next pass (see `inbox outbox list`)"
    )
    if written.channel == "sms":
        from connectors.twilio_send import segments  # twilio is slow to import: only for SMS

        count = segments(text.strip("\n"))
        if count > 1:
            click.echo(f"the text goes as {count} SMS segments, each one charged")


@click.command("close")
@click.argument("conversation_id", type=int)
@click.option("--by", "person", help="Who closes it, for the history (default: your login name).")
@pass_app
def close_conversation(app: AppContext, conversation_id: int, person: str | None) -> None:
    """Close a conversation; the customer's next message opens it again."""
    by = person_name(person)
    try:
        with transaction(store_writers(app)) as session:
            closed = close_by_person(session, conversation_id, person=by)
    except NoSuchConversation as error:
        raise click.ClickException(str(error)) from None
    if closed:
        click.echo(f"conversation {conversation_id} closed")
    else:
        click.echo(f"conversation {conversation_id} is closed already: nothing changed")
