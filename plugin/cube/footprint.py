"""Whether a STAC item's footprint contains a point: its geometry (Polygon, MultiPolygon with holes),
else its bbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..stac.items import item_bbox


def _ring_contains(ring: Sequence[Sequence[float]], x: float, y: float) -> bool:
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def covers(item: dict, lon: float, lat: float) -> bool:
    """Whether the item's footprint (geometry, else bbox) contains the point; True when it has neither."""
    geometry = item.get("geometry")
    polygons: list[Any] = []
    if isinstance(geometry, dict) and geometry.get("type") == "Polygon":
        polygons = [geometry.get("coordinates") or []]
    elif isinstance(geometry, dict) and geometry.get("type") == "MultiPolygon":
        polygons = list(geometry.get("coordinates") or [])
    try:
        if polygons:
            return any(rings and _ring_contains(rings[0], lon, lat)
                       and not any(_ring_contains(hole, lon, lat) for hole in rings[1:]) for rings in polygons)
    except (TypeError, IndexError, ValueError, ZeroDivisionError):
        pass
    bbox = item_bbox(item)
    if bbox is None:
        return True
    return bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]
