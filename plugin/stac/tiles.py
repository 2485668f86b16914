"""Group search results by grid tile, so that a tile's dates form one time stack.

Catalogs name tiles in many ways (`grid:code`, `s2:mgrs_tile`, `mgrs:*`, `bdc:tiles`, Landsat
path/row, ...); items that name none are clustered by footprint so they still stack sensibly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .items import Bbox, item_bbox, item_epsg, sort_by_date, union_bbox

#: Two footprints whose bboxes overlap more than this (intersection over union) are one tile.
CLUSTER_IOU = 0.5


@dataclass(frozen=True)
class TileGroup:
    """The items of one grid tile, oldest first."""

    tile: str
    """e.g. "MGRS-34TGR", "WRS2-221/071", "BDC:012010", or "cluster-1" for items without a tile id."""
    items: tuple[dict, ...]
    epsg: int | None
    """The items' EPSG code when they all agree, else None."""
    bbox: Bbox | None
    """Union of the items' footprints, lon/lat."""


def _mgrs(code: str) -> str | None:
    match = re.fullmatch(r"\s*(?:MGRS-|T)?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})\s*", code, re.IGNORECASE)
    if not match:
        return None
    zone, band, square = match.groups()
    return f"MGRS-{int(zone):02d}{band.upper()}{square.upper()}"


def _path_row(path: object, row: object) -> str | None:
    try:
        return f"{int(str(path)):03d}/{int(str(row)):03d}"
    except ValueError:
        return None


def tile_id(item: dict) -> str | None:
    """The grid tile an item belongs to, normalised so that different catalogs agree; None if unknown."""
    props = item.get("properties") or {}
    code = props.get("grid:code")
    if isinstance(code, str) and code.strip():
        if code.upper().startswith("MGRS-"):
            return _mgrs(code) or code.strip()
        return code.strip()
    for key in ("s2:mgrs_tile", "mgrs:tile", "tile_id"):
        value = props.get(key)
        if isinstance(value, str) and (normalised := _mgrs(value)):
            return normalised
    for prefix in ("mgrs", "sentinel"):
        zone = props.get(f"{prefix}:utm_zone")
        band = props.get(f"{prefix}:latitude_band")
        square = props.get(f"{prefix}:grid_square")
        if zone is not None and band and square and (normalised := _mgrs(f"{zone}{band}{square}")):
            return normalised
    tiles = props.get("bdc:tiles") or props.get("bdc:tile")
    if isinstance(tiles, str) and tiles:
        return f"BDC:{tiles}"
    if isinstance(tiles, list) and tiles:
        return "BDC:" + "+".join(str(t) for t in tiles)
    if props.get("landsat:wrs_path") is not None and props.get("landsat:wrs_row") is not None:
        pair = _path_row(props["landsat:wrs_path"], props["landsat:wrs_row"])
        if pair:
            return f"WRS2-{pair}"
    if props.get("cbers:path") is not None and props.get("cbers:row") is not None:
        pair = _path_row(props["cbers:path"], props["cbers:row"])
        if pair:
            return f"CBERS-{pair}"
    region = props.get("odc:region_code")
    if isinstance(region, str) and region:
        return f"ODC:{region}"
    return None


def _iou(a: Bbox, b: Bbox) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0



def _group(tile: str, items: list[dict]) -> TileGroup:
    epsgs = Counter(item_epsg(i) for i in items)
    epsg = next(iter(epsgs)) if len(epsgs) == 1 else None
    return TileGroup(tile, tuple(sort_by_date(items)), epsg, union_bbox(item_bbox(i) for i in items))


def _natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def group_by_tile(items: Iterable[dict]) -> list[TileGroup]:
    """Items grouped by tile id, tiles sorted by id; untiled items clustered by footprint overlap."""
    tiled: dict[str, list[dict]] = {}
    # each cluster: (seed bbox, seed epsg, items); the seed, not a growing union, decides membership
    clusters: list[tuple[Bbox | None, int | None, list[dict]]] = []
    for item in sort_by_date(items):
        tile = tile_id(item)
        if tile is not None:
            tiled.setdefault(tile, []).append(item)
            continue
        bbox, epsg = item_bbox(item), item_epsg(item)
        for seed, seed_epsg, members in clusters:
            if bbox is not None and seed is not None and seed_epsg == epsg and _iou(seed, bbox) > CLUSTER_IOU:
                members.append(item)
                break
        else:
            clusters.append((bbox, epsg, [item]))
    groups = [_group(tile, members) for tile, members in tiled.items()]
    groups += [_group(f"cluster-{n}", members) for n, (_, _, members) in enumerate(clusters, start=1)]
    return sorted(groups, key=lambda g: _natural_key(g.tile))
