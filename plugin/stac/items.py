"""Helpers over plain STAC item dicts: dates, cloud cover, projection, footprints and problems.

Items stay the dicts the server sent (no pystac objects): they go to QGIS layers, to odc-stac and
to the task signals unchanged, and nothing is lost in a round trip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

Bbox = tuple[float, float, float, float]


class ItemError(ValueError):
    """An item lacks something a caller needs; the message names the item."""


def item_name(item: Any) -> str:
    if isinstance(item, dict) and item.get("id"):
        return str(item["id"])
    return "(an item without id)"


def parse_datetime(value: str) -> datetime:
    """An RFC 3339 / ISO 8601 text as an aware UTC datetime (naive means UTC)."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.9's fromisoformat accepts only 3 or 6 fraction digits: pad or cut to 6.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", text)
    if match:
        text = f"{match.group(1)}.{match.group(2)[:6].ljust(6, '0')}{match.group(3)}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, as STAC APIs expect in `datetime` and CQL2 timestamps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def _properties(item: Any) -> dict[str, Any]:
    props = item.get("properties") if isinstance(item, dict) else None
    return props if isinstance(props, dict) else {}


def item_time_range(item: dict) -> tuple[datetime, datetime]:
    """(start, end) of the acquisition: both `datetime` for an instant, else start/end_datetime."""
    props = _properties(item)
    try:
        if props.get("datetime"):
            instant = parse_datetime(str(props["datetime"]))
            start = parse_datetime(str(props["start_datetime"])) if props.get("start_datetime") else instant
            end = parse_datetime(str(props["end_datetime"])) if props.get("end_datetime") else instant
            return start, end
        if props.get("start_datetime"):
            start = parse_datetime(str(props["start_datetime"]))
            end = parse_datetime(str(props["end_datetime"])) if props.get("end_datetime") else start
            return start, end
    except ValueError as error:
        raise ItemError(f"item {item_name(item)} has an unreadable datetime: {error}") from None
    raise ItemError(f"item {item_name(item)} has no datetime (nor start_datetime)")


def item_when(item: dict, with_time: bool = False) -> str:
    """The item's date as a user reads it: "2023-06-13", or its interval "2022-01-17/2022-01-24" when it
    has one (a MODIS 8-day composite, a yearly land-cover map); ``with_time`` adds the UTC times."""
    fmt = "%Y-%m-%d %H:%M:%S" if with_time else "%Y-%m-%d"
    if _properties(item).get("datetime"):
        return item_datetime(item).strftime(fmt)
    start, end = item_time_range(item)
    first, last = start.strftime(fmt), end.strftime(fmt)
    return first if first == last else f"{first}/{last}"


def item_datetime(item: dict) -> datetime:
    """The item's date as an aware UTC datetime; `start_datetime` when `datetime` is null."""
    props = _properties(item)
    if props.get("datetime"):
        try:
            return parse_datetime(str(props["datetime"]))
        except ValueError as error:
            raise ItemError(f"item {item_name(item)} has an unreadable datetime: {error}") from None
    return item_time_range(item)[0]


def item_cloud_cover(item: dict) -> float | None:
    value = _properties(item).get("eo:cloud_cover")
    try:
        cover = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return cover if cover is not None and math.isfinite(cover) else None


def item_epsg(item: dict) -> int | None:
    """The EPSG code from `proj:epsg` (projection v1.x) or `proj:code` "EPSG:xxxx" (v2)."""
    props = _properties(item)
    epsg = props.get("proj:epsg")
    if isinstance(epsg, (int, float)) and not isinstance(epsg, bool) and epsg > 0:
        return int(epsg)
    if isinstance(epsg, str) and epsg.isdigit():
        return int(epsg)
    code = props.get("proj:code")
    if isinstance(code, str):
        match = re.fullmatch(r"\s*EPSG:(\d+)\s*", code, re.IGNORECASE)
        if match:
            return int(match.group(1))
    return None


