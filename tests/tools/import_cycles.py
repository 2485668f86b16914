"""Fail on any import cycle among the plugin's modules (`make lint`).

import-linter's contracts check which layer may import which; a cycle inside one layer (two modules
of `stac/` importing each other, even inside a function) passes them. This walks the same import
graph (grimp, import-linter's own) and prints every strongly connected group of modules.

    python tests/tools/import_cycles.py [package]     # default: cubescope.plugin
"""

from __future__ import annotations

import sys

import grimp


def cycles(package: str) -> list[list[str]]:
    """The groups of modules under `package` that import each other, directly or in a ring."""
    graph = grimp.build_graph(package.split(".")[0], include_external_packages=False)
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    edges = {m: sorted(t for t in graph.find_modules_directly_imported_by(m) if t in modules) for m in modules}
    return [group for group in _strongly_connected(modules, edges) if len(group) > 1]


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred modules; no recursion limit worries)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def main(argv: list[str]) -> int:
    package = argv[1] if len(argv) > 1 else "cubescope.plugin"
    found = cycles(package)
    for group in found:
        print("Import cycle: " + " ↔ ".join(m.removeprefix(package + ".") for m in group))
    if found:
        print(f"{len(found)} import cycle(s) in {package}: a module must not (even inside a function) import "
              "one that imports it back. Move the shared part down into a module of its own.", file=sys.stderr)
        return 1
    print(f"No import cycles in {package}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
