"""`inbox rules check|test|replay`: what an admin needs before a rules file goes live.

None of these change the store: `test` and `replay` read it (when one is configured) and roll
back anything they touched.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inbox.cli.context import AppContext, pass_app
from inbox.routing.stored_facts import facts_of_message
from inbox.store.models import Conversation, Message, utcnow

if TYPE_CHECKING:  # the engine is imported by the commands that run it, not by every `inbox`
    from rules.engine import CompiledRules, Evaluation
    from rules.facts import Facts


@click.group()
def rules() -> None:
    """Check, try and replay routing rules files."""


def _compile_or_exit(path: Path) -> CompiledRules:
    from rules.errors import RulesInvalid
    from rules.holder import compile_file

    try:
        return compile_file(path)
    except RulesInvalid as invalid:
        for problem in invalid.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{path}: {invalid}", err=True)
        sys.exit(1)


@rules.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def check(file: Path) -> None:
    """Validate FILE and what it includes; exit 1 with every problem if it cannot be used."""
    compiled = _compile_or_exit(file)
    ruleset = compiled.ruleset
    click.echo(
        f"{file}: OK: {len(ruleset.rules)} rules, {len(ruleset.teams)} teams, "
        f"{len(ruleset.agents)} agents, {len(ruleset.files)} files (version {ruleset.version})"
    )


@rules.command("test")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--message",
    "eml",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="An email (.eml), as if it opened a new conversation.",
)
@click.option(
    "--sms",
    "sms",
    help='An SMS as JSON: {"from": "+358...", "to": "+358...", "body": "..."}, or @file.json.',
)
@click.option(
    "--conversation",
    "conversation_id",
    type=int,
    help="A stored conversation: its latest message, against its state now.",
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    help="Evaluate as if it were this UTC time (business hours, age).",
)
@pass_app
def test(
    app: AppContext,
    file: Path,
    eml: Path | None,
    sms: str | None,
    conversation_id: int | None,
    at: datetime | None,
) -> None:
    """Show each rule of FILE, matched or not and why, and the outcome; changes nothing."""
    if sum(x is not None for x in (eml, sms, conversation_id)) != 1:
        raise click.UsageError("give exactly one of --message, --sms or --conversation")
    compiled = _compile_or_exit(file)
    now = at.replace(tzinfo=utcnow().tzinfo) if at else utcnow()
    languages = list(app.config().settings.ingest.languages)
    if eml is not None:
        facts = _email_facts(eml.read_bytes(), now, languages)
        conversation = None
    elif sms is not None:
        facts = _sms_facts(sms, now, languages)
        conversation = None
    else:
        assert conversation_id is not None
        with _store(app) as session:
            conversation, facts = _stored_facts(session, conversation_id, now)
    evaluation = compiled.evaluate(facts, trace=True)
    _print_trace(evaluation)
    _print_outcome(app, compiled, evaluation, conversation)


@rules.command("replay")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--since", default="30d", show_default=True, help="How far back: 7d, 30d, 12h.")
@click.option(
    "--against",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The rules to compare with (default: the configured rules_file).",
)
@click.option("--sample", default=10, show_default=True, help="Changed messages to show.")
@pass_app
def replay(app: AppContext, file: Path, since: str, against: Path | None, sample: int) -> None:
    """Run FILE over stored history and print what would change against the rules in force."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    from inbox.cli.context import stderr_console

    candidate = _compile_or_exit(file)
    current_path = against or app.config().settings.rules_file
    current = _compile_or_exit(Path(current_path)) if current_path else None
    try:
        from rules.matchers import parse_duration

        window = parse_duration(since)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    from inbox.routing.replay import replay_history

    with (
        _store(app) as session,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr_console(),
        ) as progress,
    ):
        task = progress.add_task("replaying", total=None)
        replayed = replay_history(
            session,
            candidate,
            current,
            since=window,
            now=utcnow(),
            sample=sample,
            started=lambda total: progress.update(task, total=total),
            advanced=lambda: progress.advance(task),
        )
    against_name = str(current_path) if current else "no rules"
    click.echo(f"{replayed.total} messages since {since}: {file} against {against_name}")
    if not replayed.changes:
        click.echo("no differences")
        return
    for difference, count in replayed.changes.most_common():
        click.echo(f"  {count:>6}  {difference}")
    click.echo("sample:")
    for message_id, conversation_id, subject, changed in replayed.shown:
        click.echo(
            f"  message {message_id} (conversation {conversation_id}, {subject[:50]!r}): "
            + "; ".join(changed)
        )


# -- facts ------------------------------------------------------------------------------------


