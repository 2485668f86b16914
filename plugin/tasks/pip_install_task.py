"""Install a :class:`~..dependencies.plan.Plan` with pip in the background, into the plugin's packages folder.

pip installs the exact pins, without resolving, into a staging folder; the result is merged into the
packages folder; ``pip check`` then names any dependency already installed here that is too old for
what was just installed (Debian 12's cloudpickle 2.2 for dask), and that one is installed too, at
the lock's version. Packages QGIS or the distribution compiled (numpy, GDAL, PyQt...) never are.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..dependencies.activation import GENERATION_MARKER
from ..dependencies.locks import LockedPackage, parse_lock, system_lock
from ..dependencies.plan import NEVER_INSTALLED, Pin, Plan, pip_command, python_executable
from ..dependencies.versions import Version, canonical

PIP_TIMEOUT_S = 900
FOLLOW_UP_ROUNDS = 3


def _dist_name(dist_info: Path) -> str:
    return canonical(dist_info.name.split("-", 1)[0])


def _remove_distribution(dist_info: Path, folder: Path) -> None:
    """Delete the files a distribution's RECORD lists (only inside ``folder``), then empty folders."""
    root = folder.resolve()
    record = dist_info / "RECORD"
    rows = list(csv.reader(record.read_text(encoding="utf-8").splitlines())) if record.is_file() else []
    parents: set[Path] = set()
    for row in rows:
        path = (folder / row[0]).resolve() if row else root
        if path != root and path.is_relative_to(root) and path.is_file():
            path.unlink()
            parents.add(path.parent)
    shutil.rmtree(dist_info, ignore_errors=True)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        for directory in (parent, *parent.parents):
            pycache = directory / "__pycache__"
            if pycache.is_dir() and not any(p.suffix != ".pyc" for p in pycache.iterdir()):
                shutil.rmtree(pycache)
            if directory == root or not directory.is_dir() or any(directory.iterdir()):
                break
            directory.rmdir()


def merge_into(staging: Path, folder: Path) -> None:
    """Move what pip put into ``staging`` into ``folder``, replacing older versions of the same
    distributions (by their RECORD) and merging namespace packages such as ``odc/``.

    pip's own ``--target`` replaces or skips whole top-level folders: a second install would drop
    ``odc/geo`` when adding ``odc/stac``, or silently leave ``odc/stac`` out.
    """
    arriving = {_dist_name(d) for d in staging.glob("*.dist-info")}
    for old in folder.glob("*.dist-info"):
        if _dist_name(old) in arriving:
            _remove_distribution(old, folder)
    for source in sorted(staging.rglob("*")):
        if source.is_file() or source.is_symlink():
            destination = folder / source.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
    shutil.rmtree(staging)


@dataclass(frozen=True)
class Unmet:
    """One line of ``pip check``: ``dependent`` needs ``requirement``; ``have`` is None when absent."""

    dependent: str
    requirement: str
    name: str
    have: str | None


_NOT_INSTALLED = re.compile(r"(\S+) \S+ requires (\S+), which is not installed\.")
_CONFLICT = re.compile(r"(\S+) \S+ has requirement (.+), but you have (\S+) (\S+)\.")


def parse_pip_check(output: str) -> list[Unmet]:
    found = []
    for line in output.splitlines():
        if match := _NOT_INSTALLED.fullmatch(line.strip()):
            found.append(Unmet(match[1], match[2], match[2], None))
        elif match := _CONFLICT.fullmatch(line.strip()):
            found.append(Unmet(match[1], match[2], match[3], match[4]))
    return found


def follow_up_pins(unmet: list[Unmet], ours: set[str], lock: dict[str, LockedPackage], never: set[str],
                   done: set[str]) -> tuple[list[Pin], list[str]]:
    """Lock pins for what packages in our folder still lack, and what the lock cannot fix."""
    pins: dict[str, Pin] = {}
    problems = []
    for u in unmet:
        name = canonical(u.name)
        if canonical(u.dependent) not in ours or name in pins:
            continue
        have = Version.parse(u.have) if u.have else None
        if have is not None and have.is_unknown:
            continue  # a distribution's build without a version: trusted, as at plugin start
        found = f"{u.name} {u.have}" if u.have else f"{u.name} missing"
        if name in never:
            problems.append(f"{u.dependent} needs {u.requirement}; {found} comes with QGIS or the system "
                            "and is kept")
        elif name in lock and name not in done:
            reason = f"{found}, {u.dependent} needs {u.requirement}" if u.have else f"needed by {u.dependent}"
            pins[name] = Pin(lock[name].name, lock[name].version, reason)
        else:
            problems.append(f"{u.dependent} needs {u.requirement} ({found}); the tested lock cannot fix it")
    return list(pins.values()), problems


