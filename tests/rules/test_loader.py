"""Loading rules files: what an admin sees when the file is right, and when it is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules import example_rules_path
from rules.errors import RulesInvalid
from rules.loader import load_rules
from rules.model import RuleSet


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RulesInvalid) as raised:
        load_rules(path)
    return [str(problem) for problem in raised.value.problems]


def test_the_example_desk_loads_with_its_team_files() -> None:
    ruleset = load_rules(example_rules_path())
    assert [rule.name for rule in ruleset.rules][:3] == [
        "automatic-mail",
        "out-of-hours",
        "repeat-customer",
    ]
    assert set(ruleset.teams) == {"billing", "nordic", "technical"}
    assert ruleset.teams["nordic"].members == ("aino", "mart")
    assert ruleset.teams["nordic"].strategy == "sticky"
    assert ruleset.agents["kalle"].hours is not None  # inline hours in his own time zone
    assert len(ruleset.files) == 4


BROKEN = """\
    timezone: Europe/Helsnki
    tags: [urgent, vip]
    agents:
      aino: {slack: U1, languages: [fi], skils: [api]}
    teams:
      nordic: {members: [aino, ainoo], strategy: least_loded}
    rules:
      - name: urgent
        when: {body: {any_keywrd: [urgent]}}
        then: {prioirty: high, tag: urgnt}
      - when: {subjet: invoice}
        then: {assign: {team: nordik}}
      - name: numbers
        when: {message_count: {gte: many}, age: {gt: 2 hours}, status: opne}
        then: {tag: vip}
"""


def test_every_problem_is_reported_at_once_with_place_and_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", BROKEN)
    found = problems(path)
    expected = [
        f"{path}:1:11: timezone: unknown time zone 'Europe/Helsnki', did you mean "
        "'Europe/Helsinki'?",
        f"{path}:4:38: agents.aino.skils: unknown key 'skils', did you mean 'skills'?",
        f"{path}:6:28: teams.nordic.members[1]: unknown agent 'ainoo', did you mean 'aino'?",
        f"{path}:6:46: teams.nordic.strategy: unknown strategy 'least_loded', did you mean "
        "'least_loaded'?",
        f"{path}:9:19: rules[0].when.body.any_keywrd: unknown matcher for text 'any_keywrd', "
        "did you mean 'any_keyword'?",
        f"{path}:10:12: rules[0].then.prioirty: unknown key 'prioirty', did you mean 'priority'?",
        f"{path}:10:33: rules[0].then.tag: unknown tag 'urgnt', did you mean 'urgent'?",
        f"{path}:11:5: rules[1]: 'name' is missing (a rule)",
        f"{path}:11:12: rules[1].when.subjet: unknown condition 'subjet', did you mean 'subject'?",
        f"{path}:12:27: rules[1].then.assign.team: unknown team 'nordik', did you mean 'nordic'?",
        f"{path}:14:33: rules[2].when.message_count.gte: expected a number, got 'many'",
        f"{path}:14:50: rules[2].when.age.gt: '2 hours' is not a duration like 30m, 2h, 3d or 1w",
        f"{path}:14:68: rules[2].when.status: unknown status 'opne', did you mean 'open'?",
    ]
    assert found == expected


def test_yaml_1_1_surprises_are_not_made(tmp_path: Path) -> None:
    # `no` would be False and 08:00 the number 480 under YAML 1.1: here they stay text, so
    # the Norwegian language code is refused by name, and hours read as hours.
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        calendars:
          office: {timezone: UTC, hours: {mon-fri: 08:00-17:00}}
        agents:
          ola: {languages: [no], calendar: office}
        rules: []
        """,
    )
    assert problems(path) == [
        f"{path}:4:21: agents.ola.languages[0]: unknown language 'no' (Norwegian is nb, "
        "Bokmål, or nn, Nynorsk)"
    ]


def test_a_key_given_twice_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - name: a
            when: {subject: invoice}
            then: {priority: high}
            then: {priority: low}
        """,
    )
    assert problems(path) == [f"{path}:5:5: rules[0].then: given twice"]


def test_yaml_syntax_errors_name_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "rules:\n  - name: a\n    when: {subject: [x\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:4:1: not valid YAML")


def test_two_rules_with_one_name_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - {name: same, when: {subject: a}, then: {priority: high}}
          - {name: same, when: {subject: b}, then: {priority: low}}
        """,
    )
    assert problems(path) == [
        f"{path}:3:5: rules: rule name 'same' is used twice (first at {path}:2:5); names must "
        "be unique"
    ]


def test_linear_time_regexes_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - {name: backreference, when: {subject: {regex: '(\\w+) \\1'}}, then: {priority: high}}
          - {name: lookahead, when: {body: {regex: 'foo(?=bar)'}}, then: {priority: high}}
        """,
    )
    assert problems(path) == [
        f"{path}:2:51: rules[0].when.subject.regex: not a valid RE2 regex: invalid escape "
        "sequence: \\1",
        f"{path}:3:44: rules[1].when.body.regex: not a valid RE2 regex: invalid perl operator: (?=",
    ]


def test_without_a_tags_section_conditions_must_name_a_tag_some_rule_adds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - {name: vip, when: {from_domain: bigcorp.example}, then: {tag: vip}}
          - {name: vip-urgent, when: {tags: vpi}, then: {priority: urgent}}
        """,
    )
    assert problems(path) == [
        f"{path}:3:37: rules[1].when.tags: unknown tag 'vpi', did you mean 'vip'?"
    ]


