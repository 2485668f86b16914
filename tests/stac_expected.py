"""Expected answers for the STAC tests, read straight from the demo cube's files on disk.

Nothing here uses the plugin's code: items are found by globbing the catalog directory (not by its
links), footprints are tested with shapely, dates parsed with the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from shapely.geometry import box, shape

Item = dict[str, Any]


def disk_items(collection_json: Path) -> list[Item]:
    """A collection's items as files on disk (`<item-id>/<item-id>.json`)."""
    return [json.loads(p.read_text()) for p in sorted(collection_json.parent.glob("*/*.json"))
            if p.stem == p.parent.name]


def child_collection_ids(catalog_json: Path) -> set[str]:
    catalog = json.loads(catalog_json.read_text())
    return {json.loads((catalog_json.parent / link["href"]).read_text())["id"]
            for link in catalog["links"] if link["rel"] == "child"}


def when(item: Item) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def ids_where(items: list[Item], keep: Callable[[Item], bool]) -> set[str]:
    return {item["id"] for item in items if keep(item)}


def in_box(bbox: tuple[float, float, float, float]) -> Callable[[Item], bool]:
    area = box(*bbox)
    return lambda item: shape(item["geometry"]).intersects(area)
