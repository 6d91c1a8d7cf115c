"""Evaluating rules: what matches, why it says it matched, and what the pass decides."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import CompiledRules
from rules.facts import Facts
from rules.holder import compile_file

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Helsinki


def compiled(tmp_path: Path, text: str) -> CompiledRules:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_file(path)


def matched(engine: CompiledRules, **facts: object) -> list[str]:
    evaluation = engine.evaluate(Facts(now=facts.pop("now", NOW), **facts))  # type: ignore[arg-type]
    return [result.rule.name for result in evaluation.matched]


KEYWORDS = """\
    rules:
      - name: urgent
        when: {body: {any_keyword: [kiire, "out of office", επείγον, срочно, café]}}
        then: {priority: urgent}
"""


@pytest.mark.parametrize(
    ("body", "hit"),
    [
        ("Tämä on KIIRE!", True),  # any case, punctuation around
        ("Asia on kiireellinen", False),  # whole words only: kiire is not kiireellinen
        ("I am out\nof   office today", True),  # a phrase across line breaks and spaces
        ("ΕΠΕΊΓΟΝ: η παραγγελία", True),  # Greek capitals with tonos
        ("Επειγον", True),  # written without accents
        ("Ответьте СРОЧНО", True),
        ("meet at the cafe", True),  # accents optional
        ("outofoffice", False),
        ("", False),
    ],
)
def test_keywords_ignore_case_and_accents_and_match_whole_words(
    tmp_path: Path, body: str, hit: bool
) -> None:
    engine = compiled(tmp_path, KEYWORDS)
    assert matched(engine, body=body) == (["urgent"] if hit else [])


def test_a_match_says_what_matched(tmp_path: Path) -> None:
    engine = compiled(
        tmp_path,
        """\
        rules:
          - name: order-number
            when: {subject: {regex: 'tilaus\\s*#?\\d{4,}'}, language: [fi, et]}
            then: {priority: high}
        """,
    )
    evaluation = engine.evaluate(Facts(now=NOW, subject="Missä tilaus #12345?", language="fi"))
    [result] = evaluation.matched
    assert result.verdict.why == (
        "subject matches regex /tilaus\\s*#?\\d{4,}/: 'tilaus #12345' and language is 'fi'"
    )


def test_regex_word_classes_are_unicode(tmp_path: Path) -> None:
    engine = compiled(
        tmp_path,
        """\
        rules:
          - {name: word, when: {subject: {regex: '^\\w+$'}}, then: {priority: high}}
        """,
    )
    assert matched(engine, subject="Hyväää") == ["word"]
    assert matched(engine, subject="Срочно") == ["word"]
    assert matched(engine, subject="two words") == []


@pytest.mark.timeout(20)
def test_a_hostile_message_cannot_make_a_regex_backtrack(tmp_path: Path) -> None:
    # (a+)+$ against a long run of a's without a match takes exponential time in Python's re.
    engine = compiled(
        tmp_path,
        """\
        rules:
          - {name: evil, when: {body: {regex: '(a+)+$'}}, then: {priority: high}}
          - {name: evil-not-indexed, when: {not: {body: {regex: '(x+x+)+y'}}}, then: {tag: t}}
        """,
    )
    assert matched(engine, body="a" * 50_000 + "!") == ["evil-not-indexed"]
    assert matched(engine, body="x" * 50_000 + "y") == []


def test_last_matching_rule_wins_tags_add_up_and_stop_ends_the_pass(tmp_path: Path) -> None:
    engine = compiled(
        tmp_path,
        """\
        tags: [billing, urgent, vip]
        rules:
          - name: urgent
            when: {subject: {contains: urgent}}
            then: {priority: urgent, tag: urgent}
          - name: vip
            when: {from_domain: bigcorp.example}
            then: {priority: high, tag: vip}
          - name: not-urgent-after-all
            when: {subject: {contains: newsletter}}
            then: {untag: urgent}
          - name: billing
            when: {subject: {any_keyword: [invoice]}}
            then: {tag: billing}
            stop: true
          - name: never
            when: {subject: {contains: invoice}}
            then: {priority: low}
        """,
    )
    evaluation = engine.evaluate(
        Facts(now=NOW, subject="URGENT newsletter invoice", from_address="ceo@bigcorp.example")
    )
    decisions = evaluation.decisions
    assert [r.rule.name for r in evaluation.matched] == [
        "urgent",
        "vip",
        "not-urgent-after-all",
        "billing",
    ]
    assert decisions.priority is not None
    assert (decisions.priority.value, decisions.priority.rule) == ("high", "vip")
    assert decisions.overridden == [("priority", "urgent", "urgent", "vip")]
    assert set(decisions.tags) == {"vip", "billing"}
    assert decisions.stopped_by == "billing"


def test_conversation_contact_and_header_conditions(tmp_path: Path) -> None:
    engine = compiled(
        tmp_path,
        """\
        tags: [vip]
        rules:
          - name: stale-follow-up
            when: {new_conversation: false, age: {gt: 2d}, message_count: {gte: 3}}
            then: {priority: high}
          - name: vip-contact
            when: {contact_tags: vip, contact_known: true}
            then: {priority: urgent}
          - name: outlook-high
            when: {headers: {x-priority: "1", x-mailer: {contains: outlook}}}
            then: {tag: vip}
          - name: pdf
            when: {attachment_type: application/pdf, has_attachment: true}
            then: {tag: vip}
        """,
    )
    assert matched(engine, new_conversation=False, age=timedelta(days=3), message_count=4) == [
        "stale-follow-up"
    ]
    assert matched(engine, new_conversation=False, age=timedelta(days=1), message_count=4) == []
    assert matched(engine, contact_tags=frozenset({"vip"}), contact_known=True) == ["vip-contact"]
    headers = {"x-priority": "1", "x-mailer": "Microsoft Outlook 16.0"}
    assert matched(engine, headers=headers) == ["outlook-high"]
    assert matched(engine, headers={"x-priority": "3", "x-mailer": "Outlook"}) == []
    assert matched(engine, attachment_types=("text/plain", "application/pdf")) == ["pdf"]


HOURS = """\
    timezone: Europe/Helsinki
    calendars:
      office:
        timezone: Europe/Helsinki
        hours: {mon-fri: "08:00-17:00", sat: "22:00-02:00"}
        holidays: [2026-12-24]
    rules:
      - {name: closed, when: {out_of_hours: office}, then: {priority: low}}
      - {name: weekend, when: {weekday: [sat, sun]}, then: {priority: low}}
