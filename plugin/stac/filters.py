"""What a search applies client-side when the server cannot: footprint, dates, cloud cover, CQL2.

Static catalogs get all of it; STAC APIs only what their conformance classes do not cover.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .cql2 import Cql2Error, evaluate, parse_cql2_text
from .items import Bbox, ItemError, item_bbox, item_cloud_cover, item_time_range

__all__ = ["Cql2Error", "cloud_filter", "combine", "evaluate", "item_matcher", "parse_cql2_text"]

Json = Any


def cloud_filter(max_cloud: float) -> Json:
    return {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]}


def combine(*filters: Json | None) -> Json | None:
    """AND of the filters that are not None."""
    present = [f for f in filters if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"op": "and", "args": present}


def _bbox_parts(bbox: Bbox) -> list[Bbox]:
    """A bbox crossing the antimeridian (west > east) as its two halves."""
    west, south, east, north = bbox
    if west <= east:
        return [bbox]
    return [(west, south, 180.0, north), (-180.0, south, east, north)]


def _boxes_intersect(a: Bbox, b: Bbox) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _footprint_intersects(item: dict, bbox: Bbox) -> bool:
    own = item_bbox(item)
    if own is None:
        return False
    parts = [p for p in _bbox_parts(bbox) if any(_boxes_intersect(p, o) for o in _bbox_parts(own))]
    if not parts:
        return False
    try:  # the exact test, as STAC APIs do it, when shapely is there; the bbox test otherwise
        from shapely.geometry import shape
    except ImportError:
        return True
    try:
        geometry = shape(item["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return True
    return any(geometry.intersects(_query_geometry(p)) for p in parts)


def _query_geometry(bbox: Bbox):
    """The bbox as a geometry; a point or a line when it has no area (a search around one point):
    GEOS does not find a zero-area polygon inside anything."""
    from shapely.geometry import LineString, Point, box

    west, south, east, north = bbox
    if west == east and south == north:
        return Point(west, south)
    if west == east or south == north:
        return LineString([(west, south), (east, north)])
    return box(west, south, east, north)


def item_matcher(
    bbox: Bbox | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    max_cloud: float | None = None,
    cql2: Json | None = None,
) -> Callable[[dict], bool]:
    """A predicate applying, client-side, what the server could not: footprint, dates, cloud, CQL2."""

    def matches(item: dict) -> bool:
        if bbox is not None and not _footprint_intersects(item, bbox):
            return False
        if start is not None or end is not None:
            try:
                first, last = item_time_range(item)
            except ItemError:
                return False
            if (start is not None and last < start) or (end is not None and first > end):
                return False
        if max_cloud is not None:
            cover = item_cloud_cover(item)
            if cover is None or cover > max_cloud:
                return False
        return cql2 is None or evaluate(cql2, item) is True

    return matches
