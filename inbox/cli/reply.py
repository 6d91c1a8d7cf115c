"""`inbox conversations reply`, `close` and `snooze`: an agent's answer to the customer, or an
internal note, written by inbox/routing/reply.py as the Slack thread and the web desk write
theirs. The reply leaves with the daemon's next pass over the outbox (`inbox run`, or
`inbox run --once`)."""

from __future__ import annotations

from pathlib import Path

import click

from inbox.cli.common import store_writers
from inbox.cli.context import AppContext, pass_app, person_name
from inbox.routing.person import NoSuchConversation, close_by_person
from inbox.routing.reply import CannotReply, respond_elsewhere, write_reply
from inbox.routing.snooze import CannotSnooze, snooze_by_person, snooze_until
from inbox.store.db import transaction
from rules.model import RuleSet


@click.command("reply")
@click.argument("conversation_id", type=int)
@click.option("--text", help="What to write.")
@click.option(
    "--file",
    "text_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read it from this UTF-8 file ('-' is not taken: use --text \"$(cat)\").",
)
@click.option(
    "--answer", "answer_name", help="A canned answer (answers/NAME.LANG.md beside the rules)."
)
@click.option("--note", is_flag=True, help="An internal note: stored, never sent.")
@click.option("--by", "person", help="Who writes, for the history (default: your login name).")
@pass_app
def reply_conversation(
    app: AppContext,
    conversation_id: int,
    text: str | None,
    text_file: Path | None,
    answer_name: str | None,
    note: bool,
    person: str | None,
) -> None:
    """Answer the customer over the channel they wrote on, threaded after their last message."""
    if sum(given is not None for given in (text, text_file, answer_name)) != 1:
        raise click.UsageError("give the reply with exactly one of --text, --file or --answer")
    author = person_name(person)
    if text_file is not None:
        try:
            text = text_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise click.ClickException(f"{text_file} is not UTF-8 ({error.reason})") from None
    if answer_name is not None:
        text = _canned(app, conversation_id, answer_name, author)
    assert text is not None
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


@click.command("respond")
@click.argument("conversation_id", type=int)
@click.option("--note", default="", help='How it was answered ("called her back").')
@click.option("--by", "person", help="Who answered, for the history (default: your login name).")
@pass_app
def respond_conversation(
    app: AppContext, conversation_id: int, note: str, person: str | None
) -> None:
    """Record a response made outside Inbox (by phone): it meets the SLA's first and next
    response as a reply would, and the conversation waits on the customer."""
    by = person_name(person)
    try:
        with transaction(store_writers(app)) as session:
            done = respond_elsewhere(session, conversation_id, person=by, note=note)
    except NoSuchConversation as error:
        raise click.ClickException(str(error)) from None
    if not done:
        raise click.ClickException(f"conversation {conversation_id} is closed")
    click.echo(f"conversation {conversation_id}: response by {by} recorded; it is pending")


@click.command("snooze")
@click.argument("conversation_id", type=int)
@click.option(
    "--until",
    "when",
    required=True,
    help="A duration (2h, 3d), tomorrow or monday (09:00), or a date and time "
    "(2026-12-08 14:00, in this machine's time zone unless an offset is given).",
)
@click.option("--by", "person", help="Who snoozes it, for the history (default: your login name).")
@pass_app
def snooze_conversation(
    app: AppContext, conversation_id: int, when: str, person: str | None
) -> None:
    """Put a conversation aside: pending until then, open again at that time or as soon as the
    customer writes. The running daemon opens it and tells its assignee in Slack."""
    from datetime import UTC, datetime

    from inbox.store.models import utcnow

    by = person_name(person)
    now = utcnow()
    try:
        until = snooze_until(when, now, datetime.now().astimezone().tzinfo or UTC)
        with transaction(store_writers(app)) as session:
            snooze_by_person(session, conversation_id, person=by, until=until, now=now)
    except (NoSuchConversation, CannotSnooze) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"conversation {conversation_id} snoozed until {until:%Y-%m-%d %H:%M %Z}")


def _canned(app: AppContext, conversation_id: int, name: str, author: str) -> str:
    """The answer in the conversation's language (else English), its placeholders filled."""
    from inbox.cli.common import reading_session
    from inbox.routing.canned import canned_answer
    from rules.answers import AnswerError, answers_folder, load_answers

    rules_file = app.config().settings.rules_file
    if rules_file is None:
        raise click.ClickException("no rules_file is configured: answers live beside it")
    answers, _ = load_answers(answers_folder(Path(rules_file)), _extracted(Path(rules_file)))
    try:
        with reading_session(app) as session:
            canned = canned_answer(session, answers, conversation_id, name, author)
    except (AnswerError, NoSuchConversation) as error:
        raise click.ClickException(str(error)) from None
    if canned.used != canned.language:
        click.echo(f"no {name}.{canned.language or '?'}.md: the English answer is used", err=True)
    return canned.text


def _extracted(rules_file: Path) -> frozenset[str]:
    """The placeholders the rules file's `extract` actions fill (none if it cannot be read:
    the rules' own check says why)."""
    ruleset = _rules_of(rules_file)
    return ruleset.extracted_names() if ruleset is not None else frozenset()


def _rules_of(rules_file: Path) -> RuleSet | None:
    from rules.errors import RulesInvalid
    from rules.loader import load_rules

    try:
        return load_rules(rules_file)
    except (RulesInvalid, OSError):
        return None


def _answers_used(ruleset: RuleSet) -> dict[str, str]:
    """Each answer the rules send by themselves (auto_reply, survey), with the rule."""
    used: dict[str, str] = {}
    for rule in ruleset.rules:
        if rule.then.auto_reply is not None:
            used.setdefault(rule.then.auto_reply.answer, rule.name)
        if rule.then.survey:
            used.setdefault(rule.then.survey, rule.name)
    return used


@click.group("answers")
def answers_group() -> None:
    """Canned answers beside the rules file (answers/NAME.LANG.md)."""


@answers_group.command("check")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_app
def answers_check(app: AppContext, folder: Path | None) -> None:
    """Exit 0 when every answer can be used, else 1 with every problem."""
    from rules.answers import answers_folder, load_answers

    rules_file = app.config().settings.rules_file
    if folder is None:
        if rules_file is None:
            raise click.UsageError("give FOLDER, or configure rules_file (answers live beside it)")
        folder = answers_folder(Path(rules_file))
    ruleset = _rules_of(Path(rules_file)) if rules_file is not None else None
    extracted = ruleset.extracted_names() if ruleset is not None else frozenset()
    answers, problems = load_answers(folder, extracted)
    for name, rule in sorted(_answers_used(ruleset).items() if ruleset else ()):
        if name not in answers.texts:
            problems.append(f"{name}.en.md: rule '{rule}' sends this answer, and it is missing")
    for problem in problems:
        click.echo(f"{folder}/{problem}", err=True)
    count = sum(len(by_language) for by_language in answers.texts.values())
    click.echo(f"{len(answers.texts)} answers in {count} files, {len(problems)} problems")
    if problems:
        raise SystemExit(1)