def item_bbox(item: dict) -> Bbox | None:
    """The lon/lat bbox from `bbox`, else computed from the geometry; None when neither is usable."""
    bbox = item.get("bbox") if isinstance(item, dict) else None
    if isinstance(bbox, (list, tuple)) and len(bbox) in (4, 6):
        try:
            values = [float(v) for v in bbox]
        except (TypeError, ValueError):
            values = []
        if len(values) == 6:
            values = [values[0], values[1], values[3], values[4]]
        if len(values) == 4:
            return (values[0], values[1], values[2], values[3])
    geometry = item.get("geometry") if isinstance(item, dict) else None
    try:
        coords = list(_positions(geometry.get("coordinates"))) if isinstance(geometry, dict) else []
    except (TypeError, ValueError):
        coords = []
    if not coords:
        return None
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    return (min(xs), min(ys), max(xs), max(ys))


def _positions(value: Any) -> Iterable[tuple[float, float]]:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, float)):
        if len(value) >= 2:
            yield float(value[0]), float(value[1])
        return
    if isinstance(value, (list, tuple)):
        for part in value:
            yield from _positions(part)


def _has_positions(geometry: dict) -> bool:
    """Whether a GeoJSON geometry (or each part of a GeometryCollection) has numeric positions."""
    try:
        if geometry.get("type") == "GeometryCollection":
            parts = geometry.get("geometries")
            return bool(parts) and all(isinstance(p, dict) and _has_positions(p) for p in parts)
        return any(True for _ in _positions(geometry.get("coordinates")))
    except (TypeError, ValueError):
        return False


_NON_DATA_ROLES = {"thumbnail", "overview", "metadata"}


def fatal_problems(item: Any) -> list[str]:
    """Problems that make an item unusable in a search result (no id, footprint or date)."""
    if not isinstance(item, dict):
        return [f"a search result is not a STAC item (got {type(item).__name__})"]
    name = item_name(item)
    problems = []
    if not item.get("id"):
        problems.append(f"item {name} has no id")
    geometry = item.get("geometry")
    if not isinstance(geometry, dict) or not geometry.get("type") or item_bbox(item) is None:
        problems.append(f"item {name} has no geometry")
    elif not _has_positions(geometry):
        problems.append(f"item {name} has unusable geometry coordinates (no footprint)")
    try:
        item_datetime(item)
    except ItemError as error:
        problems.append(str(error))
    return problems


def validate_item(item: Any) -> list[str]:
    """Everything wrong with an item, in users' words; empty when it is fine.

    The first problems (id, geometry, datetime) make an item unusable; the others (projection,
    media types) are warnings: GDAL can still read the files.
    """
    problems = fatal_problems(item)
    if not isinstance(item, dict):
        return problems
    name = item_name(item)
    if item_epsg(item) is None and not _properties(item).get("proj:wkt2") and not _properties(item).get(
            "proj:projjson"):
        problems.append(f"item {name} has no projection metadata (proj:epsg / proj:code)")
    assets = item.get("assets")
    if not isinstance(assets, dict) or not assets:
        problems.append(f"item {name} has no assets")
        return problems
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not asset.get("href"):
            problems.append(f"item {name}: asset '{key}' has no href")
        elif not asset.get("type") and not _NON_DATA_ROLES & set(asset.get("roles") or []):
            problems.append(f"item {name}: asset '{key}' has no media type")
    return problems


def date_sort_key(item: dict) -> tuple[datetime, str]:
    try:
        when = item_datetime(item)
    except ItemError:
        when = datetime.max.replace(tzinfo=timezone.utc)
    return when, item_name(item)


def sort_by_date(items: Iterable[dict]) -> list[dict]:
    """Items oldest first (ties by id, so tiles of one pass keep a stable order); undated ones last."""
    return sorted(items, key=date_sort_key)


def union_bbox(boxes: Iterable[Bbox | None]) -> Bbox | None:
    """The lon/lat box around ``boxes`` (None ones ignored); None when there is none."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return (min(b[0] for b in present), min(b[1] for b in present),
            max(b[2] for b in present), max(b[3] for b in present))


def item_self_href(item: dict) -> str | None:
    """Where the item's JSON lives: the base its relative asset hrefs resolve against."""
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None
