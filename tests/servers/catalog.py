"""Read a static STAC catalog from disk into the shape STAC API servers load.

A static catalog links everything with relative hrefs; an API serves items on their own, so every
asset href must be absolute. Hrefs are rebased from the catalog's directory onto `base` (the nginx
server's URL, or another directory), so a client can read pixels through the API's answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Json = dict[str, Any]


def read_json(path: Path) -> Json:
    return json.loads(path.read_text())


def link_paths(node: Json, path: Path, rel: str) -> list[Path]:
    """Files that `node` (read from `path`) links to with relation `rel`, resolved on disk."""
    return [(path.parent / link["href"]).resolve() for link in node.get("links", []) if link["rel"] == rel]


def rebase(local: Path, root: Path, base: str | Path) -> str:
    """`local`, a file under `root`, as seen from `base` (a URL prefix or a directory)."""
    relative = local.resolve().relative_to(root.resolve()).as_posix()
    if "://" in str(base):
        return f"{str(base).rstrip('/')}/{relative}"
    return str(Path(base) / relative)


def with_absolute_assets(node: Json, path: Path, root: Path, base: str | Path) -> Json:
    """A copy of an item or collection without links and with asset hrefs rebased.

    Links are dropped because they point at sibling files; API servers write their own.
    """
    out = {k: v for k, v in node.items() if k != "links"}
    assets = {}
    for key, asset in node.get("assets", {}).items():
        href = asset["href"]
        if "://" not in href:
            href = rebase(path.parent / href, root, base)
        assets[key] = {**asset, "href": href}
    if assets:
        out["assets"] = assets
    return out


def iter_collections(catalog: Path, root: Path, base: str | Path) -> Iterator[tuple[Json, list[Json]]]:
    """Yield (collection, items) for each collection below `catalog`, hrefs rebased onto `base`."""
    for path in link_paths(read_json(catalog), catalog, "child"):
        node = read_json(path)
        if node.get("type") != "Collection":
            yield from iter_collections(path, root, base)
            continue
        items = []
        for item_path in link_paths(node, path, "item"):
            item = with_absolute_assets(read_json(item_path), item_path, root, base)
            item["collection"] = node["id"]
            items.append(item)
        yield with_absolute_assets(node, path, root, base), items


def write_ndjson(records: list[Json], path: Path) -> Path:
    """Write one JSON document per line, the bulk format rustac and pypgstac load."""
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path