def _email_facts(raw: bytes, now: datetime, languages: list[str]) -> Facts:
    from inbox.normalize.email import normalize_email
    from rules.facts import message_facts

    normalized = normalize_email(raw, languages=languages)
    return message_facts(normalized, now)


def _sms_facts(spec: str, now: datetime, languages: list[str]) -> Facts:
    from inbox.normalize.language import detect_language
    from rules.facts import Facts

    text = Path(spec[1:]).read_text(encoding="utf-8") if spec.startswith("@") else spec
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--sms") from None
    if not isinstance(data, dict) or "body" not in data:
        raise click.BadParameter(
            'expected {"from": ..., "to": ..., "body": ...}', param_hint="--sms"
        )
    body = str(data["body"])
    return Facts(
        now=now,
        channel="sms",
        from_address=str(data.get("from", "")),
        to=(str(data.get("to", "")),),
        body=body,
        language=detect_language(body, languages),
    )


def _stored_facts(
    session: Session, conversation_id: int, now: datetime
) -> tuple[Conversation, Facts]:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise click.ClickException(f"no conversation {conversation_id}")
    message = session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.id.desc())
        .limit(1)
        .options(selectinload(Message.attachments))
    )
    if message is None:
        raise click.ClickException(f"conversation {conversation_id} has no messages")
    return conversation, facts_of_message(session, message, now)


# -- printing ---------------------------------------------------------------------------------


def _print_trace(evaluation: Evaluation) -> None:
    facts = evaluation.facts
    click.echo(
        f"{facts.channel} from {facts.from_address or '?'} · subject {facts.subject[:60]!r} · "
        f"language {facts.language or '?'} · "
        f"{'new conversation' if facts.new_conversation else 'follow-up'} · "
        f"at {facts.now:%Y-%m-%d %H:%M} UTC"
    )
    click.echo("")
    from rules.outcome import trace_lines

    for mark, rule, why in trace_lines(evaluation):
        click.echo(f"{mark} {rule}")
        click.echo(f"    {why}")


def _print_outcome(
    app: AppContext,
    compiled: CompiledRules,
    evaluation: Evaluation,
    conversation: Conversation | None,
) -> None:
    decisions = evaluation.decisions
    click.echo("")
    click.echo("outcome:")
    if decisions.empty():
        click.echo("  nothing: no rule matched")
        return
    from rules.outcome import outcome_lines

    choice = _choice(app, compiled, evaluation, conversation) if decisions.assign else ""
    for line in outcome_lines(evaluation, assigned=f"  {choice}" if choice else ""):
        click.echo(f"  {line}")


def _choice(
    app: AppContext,
    compiled: CompiledRules,
    evaluation: Evaluation,
    conversation: Conversation | None,
) -> str:
    """Who the strategy would pick now, from the store's loads; rolled back, nothing kept."""
    from inbox.routing.workload import StoredWorkload

    decisions = evaluation.decisions
    assert decisions.assign is not None
    assign = decisions.assign[0]
    facts = evaluation.facts
    if facts.assignee and not (assign.reassign or facts.new_conversation):
        return (
            f"stays with {facts.assignee}: a follow-up keeps its agent unless the rule says "
            "reassign: true"
        )
    try:
        with _store(app) as session:
            target = (
                conversation
                if conversation is not None
                else Conversation(
                    token="",
                    channel=evaluation.facts.channel,
                    language=evaluation.facts.language,
                    status="open",
                    priority="normal",
                    message_count=1,
                )
            )
            if conversation is not None:
                target = session.merge(conversation)
            choice = StoredWorkload(session, compiled.ruleset, evaluation.facts.now).choose(
                assign, target
            )
            session.rollback()
    except click.ClickException:
        return "(the store cannot be read: who would get it depends on agents' loads there)"
    skipped = "; ".join(f"{name}: {why}" for name, why in choice.skipped.items())
    who = f"would go to {choice.agent}" if choice.agent else "would wait in the team queue"
    return f"{who} ({choice.strategy}){'; passed over ' + skipped if skipped else ''}"


# -- replay -----------------------------------------------------------------------------------


@contextmanager
def _store(app: AppContext) -> Iterator[Session]:
    """A read session on the configured store; never committed."""
    from sqlalchemy.exc import SQLAlchemyError

    from inbox.store.db import make_engine, make_sessionmaker

    url = app.config().settings.effective_database_url
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
            session.rollback()
    except SQLAlchemyError as error:
        raise click.ClickException(f"the store at {engine.url!r} cannot be read: {error}") from None
    finally:
        engine.dispose()
