"""Fail on Qt5-only idioms, so the plugin runs on QGIS 3 (Qt5) and QGIS 4 (Qt6) alike.

    python tests/tools/qt6_check.py [PATH...]      # default: the whole plugin (root, plugin/, tests/, ui/)

Prints ``file:line: message`` per finding; exits 1 on findings, 0 when clean, 2 when it cannot check.

Why a checker of its own: PyQt6 knows enums only by their scoped names (``Qt.ItemDataRole.UserRole``),
has no ``exec_()``, ``QRegExp`` or ``QDesktopWidget``, and QGIS 4 drops the unscoped aliases QGIS 3
keeps (``Qgis.Warning``, ``QgsTask.CanCancel``). Whether ``Cls.Name`` is an enum member only the
classes know, so every attribute chain rooted in a ``qgis.PyQt`` import is looked up on Debian's PyQt6
(``qgis.PyQt.QtX`` -> ``PyQt6.QtX``), and every chain rooted in ``qgis.core``/``gui``/``analysis`` on the
installed QGIS, which tells an enum member reached without its enum's name (or a QFlags class, which
PyQt6 has not). Qt chains must also resolve on the installed QGIS's own qgis.PyQt, so a fix for Qt6
cannot break QGIS 3. Each lookup runs in a child process of its own: PyQt5 (under QGIS 3) and PyQt6
cannot share one. ``ui/*.ui`` files are compiled with PyQt6's uic and the code it writes is checked
the same way (uic writes unknown enum spellings through unchanged; they fail only when the form loads).
Run it with a Python that imports both ``qgis`` and Debian's ``PyQt6`` (/usr/bin/python3 or the venv).
"""

from __future__ import annotations

import ast
import enum
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"build", "dist", "__pycache__", "node_modules"}
QGIS_MODULES = ("qgis.core", "qgis.gui", "qgis.analysis")
# Moved from QtWidgets to QtGui in Qt6 (qgis.PyQt.QtWidgets re-exports them on QGIS 4).
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut"}
REMOVED = {"QRegExp": "use QRegularExpression", "QDesktopWidget": "use QScreen (QWidget.screen())"}
TRIGGERS = ("qgis", "PyQt", "exec_")


@dataclass(frozen=True)
class Use:
    """An attribute chain as written (``Qt.UserRole``) and as resolved (``qgis.PyQt.QtCore.Qt.UserRole``)."""

    path: Path
    line: int
    written: tuple[str, ...]
    dotted: tuple[str, ...]


def cannot_check(why: str) -> NoReturn:
    """Exit 2: a missing PyQt6 or QGIS is no finding about the code."""
    print(f"qt6_check: {why}", file=sys.stderr)
    raise SystemExit(2)


