"""What an evaluation decided, as lines a person reads and as a comparable outcome: the CLI's
`rules test` and `rules replay` and the desk's rules page print the same words."""

from __future__ import annotations

from rules.engine import Evaluation


def outcome_lines(evaluation: Evaluation, *, assigned: str = "") -> list[str]:
    """One line per decision, naming its rule; [] when no rule matched. `assigned`: what the
    caller knows of who the strategy would pick, put under the assignment's line."""
    decisions = evaluation.decisions
    lines = [f"tag {tag}  (rule {rule})" for tag, rule in decisions.tags.items()]
    lines += [f"untag {tag}  (rule {rule})" for tag, rule in decisions.untags.items()]
    lines += [f"tag contact {tag}  (rule {rule})" for tag, rule in decisions.contact_tags.items()]
    if decisions.priority:
        lines.append(f"priority {decisions.priority.value}  (rule {decisions.priority.rule})")
    if decisions.status:
        lines.append(f"status {decisions.status.value}  (rule {decisions.status.rule})")
    if decisions.assign:
        assign, rule = decisions.assign
        lines.append(f"assign to {assign.describe()}  (rule {rule})")
        if assigned:
            lines.append(assigned)
    lines += [f"notify {n.target()}  (rule {rule})" for n, rule in decisions.notify.values()]
    lines += [
        f"{name} = {found.value}  (rule {found.rule})"
        for name, found in decisions.extracted.items()
    ]
    lines += [
        f"({what} {value} from rule {rule} was overridden by rule {replaced_by})"
        for what, value, rule, replaced_by in decisions.overridden
    ]
    return lines


def trace_lines(evaluation: Evaluation) -> list[tuple[str, str, str]]:
    """Each rule: its mark (✓ matched, ✗ not, · not looked at), its name, and why."""
    rows = []
    for result in evaluation.results:
        rule = result.rule
        mark = "✓" if result.verdict.matched else ("·" if not result.evaluated else "✗")
        stop = " (stop)" if rule.stop and result.verdict.matched else ""
        rows.append((mark, f"{rule.name}{stop}  [{rule.mark}]", result.verdict.why))
    return rows


def outcome(evaluation: Evaluation) -> dict[str, str]:
    """The decisions as keys and values, for comparing two rules files on one message."""
    decisions = evaluation.decisions
    found = {f"tag {tag}": "yes" for tag in decisions.tags}
    found.update({f"untag {tag}": "yes" for tag in decisions.untags})
    found.update({f"contact tag {tag}": "yes" for tag in decisions.contact_tags})
    found.update({f"notify {target}": "yes" for target in decisions.notify})
    found.update({name: value.value for name, value in decisions.extracted.items()})
    if decisions.priority:
        found["priority"] = decisions.priority.value
    if decisions.status:
        found["status"] = decisions.status.value
    if decisions.assign:
        found["assignment"] = decisions.assign[0].describe()
    return found


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """ "+tag vip", "-notify team:billing", "priority: normal -> high"."""
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