"""


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("2026-11-25T05:59", ["closed"]),  # Wednesday 07:59 in Helsinki: not open yet
        ("2026-11-25T06:00", []),  # 08:00 Helsinki: open
        ("2026-11-25T15:00", ["closed"]),  # 17:00 Helsinki: closed
        ("2026-07-01T05:30", []),  # summer time: 08:30 Helsinki, open
        ("2026-12-24T10:00", ["closed"]),  # a holiday
        ("2026-11-28T21:00", ["weekend"]),  # Saturday 23:00: the late shift is open
        ("2026-11-28T23:30", ["weekend"]),  # Sunday 01:30: still Saturday's shift
        ("2026-11-29T00:30", ["closed", "weekend"]),  # Sunday 02:30: closed
    ],
)
def test_business_hours_are_read_in_the_calendars_zone(
    tmp_path: Path, utc: str, expected: list[str]
) -> None:
    engine = compiled(tmp_path, HOURS)
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert matched(engine, now=now) == expected


MANY = """\
    tags: [a, b, c]
    rules:
      - {name: k1, when: {body: {any_keyword: [lasku, arve]}}, then: {tag: a}}
      - {name: k2, when: {subject: {any_keyword: [lasku]}, language: fi}, then: {tag: b}}
      - {name: r1, when: {body: {regex: '\\d{3}'}}, then: {tag: c}}
      - {name: any1, when: {any: [{language: et}, {subject: {equals: arve}}]}, then: {tag: a}}
      - {name: not1, when: {not: {language: fi}}, then: {tag: b}}
      - name: mixed
        when:
          all:
            - body: {contains: "1"}
            - any: [{channel: sms}, {from_domain: x.example}]
        then: {tag: c}
      - name: header
        when: {headers: {x-priority: "1"}, to: {ends_with: "@northwind.example"}}
        then: {tag: a}
      - name: nested
        when:
          any:
            - all: [{body: {any_keyword: [arve]}}, {not: {subject: {contains: re}}}]
            - language: sv
        then: {tag: b}
      # A header compared when the rule is looked at (its keyword triggers the rule), present
      # or absent.
      - name: keyword-and-header
        when: {body: {any_keyword: [hei]}, headers: {x-priority: ["1", "2"]}, channel: email}
        then: {tag: c}
"""

_WORDS = st.sampled_from(["lasku", "arve", "LASKU", "re:", "123", "1", "x", "Arve", "hei", ""])


_FACTS = st.builds(
    Facts,
    now=st.just(NOW),
    body=st.lists(_WORDS, max_size=6).map(" ".join),
    subject=st.lists(_WORDS, max_size=3).map(" ".join),
    language=st.sampled_from(["fi", "et", "sv", ""]),
    channel=st.sampled_from(["email", "sms"]),
    from_address=st.sampled_from(["someone@x.example", "someone@y.example"]),
    to=st.just(("support@northwind.example",)),
    headers=st.dictionaries(
        st.sampled_from(["x-priority", "x-mailer"]), st.sampled_from(["1", "3", "Outlook"])
    ),
    auto_submitted=st.booleans(),
)


def assert_production_finds_what_the_trace_finds(engine: CompiledRules, facts: Facts) -> None:
    """Production asks only the rules the indexes point at, each through its predicate
    (rules/predicates.py); the trace walks every rule's condition tree."""
    fast = [r.rule.name for r in engine.evaluate(facts).matched]
    full = [r.rule.name for r in engine.evaluate(facts, trace=True).matched]
    assert fast == full


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(facts=_FACTS)
def test_the_index_never_skips_a_rule_that_matches(tmp_path: Path, facts: Facts) -> None:
    assert_production_finds_what_the_trace_finds(compiled(tmp_path, MANY), facts)


