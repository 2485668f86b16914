"""The tested pins: which generation (Python minor, numpy major) this is, its lock, and the lock's graph."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .requirements import installed_version, is_importable
from .versions import canonical

# The plugin folder's locks/, beside this package (``make lock`` writes them there).
LOCKS_DIR = Path(__file__).parent.parent / "locks"

_GENERATION = re.compile(r"py(\d)(\d+)-numpy(\d+)")


def numpy_version() -> str | None:
    version = installed_version("numpy")
    if version is None and is_importable("numpy"):
        version = str(getattr(importlib.import_module("numpy"), "__version__", "")) or None
    return version


def generation() -> str:
    """``py311-numpy1``: the running Python's minor version and its numpy's major version."""
    numpy = numpy_version()
    if numpy is None:
        raise LookupError(f"numpy is not installed in this Python ({sys.executable}); QGIS always brings it")
    return f"py{sys.version_info.major}{sys.version_info.minor}-numpy{numpy.split('.')[0]}"


def lock_for(gen: str, locks_dir: Path = LOCKS_DIR) -> tuple[Path, bool]:
    """The lock for ``gen`` and True, or the closest (same numpy major, nearest Python) and False."""
    exact = locks_dir / f"{gen}.txt"
    if exact.is_file():
        return exact, True
    wanted = _GENERATION.fullmatch(gen)
    if wanted is None:
        raise ValueError(f"not a generation like py311-numpy1: {gen!r}")
    candidates = []
    for path in locks_dir.glob("py*-numpy*.txt"):
        found = _GENERATION.fullmatch(path.name.removesuffix(".txt"))
        if found and found[1] == wanted[1] and found[3] == wanted[3]:
            # Nearest minor; on a tie the newer, whose pins more likely have wheels for newer Pythons.
            candidates.append((abs(int(found[2]) - int(wanted[2])), -int(found[2]), path))
    if not candidates:
        tested = sorted(p.name for p in locks_dir.glob("py*-numpy*.txt") if not p.name.endswith(".system.txt"))
        raise LookupError(f"No tested lock for {gen} (numpy {wanted[3]}); tested: {', '.join(tested)}")
    return min(candidates)[2], False


def system_lock(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".txt") + ".system.txt")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    via: frozenset[str]
    """Canonical names of the locked packages that need it; ``-r <file>`` for a requirements file."""


_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def parse_lock(text: str) -> dict[str, LockedPackage]:
    """``name==version`` lines with uv's (or pip-compile's) ``# via`` annotations under each."""
    pins: dict[str, tuple[str, str]] = {}
    via: dict[str, set[str]] = {}
    current: str | None = None
    in_via = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not raw[0].isspace():
            in_via = False
            current = None
            if line.startswith("#") or line.startswith("-"):
                continue
            match = _PIN.match(line)
            if match is None:
                raise ValueError(f"lock line {line_no}: expected name==version, got {raw!r}")
            current = canonical(match[1])
            pins[current] = (match[1], match[2])
            via[current] = set()
        elif current is not None and line.startswith("#"):
            comment = line[1:]
            if comment.strip().startswith("via"):
                in_via = True
                parents = [comment.strip()[3:].strip()]
            elif in_via and comment[:1].isspace():
                parents = [comment.strip()]
            else:
                in_via = False
                parents = []
            via[current].update(p if p.startswith("-") else canonical(p) for p in parents if p)
    return {name: LockedPackage(shown, version, frozenset(via[name])) for name, (shown, version) in pins.items()}


def lock_closure(lock: dict[str, LockedPackage], roots: list[str]) -> list[str]:
    """``roots`` and every locked package with one of them among its ancestors (following ``via``)."""
    children: dict[str, set[str]] = {}
    for name, package in lock.items():
        for parent in package.via:
            children.setdefault(parent, set()).add(name)
    found: set[str] = set()
    queue = [canonical(r) for r in roots if canonical(r) in lock]
    while queue:
        name = queue.pop()
        if name not in found:
            found.add(name)
            queue.extend(children.get(name, ()))
    return sorted(found)
