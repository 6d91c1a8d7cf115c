"""Canned answers: picked in the conversation's language with English to fall back on, their
placeholders filled, and every broken file said at once by the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.answers import AnswerError, load_answers


def write(folder: Path, name: str, text: str | bytes) -> None:
    folder.mkdir(exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    (folder / name).write_bytes(data)


def test_an_answer_in_the_customers_language_with_english_to_fall_back_on(tmp_path: Path) -> None:
    folder = tmp_path / "answers"
    write(folder, "shipping.fi.md", "Hei {customer_first_name}, tilauksesi lähti. T. {agent_name}")
    write(folder, "shipping.en.md", "Hi {customer_first_name}, your order shipped. {agent_name}")
    answers, problems = load_answers(folder)
    assert problems == []
    values = {"customer_first_name": "Aino", "agent_name": "Esko"}
    assert answers.render("shipping", "fi", values) == "Hei Aino, tilauksesi lähti. T. Esko"
    assert answers.pick("shipping", "et")[0] == "en"
    assert answers.render("shipping", "et", values).startswith("Hi Aino,")
    with pytest.raises(AnswerError, match=r"no answer named 'refund'.*known: shipping"):
        answers.pick("refund", "fi")


def test_the_check_says_every_problem_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "answers"
    write(folder, "refund.fi.md", "Hei {customer_name}, palautus {order_total}.")
    write(folder, "greeting.en.md", "Hello {customer_name")
    write(folder, "empty.en.md", "  \n")
    write(folder, "latin1.en.md", "Grüße".encode("latin-1"))
    write(folder, "Notes.txt", "scratch")
    write(folder, "ok.en.md", "Literal {{braces}} and {subject}.")
    answers, problems = load_answers(folder)
    assert sorted(answers.texts) == ["ok"]
    assert answers.render("ok", "en", {"subject": "Tilaus"}) == "Literal {braces} and Tilaus."
    joined = "\n".join(problems)
    assert "refund.fi.md: unknown placeholder order_total" in joined
    assert "greeting.en.md: braces do not pair" in joined
    assert "empty.en.md: empty" in joined
    assert "latin1.en.md: not UTF-8" in joined
    assert "Notes.txt: not NAME.LANG.md" in joined
    assert len(problems) == 5
