"""The desk's rules page: the rules in force as the daemon holds them, a pasted message tried
against them (each rule's verdict and why, and the outcome), and, for an admin, a candidate
file checked and replayed over stored history with what would change. Nothing here writes:
the rules file is changed where it lives (deployed, reviewed), and the daemon reloads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy.orm import Session

from inbox.normalize.email import normalize_email
from inbox.routing.replay import Replayed, replay_history
from rules.engine import CompiledRules
from rules.errors import RulesInvalid
from rules.facts import message_facts
from rules.holder import RulesInForce, compile_file
from rules.matchers import parse_duration
from rules.outcome import outcome_lines, trace_lines

#: A pasted candidate is replayed over at most this many of the newest messages, so that one
#: click cannot hold a reader for minutes (the CLI's `inbox rules replay` has no such cap).
REPLAY_LIMIT = 5000
MAX_PASTE = 512 * 1024


@dataclass
class Tried:
    trace: list[tuple[str, str, str]]
    outcome: list[str]
    summary: str


@dataclass
class Checked:
    problems: list[str] = field(default_factory=list)
    summary: str = ""
    replayed: Replayed | None = None
    since: str = ""


def rules_text(rules: RulesInForce) -> str:
    try:
        return rules.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"(cannot read {rules.path}: {error})"


def try_message(
    compiled: CompiledRules, form: Mapping[str, str], now: datetime, languages: Sequence[str]
) -> Tried:
    """The pasted raw message, or one made of the form's From, To, Subject and body, as if it
    opened a new conversation now."""
    raw = form.get("raw", "").strip()
    if raw:
        payload = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    else:
        message = EmailMessage()
        message["From"] = form.get("from", "").strip() or "customer@example.com"
        message["To"] = form.get("to", "").strip() or "support@example.com"
        message["Subject"] = form.get("subject", "")
        message["Date"] = format_datetime(now)
        message.set_content(form.get("body", ""))
        payload = message.as_bytes()
    normalized = normalize_email(payload[:MAX_PASTE], languages=languages)
    evaluation = compiled.evaluate(message_facts(normalized, now), trace=True)
    facts = evaluation.facts
    summary = (
        f"{facts.channel} from {facts.from_address or '?'} · subject {facts.subject[:80]!r} · "
        f"language {facts.language or '?'} · at {now:%Y-%m-%d %H:%M} UTC"
    )
    return Tried(trace_lines(evaluation), outcome_lines(evaluation), summary)


def check_candidate(
    session: Session | None,
    rules: RulesInForce,
    text: str,
    *,
    since: str,
    now: datetime,
) -> Checked:
    """The candidate read as if it were the rules file (its includes beside it); replayed
    when a session is given and it compiles."""
    if len(text) > MAX_PASTE:
        return Checked([f"the candidate has {len(text):,} characters; at most {MAX_PASTE:,}"])
    try:
        candidate = compile_file(Path(rules.path), text=text)
    except RulesInvalid as invalid:
        return Checked([str(problem) for problem in invalid.problems] or [str(invalid)])
    ruleset = candidate.ruleset
    checked = Checked(
        summary=f"OK: {len(ruleset.rules)} rules, {len(ruleset.teams)} teams, "
        f"{len(ruleset.agents)} agents (version {ruleset.version})",
        since=since,
    )
    if session is not None:
        try:
            window = parse_duration(since)
        except ValueError as error:
            checked.problems.append(str(error))
            return checked
        checked.replayed = replay_history(
            session,
            candidate,
            rules.current,
            since=min(window, timedelta(days=366)),
            now=now,
            sample=20,
            limit=REPLAY_LIMIT,
        )
    return checked