def python_files(paths: list[Path]) -> list[Path]:
    """Every .py and .ui file under ``paths``, leaving out hidden, build and cache folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        for file in sorted(path.rglob("*")):
            parts = file.relative_to(path).parts
            if file.suffix in (".py", ".ui") and not any(p.startswith(".") or p in SKIP_DIRS for p in parts):
                found.append(file)
    return found


def imported_names(tree: ast.Module, generated: bool) -> dict[str, str]:
    """Local name -> dotted origin, for imports from qgis (and PyQt6 in uic's generated code)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = node.module
            if generated and module.split(".")[0] == "PyQt6":
                module = "qgis.PyQt" + module[len("PyQt6") :]
            if module.split(".")[0] == "qgis":
                names.update({a.asname or a.name: f"{module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "qgis":
                    names[alias.asname or "qgis"] = alias.name if alias.asname else "qgis"
    return names


def chain(node: ast.AST) -> tuple[str, ...] | None:
    """``a.b.c`` as ("a", "b", "c"); None when the chain starts at a call or subscript."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return (node.id, *reversed(parts)) if isinstance(node, ast.Name) else None


def syntax_problems(node: ast.AST, names: dict[str, str]) -> list[str]:
    """What one node gets wrong whatever the classes say: direct PyQt imports, exec_, QVariant(), removed classes."""
    words: list[str] = []
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        words = [*node.module.split("."), *(a.name for a in node.names)]
    elif isinstance(node, ast.Import):
        words = [part for a in node.names for part in a.name.split(".")]
    elif isinstance(node, (ast.Name, ast.Attribute)):
        words = [node.id if isinstance(node, ast.Name) else node.attr]
    problems = [f"{word} is gone in Qt6; {REMOVED[word]}" for word in sorted(set(words) & REMOVED.keys())]
    if {"PyQt5", "PyQt6"} & set(words) and isinstance(node, (ast.Import, ast.ImportFrom)):
        problems.append("Qt imported directly; import it from qgis.PyQt")
    if "exec_" in words:
        problems.append("exec_() is gone in PyQt6; call exec()")
    if isinstance(node, ast.Call) and not node.args and not node.keywords and isinstance(node.func, ast.Name):
        if names.get(node.func.id, "").endswith("QtCore.QVariant"):
            problems.append("QVariant() as null; use None (or qgis.core.NULL for an attribute)")
    return problems


def scan_source(path: Path, text: str, generated: bool = False) -> tuple[list[str], list[Use]]:
    """Findings decided from the syntax alone, and the chains that need a lookup on the real classes."""
    if not any(word in text for word in TRIGGERS):
        return [], []
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        return [f"{path}:{error.lineno}: cannot parse: {error.msg}"], []
    names = imported_names(tree, generated)
    findings: list[str] = []
    uses: list[Use] = []
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if not generated:  # uic's own code imports PyQt6 directly, and is judged by its chains alone
            findings += [f"{path}:{line}: {problem}" for problem in syntax_problems(node, names)]
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[:2] == ["qgis", "PyQt"]:
            uses += [Use(path, line, (a.name,), (*node.module.split("."), a.name)) for a in node.names]
        if isinstance(node, ast.Attribute) and id(node) not in inner and isinstance(node.ctx, ast.Load):
            written = chain(node)
            if written and written[0] in names:
                uses.append(Use(path, line, written, (*names[written[0]].split("."), *written[1:])))
    return findings, uses


def resolve_children(uses: list[Use]) -> dict[tuple[str, ...], list[str]]:
    """Dotted chain -> problems, from one PyQt6 child and one QGIS child."""
    qt = {u.dotted for u in uses if u.dotted[:2] == ("qgis", "PyQt")}
    qgis = {u.dotted for u in uses if ".".join(u.dotted[:2]) in QGIS_MODULES}
    # Qt chains go to the QGIS child too: the scoped spelling must also exist on QGIS 3's PyQt5.
    groups = {"qt6": sorted(qt), "qgis": sorted(qt | qgis)}
    problems: dict[tuple[str, ...], list[str]] = {}
    for kind, chains in groups.items():
        if not chains:
            continue
        args = [sys.executable, __file__, "--resolve", kind]
        done = subprocess.run(args, input=json.dumps(chains), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            cannot_check(f"the {kind} lookup failed under {sys.executable}:\n{done.stderr.strip()}")
        for dotted, problem in json.loads(done.stdout):
            problems.setdefault(tuple(dotted), []).append(problem)
    return problems


def lookup_qt6(dotted: list[str]) -> str | None:
    """Why ``qgis.PyQt.<module>.<rest>`` does not resolve on PyQt6, with the scoped name when one exists."""
    module, rest = dotted[2], dotted[3:]
    if module == "QtWidgets" and rest and rest[0] in MOVED_TO_QTGUI:
        module = "QtGui"
    try:
        obj: object = importlib.import_module(f"PyQt6.{module}")
    except ImportError:
        return f"PyQt6 has no {module} module"
    for index, name in enumerate(rest):
        if not hasattr(obj, name):
            enums = [(attr, getattr(obj, attr)) for attr in dir(obj)]
            scopes = [
                f"{'.'.join(rest[:index])}.{attr}.{name}"
                for attr, value in enums
                if isinstance(value, enum.EnumMeta) and name in value.__members__
            ]
            spelled = ".".join(rest[: index + 1])
            return f"{spelled} is Qt5-only; use {' or '.join(scopes)}" if scopes else f"{spelled} is not in PyQt6"
        obj = getattr(obj, name)
    return None


def is_enum_member(value: object) -> bool:
    """Python enums (QGIS's Qgis.* enums) and sip enums (the rest of QGIS 3 on PyQt5)."""
    return isinstance(value, enum.Enum) or type(type(value)).__name__ == "enumtype"


def lookup_installed_qt(dotted: list[str]) -> str | None:
    """Why ``qgis.PyQt.<module>.<rest>`` does not resolve on the installed QGIS's own Qt binding."""
    try:
        obj: object = importlib.import_module(".".join(dotted[:3]))
    except ImportError:
        return f"the installed qgis.PyQt has no {dotted[2]} module"
    for index, name in enumerate(dotted[3:], start=3):
        if not hasattr(obj, name):
            version = importlib.import_module("qgis.PyQt.QtCore").QT_VERSION_STR
            return f"{'.'.join(dotted[3 : index + 1])} is not in the installed qgis.PyQt (Qt {version})"
        obj = getattr(obj, name)
    return None


def qgis_version() -> str:
    """The installed QGIS, named in findings: what resolves depends on it."""
    return importlib.import_module("qgis.core").Qgis.QGIS_VERSION


def lookup_qgis(dotted: list[str]) -> str | None:
    """Why a QGIS chain is not spelled through its enum's scoped name (None when it is, or is no enum)."""
    if dotted[1] == "PyQt":
        return lookup_installed_qt(dotted)
    obj: object = importlib.import_module(".".join(dotted[:2]))
    for index, name in enumerate(dotted[2:], start=2):
        if not hasattr(obj, name):  # below the minimum QGIS, which is the one to check against
            return f"{'.'.join(dotted[2 : index + 1])} is not in the installed QGIS ({qgis_version()})"
        parent, obj = obj, getattr(obj, name)
        flag = getattr(parent, name[:-1], None) if name.endswith("s") and isinstance(obj, type) else None
        if isinstance(flag, type) and (issubclass(flag, enum.Enum) or type(flag).__name__ == "enumtype"):
            spelled = ".".join(dotted[2 : index + 1])
            return f"{spelled} is a QFlags class, which PyQt6 has not; use {flag.__qualname__}(0) or its members"
        if is_enum_member(obj):
            kind = type(obj)
            member = obj.name if isinstance(obj, enum.Enum) else name
            if parent is kind and member == name:
                return None
            spelled = ".".join(dotted[2 : index + 1])
            what = "an old alias of a QGIS enum value" if parent is kind else "an unscoped QGIS enum value"
            return f"{spelled} is {what}; use {kind.__qualname__}.{member}"
    return None


def child_main(kind: str) -> None:
    """The lookup child: JSON list of dotted chains on stdin, [chain, problem] pairs on stdout."""
    if kind == "qgis":
        import qgis.core  # noqa: F401 (QGIS's enum aliases are patched in on import)
    lookup = lookup_qt6 if kind == "qt6" else lookup_qgis
    found = [(c, p) for c in json.load(sys.stdin) if (p := lookup(c))]
    json.dump(found, sys.stdout)


def compile_ui(ui: Path, out_dir: Path) -> tuple[list[str], list[Use]]:
    """Compile a Designer form with PyQt6's uic; chains in its code are reported on the form's lines."""
    out = out_dir / f"{ui.stem}.py"
    args = [sys.executable, "-m", "PyQt6.uic.pyuic", str(ui), "-o", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if "No module named" in done.stderr:
        cannot_check(f"{sys.executable} has no PyQt6 uic (Debian: pyqt6-dev-tools):\n{done.stderr.strip()}")
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return [f"{ui}:1: PyQt6's uic cannot compile it: {error}"], []
    _, uses = scan_source(out, out.read_text(encoding="utf-8"), generated=True)
    lines = ui.read_text(encoding="utf-8").splitlines()

    def ui_line(use: Use) -> int:
        wanted = re.compile(rf"\b{re.escape(use.written[-1])}\b")
        return next((n for n, text in enumerate(lines, 1) if wanted.search(text) and "<" in text), 1)

    return [], [Use(ui, ui_line(u), u.written, u.dotted) for u in uses]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--resolve"]:
        child_main(argv[1])
        return 0
    paths = [Path(a) for a in argv] or [Path(os.path.relpath(ROOT))]
    findings: list[str] = []
    uses: list[Use] = []
    with tempfile.TemporaryDirectory(prefix="qt6_check_") as tmp:
        for file in python_files(paths):
            if file.suffix == ".ui":
                found, used = compile_ui(file, Path(tmp))
            else:
                found, used = scan_source(file, file.read_text(encoding="utf-8"))
            findings += found
            uses += used
    problems = resolve_children(uses)
    findings += [f"{u.path}:{u.line}: {problem}" for u in uses for problem in problems.get(u.dotted, ())]
    for line in sorted(set(findings), key=lambda f: (f.split(":")[0], int(f.split(":")[1]), f)):
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
