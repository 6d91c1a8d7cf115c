"""`extract`: what a rule finds in a message (an order number) is remembered for canned
answers; in the customer's words in any language, the later rule's find winning, nothing
where nothing is found, and a broken extract refused with where and why."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules.answers import AnswerError, load_answers
from rules.engine import CompiledRules
from rules.errors import RulesInvalid
from rules.facts import Facts
from rules.holder import compile_file
from tests.rules.test_engine import NOW

ORDERS = """\
    rules:
      - name: order-number
        when: {channel: email}
        then:
          extract:
            order_number: '(?i)(?:order|tilau|заказ|παραγγελ)\\D{0,20}?(\\d{4,10})'
      - name: invoice-number
        when: {subject: {contains: lasku}}
        then:
          extract: {order_number: 'INV-\\d+', invoice: 'INV-\\d+'}
"""


def compiled(tmp_path: Path, text: str) -> CompiledRules:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_file(path)


def extracted(engine: CompiledRules, subject: str, body: str) -> dict[str, tuple[str, str]]:
    decisions = engine.evaluate(Facts(now=NOW, subject=subject, body=body)).decisions
    return {name: (found.value, found.rule) for name, found in decisions.extracted.items()}


@pytest.mark.parametrize(
    ("subject", "body", "number"),
    [
        ("Missä tilaukseni?", "Tilausnumero 104233, tilattu maanantaina.", "104233"),
        ("Заказ № 55512 не пришёл", "", "55512"),  # the subject first
        ("", "Η παραγγελία μου 77001 καθυστερεί", "77001"),
        ("Order #2024-8812", "", "2024"),  # the first run of digits after the word
    ],
)
def test_the_order_number_is_found_in_the_customers_language(
    tmp_path: Path, subject: str, body: str, number: str
) -> None:
    found = extracted(compiled(tmp_path, ORDERS), subject, body)
    assert found == {"order_number": (number, "order-number")}


def test_a_later_rule_wins_and_a_pattern_without_a_group_keeps_its_whole_match(
    tmp_path: Path,
) -> None:
    found = extracted(compiled(tmp_path, ORDERS), "Lasku INV-8812", "tilaus 104233")
    assert found == {
        "order_number": ("INV-8812", "invoice-number"),
        "invoice": ("INV-8812", "invoice-number"),
    }
    assert extracted(compiled(tmp_path, ORDERS), "Hei", "Kiitos paljon!") == {}


@pytest.mark.parametrize(
    ("extract", "said"),
    [
        ("{Order: '\\d+'}", "a name of lowercase letters"),
        ("{customer_name: '\\w+'}", "{customer_name} is filled from the conversation"),
        ("{order: '(\\d+'}", "not a valid RE2 regex"),
        ("{order: '(\\d+)-(\\d+)'}", "at most one group"),
        ("'\\d+'", "expected a mapping of names to patterns"),
    ],
)
def test_a_broken_extract_is_refused_with_why(tmp_path: Path, extract: str, said: str) -> None:
    with pytest.raises(RulesInvalid) as raised:
        compiled(
            tmp_path,
            f"""\
            rules:
              - {{name: r, when: {{channel: email}}, then: {{extract: {extract}}}}}
            """,
        )
    assert said in str(raised.value.problems[0])
    assert "line 2" in str(raised.value.problems[0]) or ":2:" in str(raised.value.problems[0])


def test_answers_may_use_what_the_rules_extract_and_refuse_when_it_was_not_found(
    tmp_path: Path,
) -> None:
    (tmp_path / "shipping.en.md").write_text("Order {order_number} left today.", "utf-8")
    _, problems = load_answers(tmp_path)
    assert problems == [
        "shipping.en.md: unknown placeholder order_number (allowed: {agent_name}, "
        "{conversation_id}, {customer_first_name}, {customer_name}, {next_open}, {subject})"
    ]
    answers, problems = load_answers(tmp_path, frozenset({"order_number"}))
    assert problems == []
    assert answers.render("shipping", "fi", {"order_number": "104233"}) == (
        "Order 104233 left today."
    )
    with pytest.raises(AnswerError, match=r"needs \{order_number\}, which no rule found"):
        answers.render("shipping", "fi", {})
