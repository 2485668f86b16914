"""Fail when a plugin module uses another module's private name (`make lint`).

A name another module needs is public in the module that owns it (or moves there): `from .reader
import _plan` or `reader._plan(...)` hides a dependency that the owner may break without noticing.
Checked: `from X import _name` and `module._name` where `module` was imported from the plugin.

    python tests/tools/private_names.py [root]     # default: the plugin/ folder beside tests/
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_plugin_import(node: ast.ImportFrom) -> bool:
    """Relative imports stay inside the plugin; absolute ones reach it through `cubescope`."""
    return node.level > 0 or (node.module or "").split(".")[0] == "cubescope"


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    plugin_modules: set[str] = set()  # local names bound to plugin modules (`from . import reader`)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_plugin_import(node):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{path}:{node.lineno}: imports the private name {alias.name} from "
                                 f"{'.' * node.level}{node.module or ''}")
                plugin_modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in plugin_modules):
            found.append(f"{path}:{node.lineno}: uses the private name {node.value.id}.{node.attr}")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "plugin"
    found = [line for path in sorted(root.rglob("*.py")) for line in violations(path)]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} use(s) of another module's private name: make the name public where it is "
              "defined, or move it to the module that uses it.", file=sys.stderr)
        return 1
    print(f"No module uses another's private names under {root}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