def test_included_team_files_share_names_and_report_duplicates(tmp_path: Path) -> None:
    write(
        tmp_path,
        "teams/a.yaml",
        """\
        agents:
          aino: {languages: [fi]}
        teams:
          nordic: {members: [aino]}
        """,
    )
    write(
        tmp_path,
        "teams/b.yaml",
        """\
        agents:
          aino: {languages: [sv]}
        rules:
          - {name: from-b, when: {language: sv}, then: {assign: {team: nordic}}}
        """,
    )
    main = write(
        tmp_path,
        "rules.yaml",
        """\
        include: teams/*.yaml
        rules:
          - {name: first, when: {language: fi}, then: {assign: {agent: aino}}}
        """,
    )
    assert problems(main) == [
        f"{tmp_path}/teams/b.yaml:2:3: agents.aino: agent 'aino' is defined twice (first at "
        f"{tmp_path}/teams/a.yaml:2:3)"
    ]
    write(
        tmp_path,
        "teams/b.yaml",
        "rules:\n  - {name: from-b, when: {language: sv}, then: {assign: {team: nordic}}}\n",
    )
    ruleset: RuleSet = load_rules(main)
    # The main file's rules first, then each included file's, in include order.
    assert [rule.name for rule in ruleset.rules] == ["first", "from-b"]


def test_a_missing_include_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "include: [teams/nordic.yaml]\nrules: []\n")
    assert problems(path) == [f"{path}:1:11: include: 'teams/nordic.yaml': file not found"]


def test_values_that_look_like_numbers_keep_how_they_were_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from rules.engine import CompiledRules
    from rules.facts import Facts

    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - {name: finland, when: {from: {starts_with: +358}}, then: {priority: high}}
          - {name: agent-007, when: {subject: {contains: 007}}, then: {priority: high}}
        """,
    )
    engine = CompiledRules(load_rules(path))
    now = datetime(2026, 11, 25, tzinfo=UTC)
    sms = engine.evaluate(Facts(now=now, channel="sms", from_address="+358401234567"))
    assert [r.rule.name for r in sms.matched] == ["finland"]
    other = engine.evaluate(Facts(now=now, from_address="358999", subject="Mission 7"))
    assert other.matched == []


def test_agents_need_no_languages_and_a_narrower_day_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        timezone: Europe/Helsinki
        agents:
          aino: {slack: U1, hours: {mon-fri: "08:00-17:00", fri: closed}}
        rules: []
        """,
    )
    aino = load_rules(path).agents["aino"]
    assert aino.languages == ()
    assert aino.hours is not None
    assert aino.hours.zone.key == "Europe/Helsinki"  # the file's zone, not UTC
    assert aino.hours.hours[3] and not aino.hours.hours[4]  # open Thursday, closed Friday


def test_hostile_files_get_a_problem_not_a_crash(tmp_path: Path) -> None:
    too_long = write(
        tmp_path,
        "long.yaml",
        "rules:\n  - {name: a, when: {age: {gt: 99999999999d}}, then: {priority: high}}\n",
    )
    assert problems(too_long) == [
        f"{too_long}:2:32: rules[0].when.age.gt: '99999999999d' is longer than any "
        "conversation can be"
    ]
    looping = write(tmp_path, "loop.yaml", "rules: &r [{name: r, description: *r}]\n")
    assert problems(looping) == [f"{looping}:1:8: rules[0].description: an alias refers to itself"]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 10)}]\n" for n in range(6)
    )
    expanding = write(tmp_path, "bomb.yaml", bomb)
    assert problems(expanding) == [f"{expanding}:1:1: expands to more than 200000 values (aliases)"]
    negated = write(
        tmp_path,
        "negated.yaml",
        "rules:\n  - {name: a, when: {subject: {regex: '^[\\W]+$'}}, then: {priority: high}}\n",
    )
    [problem] = problems(negated)
    assert "\\W inside [...] cannot be made to know all scripts" in problem


def test_dates_stay_text_and_a_tag_listed_twice_is_named(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from rules.engine import CompiledRules
    from rules.facts import Facts

    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - {name: dated, when: {subject: {contains: 2026-01-05}}, then: {priority: high}}
          - {name: caret, when: {subject: {glob: "[^!]*"}}, then: {priority: low}}
        """,
    )
    engine = CompiledRules(load_rules(path))
    now = datetime(2026, 11, 25, tzinfo=UTC)
    found = engine.evaluate(Facts(now=now, subject="^ Invoice of 2026-01-05"))
    assert [r.rule.name for r in found.matched] == [
        "dated",
        "caret",
    ]  # [^!] is ^ or !, as in fnmatch
    twice = write(tmp_path, "twice.yaml", "tags: [vip, urgent, vip]\nrules: []\n")
    assert problems(twice) == [f"{twice}:1:21: tags[2]: tag 'vip' is listed twice"]
