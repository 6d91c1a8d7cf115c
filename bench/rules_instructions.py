"""Instructions a message of the rules engine, counted by callgrind: a figure that does not move
with the machine's load, for telling whether a change to the engine made it cheaper.

Wall-clock figures here vary by a third from run to run (bench/rules.py takes the best of two
passes for that reason), which hides a 5% gain. callgrind counts the instructions the CPU ran,
the same each time for the same code and input. Run:

    python bench/rules_instructions.py            # runs itself under valgrind, prints a table
    python bench/rules_instructions.py --annotate # also the functions that cost the most
    python bench/rules_instructions.py --rules 20 --warm 30 --counted 10  # tiny: the tests

It generates bench/rules.py's 1,000 rules and 1,300 of its messages, evaluates them all once
(RE2 builds its DFA states and each regex's reverse program lazily, on the text that needs them),
then counts only a second evaluation of the last 300: the engine warm, as bench/rules.py measures
it and as a daemon runs for weeks.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from rules.engine import CompiledRules
    from rules.facts import Facts

WARM = 1_000
COUNTED = 300


def evaluate_all(compiled: CompiledRules, messages: Sequence[Facts]) -> int:
    """What callgrind counts. callgrind sees C functions only, so the messages go through
    functools.reduce, whose C function (functools_reduce) is the --toggle-collect boundary."""

    def add(matched: int, facts: Facts) -> int:
        return matched + len(compiled.evaluate(facts).matched)

    return functools.reduce(add, messages, 0)


def workload(rules: int, warm: int, counted: int) -> None:
    from bench.rules import build_vocabulary, generate_messages, generate_rules, load_and_compile

    vocabulary = build_vocabulary()
    messages = generate_messages(vocabulary, warm + counted, seed=1)
    generated = generate_rules(vocabulary, rules, seed=1)
    with tempfile.TemporaryDirectory() as scratch:
        compiled = load_and_compile(generated.text, Path(scratch), "callgrind").compiled
    assert compiled is not None
    for facts in messages:
        compiled.evaluate(facts)
    print(f"matched {evaluate_all(compiled, messages[warm:])} rules in {counted} messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--warm", type=int, default=WARM, help="messages evaluated, not counted")
    parser.add_argument("--counted", type=int, default=COUNTED, help="messages counted")
    parser.add_argument("--annotate", action="store_true", help="print the costliest functions")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        workload(args.rules, args.warm, args.counted)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--toggle-collect=functools_reduce",
            sys.executable,
            __file__,
            "--workload",
            f"--rules={args.rules}",
            f"--warm={args.warm}",
            f"--counted={args.counted}",
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if run.returncode != 0:
            raise SystemExit(run.stderr[-3000:])
        print(run.stdout.strip())
        annotated = subprocess.run(
            ["callgrind_annotate", "--inclusive=no", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    total = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotated, re.MULTILINE)
    if total is None:
        raise SystemExit("callgrind counted nothing: the toggle did not find functools_reduce")
    instructions = int(total.group(1).replace(",", ""))
    print(f"{args.rules:,} rules: {instructions / args.counted:,.0f} instructions a message")
    if args.annotate:
        print("\n".join(annotated.splitlines()[:60]))


if __name__ == "__main__":
    main()
