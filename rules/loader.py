"""A rules file (and the files it includes) into a RuleSet, or every problem with it at once.

The loader decides nothing about messages: it reads, checks and builds typed objects. Checks go
beyond types: every name an admin writes (agent, team, tag, calendar, field, action, matcher)
must exist, and a misspelt one is answered with the closest valid name.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from inbox.normalize.language import supported_codes
from rules.answers import PLACEHOLDERS
from rules.calendars import (
    WEEKDAYS,
    Calendar,
    check_country,
    parse_days,
    parse_ranges,
    parse_zone,
)
from rules.conditions import (
    All,
    Always,
    AnyOf,
    Condition,
    HeaderLeaf,
    HoursLeaf,
    Leaf,
    Not,
    WeekdayLeaf,
)
from rules.errors import Mark, Problem, RulesInvalid, unknown
from rules.fields import FIELDS, SPECIAL_KEYS, Field, Kind
from rules.matchers import (
    COMPARISON_OPS,
    TEXT_MATCHERS,
    Compare,
    Equals,
    Is,
    compile_re2,
    parse_duration,
)
from rules.model import (
    PRIORITIES,
    SLA_TARGETS,
    STATUSES,
    STRATEGIES,
    Actions,
    Agent,
    Assign,
    AutoReply,
    Escalation,
    Extract,
    Notify,
    Rule,
    RuleSet,
    SlaPolicy,
    Team,
)
from rules.source import Document, Path_, dotted, parse_document, read_document

TOP_KEYS = ("timezone", "include", "tags", "calendars", "agents", "teams", "rules", "sla")
SLA_KEYS = ("name", "when", "calendar", *SLA_TARGETS, "escalate", "description")
ESCALATE_KEYS = ("before", "breached", "then")
#: What an escalation may do (a status change or an extract would make no sense there).
ESCALATE_ACTIONS = ("tag", "untag", "priority", "assign", "notify")
RULE_KEYS = ("name", "description", "when", "then", "stop", "enabled")
ACTION_KEYS = (
    "tag",
    "untag",
    "tag_contact",
    "priority",
    "status",
    "assign",
    "notify",
    "extract",
    "auto_reply",
    "survey",
)
AUTO_REPLY_KEYS = ("answer", "calendar", "per_contact", "per_hour")
ANSWER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: What `extract` may call what it finds: a canned answer's placeholder, not one of the
#: placeholders every conversation has (rules/answers.py).
EXTRACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
AGENT_KEYS = (
    "name",
    "slack",
    "email",
    "teams",
    "languages",
    "skills",
    "capacity",
    "calendar",
    "hours",
    "timezone",
    "away",
)
TEAM_KEYS = ("members", "strategy", "fallback", "slack_channel", "description")
CALENDAR_KEYS = ("timezone", "hours", "holidays", "country", "subdivision", "exceptions", "ical")
ASSIGN_KEYS = ("agent", "team", "strategy", "skills", "match_language", "reassign")
NOTIFY_KEYS = ("agent", "team", "channel", "assignee", "text")
CHANNELS = ("email", "sms", "chat")
LANGUAGES = sorted(supported_codes())
MAX_INCLUDES = 100


def load_rules(path: Path | str, *, text: str | None = None) -> RuleSet:
    """Raises RulesInvalid with every problem found, in file order. `text`: the main file's
    content as given (a candidate pasted in the web desk), read as if it were at `path`, so
    that its includes are found beside the real one."""
    documents, globs = _read_with_includes(Path(path), text)
    ruleset = _Builder(documents).build()
    ruleset.watch_globs = tuple(globs)
    return ruleset


def _read_with_includes(main: Path, text: str | None) -> tuple[list[Document], list[str]]:
    """The documents, and the include globs (a new file matching one is a change too)."""
    documents: list[Document] = []
    globs: list[str] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def visit(path: Path, shown: str) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return  # included twice or in a cycle: its definitions count once
        seen.add(resolved)
        try:
            if text is not None and path is main:
                document = parse_document(text, shown)
                document.source = str(path)
            else:
                document = read_document(path, shown)
        except RulesInvalid as invalid:
            problems.extend(invalid.problems)
            return
        documents.append(document)
        data = document.data if isinstance(document.data, dict) else {}
        includes = data.get("include", [])
        for index, pattern in enumerate(includes if isinstance(includes, list) else [includes]):
            key: Path_ = ("include", index) if isinstance(includes, list) else ("include",)
            if not isinstance(pattern, str) or not pattern:
                problems.append(Problem(document.at(key), "include", "expected a file name"))
                continue
            base = path.parent
            matches = sorted(glob.glob(str(base / pattern))) if glob.has_magic(pattern) else []
            if glob.has_magic(pattern):
                globs.append(str(base / pattern))
            targets = [Path(m) for m in matches] or [base / pattern]
            if glob.has_magic(pattern) and not matches:
                problems.append(
                    Problem(document.at(key), "include", f"no file matches '{pattern}'")
                )
                continue
            for target in targets:
                if not target.is_file():
                    problems.append(
                        Problem(document.at(key), "include", f"'{pattern}': file not found")
                    )
                    continue
                if len(seen) >= MAX_INCLUDES:
                    problems.append(Problem(document.at(key), "include", "too many includes"))
                    return
                visit(target, _shown(target, main))

    visit(main, str(main))
    if problems:
        raise RulesInvalid(problems)
    return documents, globs


def _shown(target: Path, main: Path) -> str:
    try:
        return str(target.relative_to(main.parent)) if not main.is_absolute() else str(target)
    except ValueError:
        return str(target)


class _Builder:
    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents
        #: Calendars' iCal feeds as read: part of the rules' version, and watched for changes.
        self.feeds: dict[str, bytes] = {}
        self.problems: list[Problem] = []
        self.calendars: dict[str, Calendar] = {}
        self.agents: dict[str, Agent] = {}
        self.teams: dict[str, Team] = {}
        self.tags: dict[str, str] = {}
        self.tags_declared = False
        self.defined_at: dict[tuple[str, str], Mark] = {}
        self.zone = ZoneInfo("UTC")

    # -- the whole ---------------------------------------------------------------------------

    def build(self) -> RuleSet:
        for number, document in enumerate(self.documents):
            data = self.mapping(document, (), document.data, TOP_KEYS, what="rules file")
            if data is None:
                continue
            if "timezone" in data:
                if number:
                    self.fail(document, ("timezone",), "set the time zone in the main file only")
                else:
                    self.zone = (
                        self.time_zone(document, ("timezone",), data["timezone"]) or self.zone
                    )
            self.read_tags(document, data.get("tags"))
            self.read_calendars(document, data.get("calendars"))
        for document in self.documents:
            data = document.data if isinstance(document.data, dict) else {}
            self.read_agents(document, data.get("agents"))
        for document in self.documents:
            data = document.data if isinstance(document.data, dict) else {}
            self.read_teams(document, data.get("teams"))
        self.join_memberships()
        if not self.tags_declared:
            self.tags = {tag: "" for tag in self.tags_added_by_rules()}
        rules: list[Rule] = []
        names: dict[str, Mark] = {}
        for document in self.documents:
            data = document.data if isinstance(document.data, dict) else {}
            for rule in self.read_rules(document, data.get("rules")):
                if rule.name in names:
                    self.fail_at(
                        rule.mark,
                        "rules",
                        f"rule name '{rule.name}' is used twice "
                        f"(first at {names[rule.name]}); names must be unique",
                    )
                names.setdefault(rule.name, rule.mark)
                rules.append(rule)
        policies: list[SlaPolicy] = []
        for document in self.documents:
            data = document.data if isinstance(document.data, dict) else {}
            policies.extend(self.read_sla(document, data.get("sla")))
        if self.problems:
            raise RulesInvalid(self.problems)
        ordered = tuple(_with_index(rule, index) for index, rule in enumerate(rules))
        return RuleSet(
            rules=ordered,
            agents=self.agents,
            teams=self.teams,
            calendars=self.calendars,
            tags=self.tags,
            zone=self.zone,
            files=(
                *(document.source or document.file for document in self.documents),
                *sorted(self.feeds),
            ),
            version=self.version(),
            sla=tuple(policies),
        )

    # -- SLA ---------------------------------------------------------------------------------

    def read_sla(self, document: Document, value: Any) -> list[SlaPolicy]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(document, ("sla",), "expected a list of SLA policies ('- name: ...')")
            return []
        policies = []
        for index, spec in enumerate(value):
            policy = self.sla_policy(document, ("sla", index), spec)
            if policy is not None:
                policies.append(policy)
        return policies

    def sla_policy(self, document: Document, path: Path_, spec: Any) -> SlaPolicy | None:
        data = self.mapping(
            document, path, spec, SLA_KEYS, what="an SLA policy", required=("name",)
        )
        if data is None or "name" not in data:
            return None
        name = self.text(document, (*path, "name"), data["name"])
        when = (
            self.condition(document, (*path, "when"), data["when"]) if "when" in data else Always()
        )
        calendar = None
        if "calendar" in data:
            found = self.name_of(
                document, (*path, "calendar"), data["calendar"], list(self.calendars), "calendar"
            )
            calendar = self.calendars.get(found or "")
        targets: dict[str, timedelta] = {}
        for target in SLA_TARGETS:
            if target in data:
                try:
                    targets[target] = parse_duration(data[target])
                except ValueError as error:
                    self.fail(document, (*path, target), str(error))
        if not any(target in data for target in SLA_TARGETS):
            self.fail(document, path, f"no target: give one of {', '.join(SLA_TARGETS)}")
        escalate = []
        steps = data.get("escalate") or []
        for index, step in enumerate(steps if isinstance(steps, list) else [steps]):
            found_step = self.escalation(document, (*path, "escalate", index), step, targets)
            if found_step is not None:
                escalate.append(found_step)
        if name is None or when is None:
            return None
        return SlaPolicy(name, when, calendar, targets, tuple(escalate), document.at(path))

    def escalation(
        self, document: Document, path: Path_, spec: Any, targets: dict[str, timedelta]
    ) -> Escalation | None:
        data = self.mapping(
            document, path, spec, ESCALATE_KEYS, what="an escalation", required=("then",)
        )
        if data is None or "then" not in data:
            return None
        if ("before" in data) == ("breached" in data):
            self.fail(document, path, "give before: {TARGET: DURATION} or breached: TARGET")
            return None
        before: timedelta | None = None
        if "before" in data:
            spec_before = data["before"]
            if not isinstance(spec_before, dict) or len(spec_before) != 1:
                self.fail(document, (*path, "before"), "expected one target: {first_response: 15m}")
                return None
            [(target, duration)] = spec_before.items()
            try:
                before = parse_duration(duration)
            except ValueError as error:
                self.fail(document, (*path, "before", target), str(error))
                return None
        else:
            target = data["breached"]
        if target not in targets:
            known = ", ".join(targets) or "none"
            self.fail(
                document,
                (*path, "before" if before is not None else "breached"),
                f"'{target}' is not a target of this policy (its targets: {known})",
            )
            return None
        then_spec = data["then"]
        if isinstance(then_spec, dict):
            for key in then_spec:
                if key not in ESCALATE_ACTIONS:
                    self.fail(
                        document,
                        (*path, "then", key),
                        f"an escalation may {', '.join(ESCALATE_ACTIONS)}; not {key}",
                        at_key=True,
                    )
                    return None
        then = self.actions(document, (*path, "then"), then_spec)
        if then is None:
            return None
        return Escalation(str(target), before, then)

    def version(self) -> str:
        digest = hashlib.sha256()
        for document in self.documents:
            digest.update(document.file.encode())
            digest.update(repr(document.data).encode())
        for name, data in sorted(self.feeds.items()):
            digest.update(name.encode())
            digest.update(data)
        return digest.hexdigest()[:12]

    # -- problems ----------------------------------------------------------------------------

    def fail(self, document: Document, path: Path_, message: str, *, at_key: bool = False) -> None:
        mark = document.key_at(path) if at_key else document.at(path)
        self.problems.append(Problem(mark, dotted(path), message))

    def fail_at(self, mark: Mark, key: str, message: str) -> None:
        self.problems.append(Problem(mark, key, message))

    # -- small readers -----------------------------------------------------------------------

    def mapping(
        self,
        document: Document,
        path: Path_,
        value: Any,
        allowed: Sequence[str],
        *,
        what: str,
        required: Sequence[str] = (),
    ) -> dict[str, Any] | None:
        if value is None and not path:
            return {}
        if not isinstance(value, dict):
            self.fail(document, path, f"expected a mapping ({what}), got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.fail(
                    document,
                    (*path, key),
                    unknown("key", key, allowed),
                    at_key=True,
                )
        for key in required:
            if key not in value:
                self.fail(document, path, f"'{key}' is missing ({what})")
        return {key: item for key, item in value.items() if key in allowed}

    def text(self, document: Document, path: Path_, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(document, path, f"expected text, got {_kind(value)}")
            return None
        text = str(getattr(value, "source", value)).strip()
        if not text:
            self.fail(document, path, "expected text, got an empty value")
            return None
        return text

    def texts(self, document: Document, path: Path_, value: Any) -> tuple[str, ...]:
        """One text or a list of texts."""
        if isinstance(value, list):
            if not value:
                self.fail(document, path, "expected one or more values, got an empty list")
            found = [self.text(document, (*path, i), item) for i, item in enumerate(value)]
            return tuple(item for item in found if item is not None)
        single = self.text(document, path, value)
        return (single,) if single is not None else ()

    def flag(self, document: Document, path: Path_, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.fail(document, path, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def integer(self, document: Document, path: Path_, value: Any, minimum: int = 0) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(document, path, f"expected a whole number of at least {minimum}")
            return None
        return value

    def choice(
        self, document: Document, path: Path_, value: Any, choices: Sequence[str], what: str
    ) -> str | None:
        text = self.text(document, path, value)
        if text is None:
            return None
        if text not in choices:
            self.fail(document, path, unknown(what, text, choices))
            return None
        return text

    def name_of(
        self, document: Document, path: Path_, value: Any, known: Sequence[str], what: str
    ) -> str | None:
        """A reference to something defined in the file (an agent, a team, a tag)."""
        text = self.text(document, path, value)
        if text is not None and text not in known:
            self.fail(document, path, unknown(what, text, known))
            return None
        return text

    def time_zone(self, document: Document, path: Path_, value: Any) -> ZoneInfo | None:
        text = self.text(document, path, value)
        if text is None:
            return None
        try:
            return parse_zone(text)
        except ValueError as error:
            self.fail(document, path, str(error))
            return None

    def define(self, kind: str, name: str, document: Document, path: Path_) -> bool:
        """Names are unique per kind across all files; the second definition is the error."""
        mark = document.key_at(path)
        first = self.defined_at.get((kind, name))
        if first is not None:
            self.fail(
                document, path, f"{kind} '{name}' is defined twice (first at {first})", at_key=True
            )
            return False
        self.defined_at[(kind, name)] = mark
        return True

    # -- definitions -------------------------------------------------------------------------

    def read_tags(self, document: Document, value: Any) -> None:
        if value is None:
            return
        self.tags_declared = True
        if isinstance(value, list):
            entries = {}
            for index, item in enumerate(value):
                name = self.text(document, ("tags", index), item)
                if name is not None and name in entries:
                    self.fail(document, ("tags", index), f"tag '{name}' is listed twice")
                elif name is not None:
                    entries[name] = ""
        elif isinstance(value, dict):
            entries = {str(k): str(v or "") for k, v in value.items()}
        else:
            self.fail(document, ("tags",), "expected a list of tags or a mapping tag: description")
            return
        for name, description in entries.items():
            if self.define("tag", name, document, ("tags", name)):
                self.tags[name] = description

    def read_calendars(self, document: Document, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.fail(document, ("calendars",), "expected a mapping of calendar names")
            return
        for name, spec in value.items():
            path: Path_ = ("calendars", name)
            calendar = self.calendar(document, path, name, spec)
            if calendar is not None and self.define("calendar", name, document, path):
                self.calendars[name] = calendar

    def calendar(self, document: Document, path: Path_, name: str, spec: Any) -> Calendar | None:
        data = self.mapping(
            document, path, spec, CALENDAR_KEYS, what="a calendar", required=("timezone", "hours")
        )
        if data is None or "timezone" not in data or "hours" not in data:
            return None
        zone = self.time_zone(document, (*path, "timezone"), data["timezone"])
        hours = self.weekly_hours(document, (*path, "hours"), data["hours"])
        holidays = set()
        for index, day in enumerate(data.get("holidays") or []):
            try:  # dates stay text in rules files (rules/source.py)
                holidays.add(date.fromisoformat(str(day)))
            except ValueError:
                self.fail(document, (*path, "holidays", index), "expected a date (2026-12-24)")
        country = str(data.get("country") or "").upper()
        subdivision = str(data.get("subdivision") or "").upper()
        if subdivision and not country:
            self.fail(document, (*path, "subdivision"), "a subdivision needs its country")
        elif country and (reason := check_country(country, subdivision)):
            self.fail(document, (*path, "country"), reason)
        exceptions = self.calendar_exceptions(document, (*path, "exceptions"), data)
        if "ical" in data:
            holidays |= self.ical_days(document, (*path, "ical"), data["ical"])
        if zone is None or hours is None:
            return None
        return Calendar(
            name,
            zone,
            hours,
            frozenset(holidays),
            country=country,
            subdivision=subdivision,
            exceptions=exceptions,
        )

    def calendar_exceptions(
        self, document: Document, path: Path_, data: dict[str, Any]
    ) -> dict[date, tuple[Any, ...]]:
        value = data.get("exceptions")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(document, path, 'expected dates to hours, like {2026-12-24: "08:00-12:00"}')
            return {}
        found: dict[date, tuple[Any, ...]] = {}
        for day_text, ranges_spec in value.items():
            try:
                day = date.fromisoformat(str(day_text))
            except ValueError:
                self.fail(document, (*path, day_text), "expected a date (2026-12-24)", at_key=True)
                continue
            try:
                found[day] = parse_ranges(str(ranges_spec))
            except ValueError as error:
                self.fail(document, (*path, day_text), str(error))
        return found

    def ical_days(self, document: Document, path: Path_, value: Any) -> set[date]:
        """The days an iCal feed's events cover (a holiday feed, a company closure calendar),
        from last year to three years ahead, recurring events included."""
        import icalendar
        import recurring_ical_events

        base = Path(document.source).parent if document.source else Path.cwd()
        file = base / str(value)
        try:
            data = file.read_bytes()
            self.feeds[str(file)] = data
            feed = icalendar.Calendar.from_ical(data)
        except OSError as error:
            self.fail(document, path, f"cannot read {file}: {error.strerror or error}")
            return set()
        except ValueError as error:
            self.fail(document, path, f"{file} is not an iCalendar file: {error}")
            return set()
        this_year = date.today().year
        days: set[date] = set()
        for event in recurring_ical_events.of(feed).between(
            date(this_year - 1, 1, 1), date(this_year + 4, 1, 1)
        ):
            start = event.get("DTSTART")
            end = event.get("DTEND")
            if start is None:
                continue
            first = _as_date(start.dt)
            last = _as_date(end.dt) if end is not None else first + timedelta(days=1)
            if isinstance(start.dt, date) and not isinstance(start.dt, datetime):
                last -= timedelta(days=1)  # an all-day event's DTEND is the day after
            day = first
            while day <= max(first, last) and len(days) < 10_000:
                days.add(day)
                day += timedelta(days=1)
        return days

    def weekly_hours(self, document: Document, path: Path_, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            self.fail(document, path, 'expected days to hours, like {mon-fri: "08:00-17:00"}')
            return None
        week: list[tuple[Any, ...]] = [()] * 7
        #: How many days the spec that set each day named: a narrower spec overrides a wider
        #: one (`mon-fri: ...` then `fri: closed`); specs of one width add up.
        width = [8] * 7
        ok = True
        for days_spec, ranges_spec in value.items():
            try:
                days = parse_days(days_spec)
            except ValueError as error:
                self.fail(document, (*path, days_spec), str(error), at_key=True)
                ok = False
                continue
            try:
                ranges = parse_ranges(str(ranges_spec))
            except ValueError as error:
                self.fail(document, (*path, days_spec), str(error))
                ok = False
                continue
            for day in days:
                if len(days) < width[day]:
                    week[day], width[day] = ranges, len(days)
                elif len(days) == width[day]:
                    week[day] = week[day] + ranges
        return tuple(week) if ok else None

    def read_agents(self, document: Document, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.fail(document, ("agents",), "expected a mapping of agent names")
            return
        for name, spec in value.items():
            path: Path_ = ("agents", name)
            agent = self.agent(document, path, str(name), spec)
            if agent is not None and self.define("agent", str(name), document, path):
                self.agents[str(name)] = agent

    def agent(self, document: Document, path: Path_, name: str, spec: Any) -> Agent | None:
        data = self.mapping(document, path, spec, AGENT_KEYS, what="an agent")
        if data is None:
            return None
        hours = None
        if "calendar" in data:
            calendar = self.name_of(
                document, (*path, "calendar"), data["calendar"], list(self.calendars), "calendar"
            )
            hours = self.calendars.get(calendar or "")
            if "hours" in data:
                self.fail(document, (*path, "hours"), "give either calendar or hours, not both")
        elif "hours" in data:
            # Without a zone of their own, an agent's hours are in the file's time zone.
            zone = data.get("timezone", self.zone.key)
            spec_hours = {"timezone": zone, "hours": data["hours"]}
            hours = self.calendar(document, path, f"{name}'s hours", spec_hours)
        elif "timezone" in data:
            self.fail(document, (*path, "timezone"), "a time zone needs hours to apply to")
        given = data.get("languages")
        languages = self.texts(document, (*path, "languages"), given) if given else ()
        for index, code in enumerate(languages):
            if code == "no":
                self.fail(
                    document,
                    (*path, "languages", index),
                    "unknown language 'no' (Norwegian is nb, Bokmål, or nn, Nynorsk)",
                )
            elif code not in LANGUAGES:
                self.fail(
                    document, (*path, "languages", index), unknown("language", code, LANGUAGES)
                )
        capacity = self.integer(document, (*path, "capacity"), data.get("capacity", 10))
        away = data.get("away", False)
        return Agent(
            name=name,
            display_name=str(data.get("name", "") or name),
            slack=str(data.get("slack", "") or ""),
            email=str(data.get("email", "") or "").lower(),
            teams=self.texts(document, (*path, "teams"), data["teams"]) if "teams" in data else (),
            languages=languages,
            skills=self.texts(document, (*path, "skills"), data["skills"])
            if "skills" in data
            else (),
            capacity=capacity if capacity is not None else 10,
            hours=hours,
            away=bool(self.flag(document, (*path, "away"), away)),
        )

    def read_teams(self, document: Document, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.fail(document, ("teams",), "expected a mapping of team names")
            return
        for name, spec in value.items():
            path: Path_ = ("teams", name)
            data = self.mapping(document, path, spec, TEAM_KEYS, what="a team")
            if data is None:
                continue
            members = []
            for index, member in enumerate(data.get("members") or []):
                found = self.name_of(
                    document, (*path, "members", index), member, list(self.agents), "agent"
                )
                if found:
                    members.append(found)
            strategy = self.choice(
                document,
                (*path, "strategy"),
                data.get("strategy", "round_robin"),
                STRATEGIES,
                "strategy",
            )
            fallback = self.choice(
                document,
                (*path, "fallback"),
                data.get("fallback", "least_loaded"),
                [s for s in STRATEGIES if s != "sticky"],
                "fallback strategy",
            )
            team = Team(
                name=str(name),
                members=tuple(members),
                strategy=strategy or "round_robin",
                fallback=fallback or "least_loaded",
                slack_channel=str(data.get("slack_channel", "") or ""),
            )
            if self.define("team", str(name), document, path):
                self.teams[str(name)] = team

    def join_memberships(self) -> None:
        """Agents may name their teams, teams their members: both count, checked both ways."""
        for agent in self.agents.values():
            for team_name in agent.teams:
                if team_name not in self.teams:
                    mark = self.defined_at[("agent", agent.name)]
                    self.fail_at(
                        mark, f"agents.{agent.name}.teams", unknown("team", team_name, self.teams)
                    )
                    continue
                team = self.teams[team_name]
                if agent.name not in team.members:
                    self.teams[team_name] = Team(
                        team.name,
                        (*team.members, agent.name),
                        team.strategy,
                        team.fallback,
                        team.slack_channel,
                    )

    def tags_added_by_rules(self) -> set[str]:
        found: set[str] = set()
        for document in self.documents:
            data = document.data if isinstance(document.data, dict) else {}
            thens = [
                rule.get("then") for rule in _as_list(data.get("rules")) if isinstance(rule, dict)
            ]
            for policy in _as_list(data.get("sla")):
                steps = policy.get("escalate") if isinstance(policy, dict) else None
                thens.extend(s.get("then") for s in _as_list(steps) if isinstance(s, dict))
            for then in thens:
                if not isinstance(then, dict):
                    continue
                for key in ("tag", "tag_contact"):
                    value = then.get(key)
                    values = value if isinstance(value, list) else [value]
                    found.update(str(item) for item in values if isinstance(item, str | int))
        return found

    # -- rules -------------------------------------------------------------------------------

    def read_rules(self, document: Document, value: Any) -> list[Rule]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(
                document, ("rules",), "expected a list of rules (each starting with '- name:')"
            )
            return []
        rules = []
        for index, spec in enumerate(value):
            rule = self.rule(document, ("rules", index), spec)
            if rule is not None:
                rules.append(rule)
        return rules

    def rule(self, document: Document, path: Path_, spec: Any) -> Rule | None:
        data = self.mapping(document, path, spec, RULE_KEYS, what="a rule", required=("name",))
        if data is None:
            return None
        name = self.text(document, (*path, "name"), data["name"]) if "name" in data else None
        if "then" not in data:
            self.fail(document, path, "'then' is missing: a rule must do something")
        when = (
            self.condition(document, (*path, "when"), data["when"]) if "when" in data else Always()
        )
        then = self.actions(document, (*path, "then"), data.get("then"))
        stop = self.flag(document, (*path, "stop"), data.get("stop", False))
        enabled = self.flag(document, (*path, "enabled"), data.get("enabled", True))
        if name is None or when is None or then is None or not enabled:
            return None
        return Rule(
            name=name,
            when=when,
            then=then,
            mark=document.at(path),
            stop=bool(stop),
            description=str(data.get("description", "") or ""),
        )

    def actions(self, document: Document, path: Path_, value: Any) -> Actions | None:
        if value is None:
            return None
        data = self.mapping(document, path, value, ACTION_KEYS, what="actions")
        if data is None:
            return None
        if not value:
            self.fail(document, path, "no actions: say what the rule does")
            return None
        tags = list(self.tags)
        tag_lists = {
            key: tuple(
                name
                for index, item in enumerate(_as_list(data[key]))
                if (
                    name := self.name_of(
                        document, _item(path, key, data[key], index), item, tags, "tag"
                    )
                )
            )
            for key in ("tag", "untag", "tag_contact")
            if key in data
        }
        priority = (
            self.choice(document, (*path, "priority"), data["priority"], PRIORITIES, "priority")
            if "priority" in data
            else ""
        )
        status = (
            self.choice(document, (*path, "status"), data["status"], STATUSES, "status")
            if "status" in data
            else ""
        )
        assign = (
            self.assign(document, (*path, "assign"), data["assign"]) if "assign" in data else None
        )
        notify = tuple(
            found
            for index, item in enumerate(_as_list(data.get("notify", [])))
            if (found := self.notify(document, _item(path, "notify", data["notify"], index), item))
        )
        return Actions(
            tag=tag_lists.get("tag", ()),
            untag=tag_lists.get("untag", ()),
            tag_contact=tag_lists.get("tag_contact", ()),
            priority=priority or "",
            status=status or "",
            assign=assign,
            notify=notify,
            extract=self.extracts(document, (*path, "extract"), data["extract"])
            if "extract" in data
            else (),
            auto_reply=self.auto_reply(document, (*path, "auto_reply"), data["auto_reply"])
            if "auto_reply" in data
            else None,
            survey=self.survey(document, (*path, "survey"), data["survey"])
            if "survey" in data
            else "",
        )

    def survey(self, document: Document, path: Path_, value: Any) -> str:
        if not isinstance(value, str) or not ANSWER_NAME.match(value):
            self.fail(document, path, "expected an answer's name (answers/NAME.LANG.md)")
            return ""
        return value

    def auto_reply(self, document: Document, path: Path_, value: Any) -> AutoReply | None:
        spec = {"answer": value} if isinstance(value, str) else value
        data = self.mapping(
            document,
            path,
            spec,
            AUTO_REPLY_KEYS,
            what="auto_reply: an answer",
            required=("answer",),
        )
        if data is None or "answer" not in data:
            return None
        answer = str(data["answer"])
        if not ANSWER_NAME.match(answer):
            where = (*path, "answer") if isinstance(value, dict) else path
            self.fail(document, where, f"'{answer}' is not an answer's name (answers/NAME.LANG.md)")
            return None
        calendar = None
        if "calendar" in data:
            found = self.name_of(
                document, (*path, "calendar"), data["calendar"], list(self.calendars), "calendar"
            )
            calendar = self.calendars.get(found or "")
        reply = AutoReply(answer, calendar)
        try:
            if "per_contact" in data:
                reply = dataclasses.replace(reply, per_contact=parse_duration(data["per_contact"]))
        except ValueError as error:
            self.fail(document, (*path, "per_contact"), str(error))
        if "per_hour" in data:
            per_hour = data["per_hour"]
            if not isinstance(per_hour, int) or isinstance(per_hour, bool) or per_hour < 1:
                self.fail(document, (*path, "per_hour"), "expected a whole number, 1 or more")
            else:
                reply = dataclasses.replace(reply, per_hour=per_hour)
        return reply

    def extracts(self, document: Document, path: Path_, value: Any) -> tuple[Extract, ...]:
        if not isinstance(value, dict) or not value:
            self.fail(document, path, "expected a mapping of names to patterns (order_number: ...)")
            return ()
        found = []
        for name, pattern in value.items():
            where = (*path, str(name))
            if not isinstance(name, str) or not EXTRACT_NAME.match(name):
                self.fail(document, where, "a name of lowercase letters, digits and _", at_key=True)
                continue
            if name in PLACEHOLDERS:
                self.fail(
                    document, where, f"{{{name}}} is filled from the conversation", at_key=True
                )
                continue
            if not isinstance(pattern, str) or not pattern:
                self.fail(document, where, "expected a regex (RE2) as text")
                continue
            try:
                regex = compile_re2(pattern)
            except ValueError as error:
                self.fail(document, where, f"not a valid RE2 regex: {error}")
                continue
            if regex.groups > 1:
                self.fail(document, where, "at most one group: its match is what is kept")
                continue
            found.append(Extract(name, pattern, regex))
        return tuple(found)

    def assign(self, document: Document, path: Path_, value: Any) -> Assign | None:
        data = self.mapping(document, path, value, ASSIGN_KEYS, what="assign: agent or team")
        if data is None:
            return None
        if ("agent" in data) == ("team" in data):
            self.fail(document, path, "give exactly one of agent or team")
            return None
        agent = team = ""
        if "agent" in data:
            agent = (
                self.name_of(document, (*path, "agent"), data["agent"], list(self.agents), "agent")
                or ""
            )
        else:
            team = (
                self.name_of(document, (*path, "team"), data["team"], list(self.teams), "team")
                or ""
            )
        strategy = ""
        if "strategy" in data:
            if agent:
                self.fail(document, (*path, "strategy"), "a strategy applies to a team only")
            strategy = (
                self.choice(document, (*path, "strategy"), data["strategy"], STRATEGIES, "strategy")
                or ""
            )
        skills = self.texts(document, (*path, "skills"), data["skills"]) if "skills" in data else ()
        known_skills = {skill for a in self.agents.values() for skill in a.skills}
        for index, skill in enumerate(skills):
            if skill not in known_skills:
                where = (
                    (*path, "skills", index)
                    if isinstance(data["skills"], list)
                    else (*path, "skills")
                )
                self.fail(document, where, unknown("skill (no agent has it)", skill, known_skills))
        match_language = self.flag(
            document, (*path, "match_language"), data.get("match_language", True)
        )
        reassign = self.flag(document, (*path, "reassign"), data.get("reassign", False))
        if not (agent or team):
            return None
        return Assign(
            agent=agent,
            team=team,
            strategy=strategy,
            skills=skills,
            match_language=bool(match_language),
            reassign=bool(reassign),
        )

    def notify(self, document: Document, path: Path_, value: Any) -> Notify | None:
        data = self.mapping(
            document, path, value, NOTIFY_KEYS, what="notify: agent, team or channel"
        )
        if data is None:
            return None
        targets = [key for key in ("agent", "team", "channel", "assignee") if key in data]
        if len(targets) != 1:
            self.fail(document, path, "give exactly one of agent, team, channel or assignee")
            return None
        text = str(data.get("text", "") or "")
        if "assignee" in data:
            if data["assignee"] is not True:
                self.fail(document, (*path, "assignee"), "write assignee: true")
                return None
            return Notify(assignee=True, text=text)
        if "agent" in data:
            agent = self.name_of(
                document, (*path, "agent"), data["agent"], list(self.agents), "agent"
            )
            if agent and not self.agents[agent].slack:
                self.fail(document, (*path, "agent"), f"agent '{agent}' has no slack id to notify")
            return Notify(agent=agent, text=text) if agent else None
        if "team" in data:
            team = self.name_of(document, (*path, "team"), data["team"], list(self.teams), "team")
            if team and not self.teams[team].slack_channel:
                self.fail(document, (*path, "team"), f"team '{team}' has no slack_channel")
            return Notify(team=team, text=text) if team else None
        channel = self.text(document, (*path, "channel"), data["channel"])
        return Notify(channel=channel, text=text) if channel else None

    # -- conditions --------------------------------------------------------------------------

    def condition(self, document: Document, path: Path_, value: Any) -> Condition | None:
        if not isinstance(value, dict) or not value:
            self.fail(
                document,
                path,
                f"expected conditions like {{subject: {{contains: invoice}}}}, got {_kind(value)}",
            )
            return None
        parts: list[Condition] = []
        ok = True
        for key, spec in value.items():
            found = self.condition_part(document, (*path, key), key, spec)
            if found is None:
                ok = False
            else:
                parts.append(found)
        if not ok:
            return None
        return parts[0] if len(parts) == 1 else All(parts)

    def condition_part(
        self, document: Document, path: Path_, key: str, spec: Any
    ) -> Condition | None:
        if key in ("all", "any"):
            if not isinstance(spec, list) or not spec:
                self.fail(document, path, f"'{key}' takes a list of conditions")
                return None
            children = [self.condition(document, (*path, i), item) for i, item in enumerate(spec)]
            if any(child is None for child in children):
                return None
            kept = [child for child in children if child is not None]
            return All(kept) if key == "all" else AnyOf(kept)
        if key == "not":
            child = self.condition(document, path, spec)
            return Not(child) if child is not None else None
        if key == "headers":
            return self.headers(document, path, spec)
        if key in ("in_hours", "out_of_hours"):
            name = self.name_of(document, path, spec, list(self.calendars), "calendar")
            if not name:
                return None
            hours = Field(key, Kind.FLAG, lambda facts: True, "business hours of a calendar")
            return HoursLeaf(
                hours,
                Is(True),
                document.at(path),
                calendar=self.calendars[name],
                inside=key == "in_hours",
            )
        if key == "weekday":
            field = Field("weekday", Kind.TEXT, lambda facts: "", "day of the week")
            leaves = self.leaves(document, path, field, spec)
            if leaves is None:
                return None
            for leaf in leaves:
                matcher = leaf.matcher
                for day in getattr(matcher, "values", ()) if isinstance(matcher, Equals) else ():
                    if day.lower() not in WEEKDAYS:
                        self.fail(document, path, unknown("weekday", day, WEEKDAYS))
                        return None
            weekday_leaves: list[Condition] = [
                WeekdayLeaf(leaf.field, leaf.matcher, leaf.mark, zone=self.zone) for leaf in leaves
            ]
            return weekday_leaves[0] if len(weekday_leaves) == 1 else All(weekday_leaves)
        known_field = FIELDS.get(key)
        if known_field is None:
            self.fail(
                document, path, unknown("condition", key, [*FIELDS, *SPECIAL_KEYS]), at_key=True
            )
            return None
        field = known_field
        leaves = self.leaves(document, path, field, spec)
        if leaves is None:
            return None
        self.check_names(document, path, field, leaves)
        return leaves[0] if len(leaves) == 1 else All(list(leaves))

    def headers(self, document: Document, path: Path_, spec: Any) -> Condition | None:
        if not isinstance(spec, dict) or not spec:
            self.fail(document, path, 'expected header names to matchers, like {x-priority: "1"}')
            return None
        parts: list[Condition] = []
        for name, matcher_spec in spec.items():
            header = str(name).lower()
            field = Field(f"header {header}", Kind.TEXT, lambda facts: "", "a header")
            leaves = self.leaves(document, (*path, name), field, matcher_spec)
            if leaves is None:
                return None
            parts.extend(
                HeaderLeaf(leaf.field, leaf.matcher, leaf.mark, header=header) for leaf in leaves
            )
        return parts[0] if len(parts) == 1 else All(parts)

    def leaves(self, document: Document, path: Path_, field: Field, spec: Any) -> list[Leaf] | None:
        mark = document.at(path)
        kind = field.kind
        if kind is Kind.FLAG:
            flag = self.flag(document, path, spec)
            return [Leaf(field, Is(flag), mark)] if flag is not None else None
        if kind in (Kind.NUMBER, Kind.DURATION):
            return self.comparisons(document, path, field, spec, mark)
        if not isinstance(spec, dict):
            values = self.texts(document, path, spec)
            return (
                [Leaf(field, Equals("in" if len(values) > 1 else "equals", values), mark)]
                if values
                else None
            )
        if not spec:
            self.fail(document, path, "expected a matcher, like {contains: invoice}")
            return None
        leaves = []
        for op, value in spec.items():
            op_path = (*path, op)
            matcher_type = TEXT_MATCHERS.get(op)
            if matcher_type is None:
                self.fail(
                    document,
                    op_path,
                    unknown(f"matcher for {kind.value}", op, TEXT_MATCHERS),
                    at_key=True,
                )
                return None
            if op == "regex":
                if isinstance(value, list):
                    self.fail(document, op_path, "one regex per condition (use any: for several)")
                    return None
                pattern = self.text(document, op_path, value)
                values = (pattern,) if pattern is not None else ()
            else:
                values = self.texts(document, op_path, value)
            if not values:
                return None
            try:
                matcher = matcher_type(op, tuple(str(v) for v in values))
            except ValueError as error:
                self.fail(document, op_path, str(error))
                return None
            leaves.append(Leaf(field, matcher, document.at(op_path)))
        return leaves

    def comparisons(
        self, document: Document, path: Path_, field: Field, spec: Any, mark: Mark
    ) -> list[Leaf] | None:
        duration = field.kind is Kind.DURATION
        example = "{gt: 2h}" if duration else "{gte: 3}"
        if not isinstance(spec, dict):
            if duration or isinstance(spec, bool) or not isinstance(spec, int | float):
                self.fail(document, path, f"expected a comparison like {example}")
                return None
            return [Leaf(field, Compare("equals", float(spec), str(spec)), mark)]
        leaves = []
        for op, value in spec.items():
            op_path = (*path, op)
            if op not in COMPARISON_OPS:
                self.fail(document, op_path, unknown("comparison", op, COMPARISON_OPS), at_key=True)
                return None
            try:
                if duration:
                    compared: Any = parse_duration(value)
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"expected a number, got {_kind(value)}")
                else:
                    compared = float(value)
            except ValueError as error:
                self.fail(document, op_path, str(error))
                return None
            leaves.append(Leaf(field, Compare(op, compared, str(value)), document.at(op_path)))
        return leaves

    def check_names(
        self, document: Document, path: Path_, field: Field, leaves: list[Leaf]
    ) -> None:
        """Values of fields with a known vocabulary: a typo there is a rule that never fires."""
        vocabulary: dict[str, tuple[Sequence[str], str]] = {
            "channel": (CHANNELS, "channel"),
            "status": (STATUSES, "status"),
            "priority": (PRIORITIES, "priority"),
            "assignee": (list(self.agents), "agent"),
            "team": (list(self.teams), "team"),
            "tags": (list(self.tags), "tag"),
            "contact_tags": (list(self.tags), "tag"),
            "language": (LANGUAGES, "language"),
        }
        if field.name not in vocabulary:
            return
        known, what = vocabulary[field.name]
        for leaf in leaves:
            if isinstance(leaf.matcher, Equals):
                for value in leaf.matcher.values:
                    if value not in known:
                        self.fail_at(leaf.mark, dotted(path), unknown(what, value, known))


def _with_index(rule: Rule, index: int) -> Rule:
    return Rule(rule.name, rule.when, rule.then, rule.mark, rule.stop, rule.description, index)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _item(path: Path_, key: str, value: Any, index: int) -> Path_:
    return (*path, key, index) if isinstance(value, list) else (*path, key)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'"


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
