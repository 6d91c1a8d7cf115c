"""The assignment strategies decide from a snapshot of loads and pointers: no store needed.

(How the snapshot is read from and written back to a real store is tested end to end in
tests/routing/test_rules_pass.py and tests/test_cli_assign.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from rules.assignment import Candidate, Workload, choose, why_not
from rules.calendars import Calendar
from rules.model import Agent, Assign, RuleSet, Team

HELSINKI = ZoneInfo("Europe/Helsinki")
#: Wednesday 2026-11-25, 12:00 in Helsinki.
NOON = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
#: Saturday 2026-11-28, 12:00 in Helsinki.
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

OFFICE = Calendar(
    name="office",
    zone=HELSINKI,
    hours=tuple(((time(8), time(17)),) if day < 5 else () for day in range(7)),
)


def desk(
    strategy: str = "round_robin", *, fallback: str = "least_loaded", **agents: Agent
) -> RuleSet:
    people = agents or {
        "aino": Agent("aino", languages=("fi", "en"), capacity=2),
        "mart": Agent("mart", languages=("et", "fi", "en"), capacity=2),
        "olga": Agent("olga", languages=("ru", "en"), skills=("security",), capacity=2),
    }
    team = Team("desk", members=tuple(people), strategy=strategy, fallback=fallback)
    return RuleSet(
        rules=(), agents=dict(people), teams={"desk": team}, calendars={}, tags={}, zone=HELSINKI
    )


def turns(ruleset: RuleSet, workload: Workload, count: int, **assign: object) -> list[str]:
    chosen = []
    for number in range(count):
        choice = choose(
            ruleset, workload, Assign(team="desk", **assign), Candidate(id=number), NOON
        )  # type: ignore[arg-type]
        chosen.append(choice.agent)
    return chosen


def test_round_robin_starts_after_the_pointer_and_advances_it() -> None:
    workload = Workload(pointers={"desk": "mart"})
    assert turns(desk(), workload, 4) == ["olga", "aino", "mart", "olga"]
    assert workload.pointers["desk"] == "olga"


def test_round_robin_skips_who_cannot_take_it_and_says_why() -> None:
    ruleset = desk()
    workload = Workload(loads={"aino": 2})
    choice = choose(ruleset, workload, Assign(team="desk"), Candidate(language="ru"), NOON)
    assert choice.agent == "olga"
    assert choice.skipped == {"aino": "does not speak ru", "mart": "does not speak ru"}


def test_least_loaded_picks_the_lightest_and_breaks_ties_in_turn_order() -> None:
    ruleset = desk("least_loaded")
    workload = Workload(loads={"aino": 1, "mart": 0, "olga": 0}, pointers={"desk": "mart"})
    first = choose(ruleset, workload, Assign(team="desk"), Candidate(id=1), NOON)
    assert first.agent == "olga"  # mart and olga tie at 0: olga's turn comes first after mart
    workload.moved(1, None, "", first.agent)
    second = choose(ruleset, workload, Assign(team="desk"), Candidate(id=2), NOON)
    assert second.agent == "mart"
    assert workload.loads == {"aino": 1, "mart": 0, "olga": 1}


def test_capacity_counts_the_loads_kept_up_to_date_within_a_batch() -> None:
    ruleset = desk("least_loaded")
    workload = Workload()
    for number in range(6):
        choice = choose(ruleset, workload, Assign(team="desk"), Candidate(id=number), NOON)
        workload.moved(number, None, "", choice.agent)
    full = choose(ruleset, workload, Assign(team="desk"), Candidate(id=6), NOON)
    assert full.agent == ""
    assert full.skipped == {name: "at capacity (2/2)" for name in ("aino", "mart", "olga")}
    # One of aino's is closed: she can take another.
    workload.status_changed("aino", "open", "closed")
    assert choose(ruleset, workload, Assign(team="desk"), Candidate(id=7), NOON).agent == "aino"


def test_sticky_returns_to_the_contacts_last_agent_and_falls_back_with_a_note() -> None:
    ruleset = desk("sticky", fallback="round_robin")
    workload = Workload(latest={7: [(10, "olga"), (9, "aino")]})
    again = choose(ruleset, workload, Assign(team="desk"), Candidate(id=11, contact_id=7), NOON)
    assert (again.agent, again.strategy) == ("olga", "sticky")
    # The conversation being assigned is not its own history: the one before it counts.
    itself = choose(ruleset, workload, Assign(team="desk"), Candidate(id=10, contact_id=7), NOON)
    assert itself.agent == "aino"
    workload.loads["olga"] = 2
    busy = choose(ruleset, workload, Assign(team="desk"), Candidate(id=11, contact_id=7), NOON)
    assert busy.strategy == "round_robin"
    assert busy.note == "sticky: olga at capacity (2/2), so round_robin"
    nobody = choose(ruleset, workload, Assign(team="desk"), Candidate(id=12, contact_id=8), NOON)
    assert nobody.note == "sticky: no earlier agent for this contact, so round_robin"


def test_moving_a_conversation_makes_it_the_contacts_latest() -> None:
    workload = Workload(latest={7: [(10, "olga")]}, loads={"olga": 1})
    workload.moved(12, 7, "olga", "mart")
    assert workload.latest[7] == [(12, "mart"), (10, "olga")]
    assert workload.loads == {"olga": 0, "mart": 1}
    assert workload.last_agent_of_contact(7, 13) == "mart"


def test_working_hours_are_judged_in_the_agents_calendar() -> None:
    aino = Agent("aino", hours=OFFICE)
    assert why_not(aino, "", Assign(), 0, NOON) == ""
    assert why_not(aino, "", Assign(), 0, SATURDAY) == "off hours (sat 12:00 Europe/Helsinki)"


def test_away_skills_and_language_reasons() -> None:
    olga = Agent("olga", languages=("ru",), skills=("security",))
    assert why_not(Agent("x", away=True), "", Assign(), 0, NOON) == "away"
    assert why_not(olga, "fi", Assign(), 0, NOON) == "does not speak fi"
    assert why_not(olga, "fi", Assign(match_language=False), 0, NOON) == ""
    assert why_not(olga, "", Assign(skills=("billing", "vat")), 0, NOON) == (
        "lacks skill billing, vat"
    )


def test_a_direct_assignment_is_made_even_when_a_strategy_would_pass_over() -> None:
    ruleset = desk()
    workload = Workload(loads={"aino": 2})
    choice = choose(ruleset, workload, Assign(agent="aino"), Candidate(team="desk"), NOON)
    assert (choice.agent, choice.strategy, choice.team) == ("aino", "direct", "desk")
    assert choice.note == "assigned although at capacity (2/2)"
    assert workload.pointers == {}
