"""Changing the rules on a live server: a good file takes over, a broken one is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox.store.db import make_engine
from inbox.store.models import Conversation, ConversationTag, Tag
from rules.holder import RulesInForce
from tests.helpers import mail
from tests.processes import wait_for

VERSION_ONE = """\
    tags: [first, second]
    rules:
      - {name: tag-it, when: {subject: {contains: hello}}, then: {tag: first}}
"""
VERSION_TWO = VERSION_ONE.replace("tag: first", "tag: second")
BROKEN = VERSION_ONE.replace("tag: first", "tag: frist")


def write(path: Path, text: str) -> None:
    # A new mtime even within the same clock tick: the size differs or we wait for it.
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    while path.stat().st_mtime_ns == before:
        time.sleep(0.01)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_broken_edit_is_refused_and_the_rules_in_force_stay(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, VERSION_ONE)
    rules = RulesInForce(path)
    first = rules.current
    write(path, BROKEN)
    assert rules.reload_if_changed() is False
    assert rules.current is first
    assert rules.failed_reloads == 1
    assert rules.reload_if_changed() is False  # the same broken text is not retried
    assert rules.failed_reloads == 1
    write(path, VERSION_TWO)
    assert rules.reload_if_changed() is True
    assert rules.current.version != first.version


def test_an_edit_of_an_included_file_is_noticed(tmp_path: Path) -> None:
    team = tmp_path / "teams" / "nordic.yaml"
    team.parent.mkdir()
    write(team, "agents:\n  aino: {languages: [fi]}\nteams:\n  nordic: {members: [aino]}\n")
    main = tmp_path / "rules.yaml"
    write(main, "include: teams/*.yaml\nrules:\n  - {name: n, then: {assign: {team: nordic}}}\n")
    rules = RulesInForce(main)
    assert rules.reload_if_changed() is False
    write(team, "agents:\n  aino: {languages: [fi, sv]}\nteams:\n  nordic: {members: [aino]}\n")
    assert rules.reload_if_changed() is True
    assert rules.current.ruleset.agents["aino"].languages == ("fi", "sv")


def _tags(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Conversation.subject, Tag.name)
                .join(ConversationTag, ConversationTag.conversation_id == Conversation.id)
                .join(Tag, Tag.id == ConversationTag.tag_id)
            )
            found: dict[str, set[str]] = {}
            for subject, tag in rows:
                found.setdefault(subject, set()).add(tag)
            return found
    except Exception:
        return {}
    finally:
        engine.dispose()


def _events(log: Path) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def _deliver(maildir: Path, name: str, subject: str) -> None:
    (maildir / "tmp" / name).write_bytes(mail(subject=subject, message_id=f"{name}@t"))
    (maildir / "tmp" / name).rename(maildir / "new" / name)


@pytest.mark.slow
def test_the_running_daemon_reloads_on_change_and_on_sighup(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    rules_file = tmp_path / "rules.yaml"
    write(rules_file, VERSION_ONE)
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "{url}"\nrules_file = "{rules_file}"\n[logging]\nformat = "json"\n'
        f'[[connectors]]\nname = "box"\ntype = "maildir"\npath = "{maildir}"\n'
        "poll_seconds = 0.2\n",
        encoding="utf-8",
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "inbox", "--config", str(config), "run"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INBOX_INGEST__WORKERS": "0"},
        )
    try:
        _deliver(maildir, "one", "hello one")
        wait_for(lambda: _tags(url).get("hello one") == {"first"}, "the first rules", timeout=30)
        write(rules_file, BROKEN)
        wait_for(
            lambda: any(e.get("event") == "rules_reload_refused" for e in _events(log)),
            "the broken file to be refused",
            timeout=30,
        )
        refused = next(e for e in _events(log) if e.get("event") == "rules_reload_refused")
        assert any("unknown tag 'frist', did you mean 'first'?" in p for p in refused["problems"])
        _deliver(maildir, "two", "hello two")
        wait_for(
            lambda: _tags(url).get("hello two") == {"first"}, "the old rules to stay", timeout=30
        )
        write(rules_file, VERSION_TWO)
        wait_for(
            lambda: any(e.get("event") == "rules_reloaded" for e in _events(log)),
            "the fixed file to be loaded",
            timeout=30,
        )
        _deliver(maildir, "three", "hello three")
        wait_for(lambda: _tags(url).get("hello three") == {"second"}, "the new rules", timeout=30)
        process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: any(e.get("reason") == "SIGHUP" for e in _events(log)),
            "the reload on SIGHUP",
            timeout=30,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_new_file_matching_an_include_is_noticed(tmp_path: Path) -> None:
    teams = tmp_path / "teams"
    teams.mkdir()
    write(teams / "a.yaml", "agents:\n  aino: {languages: [fi]}\n")
    main = tmp_path / "rules.yaml"
    write(main, "include: teams/*.yaml\nrules: []\n")
    rules = RulesInForce(main)
    assert rules.reload_if_changed() is False
    write(teams / "b.yaml", "agents:\n  mart: {languages: [et]}\n")
    assert rules.reload_if_changed() is True
    assert set(rules.current.ruleset.agents) == {"aino", "mart"}
