"""The command line: ``python plugin/dependencies generation | missing | plan [--target FOLDER] | constraints``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .activation import default_packages_folder
from .locks import generation
from .plan import Plan, constraint_lines, plan_install
from .requirements import missing_requirements


def describe_plan(plan: Plan) -> list[str]:
    lines = [plan.lock_note, f"Into {plan.folder}:"]
    lines += [f"  {pin}: {pin.reason}" for pin in plan.install]
    if plan.kept:
        lines.append("Kept as installed: " + ", ".join(plan.kept))
    lines += [f"Not installed by pip: {m.name} ({m.reason}); the distribution provides it" for m in plan.unavailable]
    return lines


def main(argv: list[str]) -> int:
    command = argv[1:2]
    try:
        if argv[1:] == ["generation"]:
            print(generation())
            return 0
        if argv[1:] == ["missing"]:
            for m in missing_requirements():
                print(f"{m.name}: {m.requirement.enables}")
            return 0
        if command == ["plan"] and len(argv) in (2, 4) and argv[2:3] in ([], ["--target"]):
            plan = plan_install(missing_requirements(), Path(argv[3]) if len(argv) == 4 else default_packages_folder())
            print("\n".join(f"# {line}" for line in describe_plan(plan)), file=sys.stderr)
            if plan.install:
                print(shlex.join(plan.command()))
            return 0
        if argv[1:] == ["constraints"]:
            print("\n".join(constraint_lines()))
            return 0
    except LookupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"usage: {argv[0]} generation | missing | plan [--target FOLDER] | constraints", file=sys.stderr)
    return 2