def _run(command: list[str], cancelled: Callable[[], bool], env: dict[str, str] | None = None,
         ) -> tuple[int | None, str]:
    """Exit status (None when cancelled) and output; never blocks QGIS, stoppable between lines."""
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None  # set by stdout=PIPE
        for line in process.stdout:
            lines.append(line.rstrip())
            if cancelled():
                process.kill()
                process.wait(timeout=10)
                return None, "\n".join(lines)
        return process.wait(timeout=PIP_TIMEOUT_S), "\n".join(lines)


def install_plan(plan: Plan, cancelled: Callable[[], bool] = lambda: False) -> tuple[bool, str]:
    """Run ``plan``, then fix what ``pip check`` finds; success and a message for the user."""
    lock = parse_lock(plan.lock.read_text(encoding="utf-8"))
    system = system_lock(plan.lock)
    never = set(NEVER_INSTALLED) | (set(parse_lock(system.read_text(encoding="utf-8"))) if system.is_file() else set())
    paths = [str(plan.folder), os.environ.get("PYTHONPATH", "")]
    check_env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    pins, installed, problems = list(plan.install), [], []
    plan.folder.mkdir(parents=True, exist_ok=True)
    for _ in range(FOLLOW_UP_ROUNDS):
        shutil.rmtree(plan.staging, ignore_errors=True)
        command = pip_command(pins, plan.staging)
        try:
            status, output = _run(command, cancelled)
        except OSError as error:
            return False, f"Could not start pip ({command[0]}): {error}"
        if status is None:
            shutil.rmtree(plan.staging, ignore_errors=True)
            return False, "Installation cancelled; pip was stopped."
        if status != 0:
            shutil.rmtree(plan.staging, ignore_errors=True)
            tail = "\n".join(output.splitlines()[-15:])
            return False, f"pip exited with status {status}:\n{tail}"
        merge_into(plan.staging, plan.folder)
        (plan.folder / GENERATION_MARKER).write_text(plan.generation + "\n", encoding="utf-8")
        installed += pins
        status, output = _run([python_executable(), "-m", "pip", "check"], cancelled, env=check_env)
        ours = {_dist_name(d) for d in plan.folder.glob("*.dist-info")}
        pins, found = follow_up_pins(parse_pip_check(output), ours, lock, never, {canonical(p.name) for p in installed})
        problems += found
        if not pins:
            break
    else:
        problems.append(f"still unmet after {FOLLOW_UP_ROUNDS} rounds: " + ", ".join(map(str, pins)))
    lines = [f"Installed into {plan.folder}:"] + [f"  {pin} ({pin.reason})" for pin in installed]
    if not plan.exact:
        lines.append(plan.lock_note)
    if problems:
        lines += ["Check these:"] + [f"  {p}" for p in problems]
    lines.append("Restart QGIS to use them.")
    return True, "\n".join(lines)


class PipInstallTask(QgsTask):
    """Runs pip as a child process: a long download never freezes QGIS and can be cancelled."""

    done = pyqtSignal(bool, str)  # success, message for the user

    def __init__(self, plan: Plan) -> None:
        super().__init__("Cubescope: installing Python packages", QgsTask.Flag.CanCancel)
        self.plan = plan
        self._message = ""

    def run(self) -> bool:
        try:
            success, self._message = install_plan(self.plan, self.isCanceled)
        except Exception as error:  # noqa: BLE001 (a task's run() must not raise into QGIS)
            self._message = f"Installing into {self.plan.folder} failed: {type(error).__name__}: {error}"
            return False
        return success

    def finished(self, result: bool) -> None:
        self.done.emit(result, self._message or "Installation did not complete.")