def test_a_word_boundary_that_cannot_work_is_refused(tmp_path: Path) -> None:
    from rules.errors import RulesInvalid

    with pytest.raises(RulesInvalid) as raised:
        compiled(
            tmp_path,
            """\
            rules:
              - {name: invoice, when: {body: {regex: '\\bсчёт\\s*\\d+'}}, then: {priority: high}}
            """,
        )
    assert "knows only ASCII letters" in str(raised.value.problems[0])


def test_hundreds_of_regexes_on_one_field_compile(tmp_path: Path) -> None:
    lines = [
        f"  - {{name: r{n}, when: {{body: {{regex: '(?i)order\\s*#?{n}\\d{{2,}}'}}}}, "
        "then: {priority: high}}"
        for n in range(700)
    ]
    engine = compiled(tmp_path, "rules:\n" + "\n".join(lines) + "\n")
    assert matched(engine, body="Where is ORDER #69912?") == ["r6", "r69", "r699"]


def test_a_condition_nested_deeper_than_python_parses_still_decides(tmp_path: Path) -> None:
    # Each rule's condition becomes one Python expression (rules/predicates.py); past a depth
    # the subtree is asked through the condition tree instead. 251 `not`s: an odd number.
    condition = "{body: {any_keyword: [kiire]}}"
    for _ in range(251):
        condition = f"{{not: {condition}}}"
    engine = compiled(
        tmp_path,
        f"""\
        rules:
          - {{name: deep, when: {condition}, then: {{priority: high}}}}
          - {{name: plain, when: {{body: {{any_keyword: [kiire]}}}}, then: {{tag: x}}}}
        tags: [x]
        """,
    )
    assert matched(engine, body="Tämä on kiire") == ["plain"]
    assert matched(engine, body="Ei mitään") == ["deep"]


_LEAVES = st.sampled_from(
    [
        {"body": {"any_keyword": ["lasku"]}},
        {"body": {"any_keyword": ["arve", "hei"]}},
        {"subject": {"contains": "re"}},
        {"body": {"regex": "\\d{3}"}},
        {"language": "fi"},
        {"language": ["et", "sv"]},
        {"channel": "sms"},
        {"from_domain": "x.example"},
        {"headers": {"x-priority": "1"}},
        {"headers": {"x-mailer": {"starts_with": "out"}}},
        {"to": {"ends_with": "@northwind.example"}},
        {"auto_submitted": True},
    ]
)
_CONDITIONS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda children: {"all": children}),
        st.lists(inner, min_size=1, max_size=3).map(lambda children: {"any": children}),
        inner.map(lambda child: {"not": child}),
    ),
    max_leaves=8,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(conditions=st.lists(_CONDITIONS, min_size=1, max_size=6), facts=_FACTS)
def test_any_nesting_of_conditions_decides_as_the_condition_tree(
    tmp_path: Path, conditions: list[dict[str, object]], facts: Facts
) -> None:
    rules = [
        {"name": f"r{number}", "when": condition, "then": {"tag": "a"}}
        for number, condition in enumerate(conditions)
    ]
    engine = compiled(tmp_path, json.dumps({"tags": ["a"], "rules": rules}))
    assert_production_finds_what_the_trace_finds(engine, facts)


def test_a_regex_for_a_blank_subject_matches_an_empty_one(tmp_path: Path) -> None:
    engine = compiled(
        tmp_path,
        """\
        rules:
          - {name: no-subject, when: {subject: {regex: '^\\s*$'}}, then: {priority: low}}
        """,
    )
    for subject, expected in (("", ["no-subject"]), ("   ", ["no-subject"]), ("Hei", [])):
        facts = Facts(now=NOW, subject=subject)
        assert [r.rule.name for r in engine.evaluate(facts).matched] == expected
        assert [r.rule.name for r in engine.evaluate(facts, trace=True).matched] == expected


def test_undecodable_bytes_in_a_file_name_match_as_question_marks(tmp_path: Path) -> None:
    # The email package carries bytes no charset decodes as lone surrogates; RE2 refuses
    # those, so every RE2 matcher sees "?" in their place instead of failing the message.
    engine = compiled(
        tmp_path,
        """\
        rules:
          - {name: pdf, when: {attachment_name: {glob: "*.pdf"}}, then: {tag: a}}
          - {name: odd, when: {attachment_name: {regex: 'lasku\\?'}}, then: {tag: b}}
          - {name: body, when: {body: {regex: 'tilaus \\?\\d+'}}, then: {tag: c}}
        tags: [a, b, c]
        """,
    )
    names = ("lasku\udcff.pdf",)
    assert matched(engine, attachment_names=names, body="tilaus \udce4123") == [
        "pdf",
        "odd",
        "body",
    ]
