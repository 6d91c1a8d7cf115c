"""`inbox rules check|test|replay`: what an admin needs before a rules file goes live.

None of these change the store: `test` and `replay` read it (when one is configured) and roll
back anything they touched.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inbox.cli.context import AppContext, pass_app
from inbox.routing.stored_facts import Contexts, facts_of_message
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
    now = utcnow()
    changes: Counter[str] = Counter()
    shown: list[str] = []
    total = 0
    contexts: Contexts = {}
    with _store(app) as session:
        ids = session.scalars(
            select(Message.id).where(Message.received_at >= now - window).order_by(Message.id)
        ).all()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr_console(),
        ) as progress:
            task = progress.add_task("replaying", total=len(ids))
            for message_ids in _chunks(list(ids), 200):
                for message in _messages(session, message_ids):
                    facts = facts_of_message(session, message, now, contexts)
                    after = _outcome(candidate.evaluate(facts))
                    before = _outcome(current.evaluate(facts)) if current else _NO_OUTCOME
                    total += 1
                    differences = _differences(before, after)
                    for difference in differences:
                        changes[difference] += 1
                    if differences and len(shown) < sample:
                        shown.append(
                            f"  message {message.id} (conversation {message.conversation_id}, "
                            f"{message.subject[:50]!r}): " + "; ".join(differences)
                        )
                    progress.advance(task)
                session.expunge_all()
    against_name = str(current_path) if current else "no rules"
    click.echo(f"{total} messages since {since}: {file} against {against_name}")
    if not changes:
        click.echo("no differences")
        return
    for difference, count in changes.most_common():
        click.echo(f"  {count:>6}  {difference}")
    click.echo("sample:")
    for line in shown:
        click.echo(line)


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


def _messages(session: Session, ids: list[int]) -> list[Message]:
    return list(
        session.scalars(
            select(Message)
            .where(Message.id.in_(ids))
            .order_by(Message.id)
            .options(selectinload(Message.attachments), selectinload(Message.conversation))
        )
    )


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
    for result in evaluation.results:
        rule = result.rule
        mark = "✓" if result.verdict.matched else ("·" if not result.evaluated else "✗")
        stop = " (stop)" if rule.stop and result.verdict.matched else ""
        click.echo(f"{mark} {rule.name}{stop}  [{rule.mark}]")
        click.echo(f"    {result.verdict.why}")


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
    for tag, rule in decisions.tags.items():
        click.echo(f"  tag {tag}  (rule {rule})")
    for tag, rule in decisions.untags.items():
        click.echo(f"  untag {tag}  (rule {rule})")
    for tag, rule in decisions.contact_tags.items():
        click.echo(f"  tag contact {tag}  (rule {rule})")
    if decisions.priority:
        click.echo(f"  priority {decisions.priority.value}  (rule {decisions.priority.rule})")
    if decisions.status:
        click.echo(f"  status {decisions.status.value}  (rule {decisions.status.rule})")
    if decisions.assign:
        assign, rule = decisions.assign
        choice = _choice(app, compiled, evaluation, conversation)
        click.echo(f"  assign to {assign.describe()}  (rule {rule}){choice}")
    for notify, rule in decisions.notify.values():
        click.echo(f"  notify {notify.target()}  (rule {rule})")
    for name, found in decisions.extracted.items():
        click.echo(f"  {name} = {found.value}  (rule {found.rule})")
    for what, value, rule, replaced_by in decisions.overridden:
        click.echo(f"  ({what} {value} from rule {rule} was overridden by rule {replaced_by})")


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
            f"\n    stays with {facts.assignee}: a follow-up keeps its agent unless the rule says "
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
        return "\n    (the store cannot be read: who would get it depends on agents' loads there)"
    skipped = "; ".join(f"{name}: {why}" for name, why in choice.skipped.items())
    who = f"would go to {choice.agent}" if choice.agent else "would wait in the team queue"
    return f"\n    {who} ({choice.strategy}){'; passed over ' + skipped if skipped else ''}"


# -- replay -----------------------------------------------------------------------------------

_NO_OUTCOME: dict[str, str] = {}


def _outcome(evaluation: Evaluation) -> dict[str, str]:
    decisions = evaluation.decisions
    outcome = {f"tag {tag}": "yes" for tag in decisions.tags}
    outcome.update({f"untag {tag}": "yes" for tag in decisions.untags})
    outcome.update({f"contact tag {tag}": "yes" for tag in decisions.contact_tags})
    outcome.update({f"notify {target}": "yes" for target in decisions.notify})
    outcome.update({name: found.value for name, found in decisions.extracted.items()})
    if decisions.priority:
        outcome["priority"] = decisions.priority.value
    if decisions.status:
        outcome["status"] = decisions.status.value
    if decisions.assign:
        outcome["assignment"] = decisions.assign[0].describe()
    return outcome


def _differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    found = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old == "yes" or new == "yes":
            found.append(("+" if new else "-") + key)
        else:
            found.append(f"{key}: {old or '(none)'} -> {new or '(none)'}")
    return found


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
