"""`inbox rules check|test|replay` as an admin runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select, text

from inbox.cli import main
from inbox.store.models import Event, OutboxItem
from rules import example_rules_path
from tests.helpers import mail

EXAMPLE = str(example_rules_path())


def run(*args: str, url: str | None = None) -> Result:
    prefix = ["--database-url", url] if url else []
    return CliRunner().invoke(main, [*prefix, "rules", *args], catch_exceptions=False)


def test_check_says_ok_or_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    ok = run("check", EXAMPLE)
    assert ok.exit_code == 0
    assert "OK: 9 rules, 3 teams, 7 agents, 4 files" in ok.output
    broken = tmp_path / "rules.yaml"
    broken.write_text(
        "rules:\n  - {name: a, when: {subjet: x}, then: {prioirty: high}}\n", encoding="utf-8"
    )
    result = run("check", str(broken))
    assert result.exit_code == 1
    assert (
        f"{broken}:2:22: rules[0].when.subjet: unknown condition 'subjet', did you mean "
        "'subject'?" in result.output
    )
    assert (
        f"{broken}:2:41: rules[0].then.prioirty: unknown key 'prioirty', did you mean "
        "'priority'?" in result.output
    )
    assert "2 problems in the rules" in result.output


def test_test_with_an_email_shows_each_rule_and_the_outcome(tmp_path: Path) -> None:
    eml = tmp_path / "mail.eml"
    eml.write_bytes(
        mail(
            sender="Mart Tamm <mart@example.ee>",
            subject="Arve on vale",
            body="Tere! Arve summa on vale, palun parandage see kiiresti. Aitäh, Mart\n",
        )
    )
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    CliRunner().invoke(main, ["--database-url", url, "db", "upgrade"])
    result = run("test", EXAMPLE, "--message", str(eml), "--at", "2026-11-25T10:00", url=url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "✓ urgent-words  [" in result.output
    assert "    subject has keyword 'arve'" in lines or "    body has keyword 'arve'" in lines
    assert "✓ billing (stop)  [" in result.output
    assert "· nordic-languages  [" in result.output  # stopped before it
    assert "  priority urgent  (rule urgent-words)" in lines
    assert "  assign to team billing  (rule billing)" in lines
    # Olga speaks Estonian and it is Wednesday noon in Helsinki: she would get it.
    assert "    would go to olga (round_robin); passed over nikos: does not speak et" in lines


def test_test_with_an_sms(tmp_path: Path) -> None:
    sms = json.dumps({"from": "+358401234567", "to": "+358987654321", "body": "Срочно! Заказ"})
    result = run(
        "test",
        EXAMPLE,
        "--sms",
        sms,
        "--at",
        "2026-11-25T10:00",
        url=f"sqlite:///{tmp_path / 'inbox.db'}",
    )
    assert result.exit_code == 0, result.output
    assert "sms from +358401234567" in result.output
    assert "✓ urgent-words" in result.output


def test_test_and_replay_change_nothing_in_the_store(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for number, subject in enumerate(["Lasku on väärin", "Teltta rikki", "Invoice question"]):
        (maildir / "new" / f"m{number}").write_bytes(
            mail(subject=subject, body=f"{subject}. Hei, voitteko auttaa? Kiitos.\n")
        )
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    ingest = CliRunner().invoke(main, ["--database-url", url, "ingest", str(maildir)])
    assert ingest.exit_code == 0, ingest.output
    engine = create_engine(url)

    def counts() -> tuple[int, int, str]:
        with engine.connect() as connection:
            events = connection.scalar(select(func.count()).select_from(Event))
            outbox = connection.scalar(select(func.count()).select_from(OutboxItem))
            pointers = connection.execute(text("SELECT * FROM assignment_pointers")).all()
        return events or 0, outbox or 0, repr(pointers)

    before = counts()
    tested = run("test", EXAMPLE, "--conversation", "1", "--at", "2026-11-25T10:00", url=url)
    assert tested.exit_code == 0, tested.output
    assert "✓ billing (stop)" in tested.output
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        Path(EXAMPLE)
        .read_text(encoding="utf-8")
        .replace("kiiresti, brådskande", "kiiresti, brådskande, teltta"),
        encoding="utf-8",
    )
    for folder in ("teams",):
        (tmp_path / folder).symlink_to(Path(EXAMPLE).parent / folder)
    replayed = run("replay", str(candidate), "--against", EXAMPLE, "--since", "3650d", url=url)
    assert replayed.exit_code == 0, replayed.output
    assert "3 messages since 3650d" in replayed.output
    assert "1  priority: (none) -> urgent" in replayed.output
    assert "1  +tag urgent" in replayed.output
    assert "'Teltta rikki'" in replayed.output
    assert counts() == before
    engine.dispose()


def test_test_names_a_missing_conversation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    CliRunner().invoke(main, ["--database-url", url, "db", "upgrade"])
    result = CliRunner().invoke(
        main, ["--database-url", url, "rules", "test", EXAMPLE, "--conversation", "42"]
    )
    assert result.exit_code == 1
    assert "no conversation 42" in result.output
