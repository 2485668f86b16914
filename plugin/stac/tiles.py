"""Group search results by grid tile, so that a tile's dates form one time stack.

Catalogs name tiles in many ways (`grid:code`, `s2:mgrs_tile`, `mgrs:*`, `sentinel:*`, MODIS h/v,
`bdc:tiles`, Landsat path/row, `odc:region_code`, or only in the id); `tile_rules` reads each into one
name. Items that name none are clustered by footprint, under a name taken from where they are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from . import tile_rules as rules
from .items import Bbox, date_sort_key, item_bbox, item_epsg, sort_by_date, union_bbox

#: Two footprints whose bboxes overlap more than this (intersection over union) are one tile.
CLUSTER_IOU = 0.5
#: Untiled clusters are named after their centre; what comes before it marks them as such.
CLUSTER_PREFIX = "near "


@dataclass(frozen=True)
class TileGroup:
    """The items of one grid tile, oldest first."""

    tile: str
    """e.g. "34TGR", "221/071", "h10v05", "012010", "x174y088" (each as its provider writes it), or for items
    without a tile "near 45.12N 25.34E" (the centre of their footprints)."""
    items: tuple[dict, ...]
    epsg: int | None
    """The items' EPSG code when they all agree, else None."""
    bbox: Bbox | None
    """Union of the items' footprints, lon/lat."""


def _from_properties(props: dict) -> str | None:
    code = props.get("grid:code")
    if isinstance(code, str) and code.strip():
        return rules.from_grid_code(code)
    for key in rules.MGRS_KEYS:
        if named := rules.mgrs(props.get(key)):
            return named
    if named := rules.from_mgrs_parts(props):
        return named
    if "modis:horizontal-tile" in props and "modis:vertical-tile" in props:
        if named := rules.modis(props["modis:horizontal-tile"], props["modis:vertical-tile"]):
            return named
    if named := rules.modis_tile_id(props.get("modis:tile-id")):
        return named
    tiles = props.get("bdc:tiles") or props.get("bdc:tile")
    if isinstance(tiles, str) and tiles:
        return tiles
    if isinstance(tiles, list) and tiles:
        return "+".join(str(t) for t in tiles)
    if props.get("landsat:wrs_path") is not None and props.get("landsat:wrs_row") is not None:
        if named := rules.wrs(props["landsat:wrs_path"], props["landsat:wrs_row"]):
            return named
    if props.get("cbers:path") is not None and props.get("cbers:row") is not None:
        if pair := rules.path_row(props["cbers:path"], props["cbers:row"]):
            return pair
    region = props.get("odc:region_code")
    if isinstance(region, str) and region.strip():
        return rules.from_region_code(region)
    return None


def tile_id(item: dict) -> str | None:
    """The grid tile an item belongs to, normalised so that different catalogs agree; None if unknown."""
    props = item.get("properties") or {}
    if not isinstance(props, dict):
        props = {}
    if named := _from_properties(props):
        return named
    # Only then the names: the id (HLS, Sentinel-2 products, Landsat, MODIS...), or a product name property
    for name in (item.get("id"), *(props.get(key) for key in rules.PRODUCT_NAME_KEYS)):
        if named := rules.from_name(name):
            return named
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


def natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _centre_name(bbox: Bbox | None) -> str:
    """ "near 45.12N 25.34E", the rounded centre of a cluster's footprints: it depends on which items
    the cluster holds, not on the order they came in, so the same search names it the same again."""
    if bbox is None:
        return "without footprint"
    west, south, east, north = bbox
    if east < west:  # a footprint across the antimeridian
        east += 360
    lon = round(((west + east) / 2 + 180) % 360 - 180, 2)
    lat = round((south + north) / 2, 2)
    return f"{CLUSTER_PREFIX}{abs(lat):.2f}{'S' if lat < 0 else 'N'} {abs(lon):.2f}{'W' if lon < 0 else 'E'}"


def _distinct(groups: list[TileGroup]) -> list[TileGroup]:
    """Clusters that share a centre are told apart by their projection, then by their first date."""
    def renamed(groups: list[TileGroup], suffix) -> list[TileGroup]:
        counts = Counter(g.tile for g in groups)
        seen: Counter[str] = Counter()
        out = []
        for group in sorted(groups, key=lambda g: date_sort_key(g.items[0])):
            seen[group.tile] += 1
            extra = suffix(group, seen[group.tile]) if counts[group.tile] > 1 else ""
            out.append(replace(group, tile=group.tile + extra) if extra else group)
        return out

    groups = renamed(groups, lambda g, _n: f" EPSG:{g.epsg}" if g.epsg else "")
    return renamed(groups, lambda _g, n: f" ({n})")


def _cluster(items: list[dict]) -> list[list[dict]]:
    """Untiled items (oldest first) grouped by footprint overlap, in one projection."""
    # each cluster: (seed bbox, seed epsg, items); the seed, not a growing union, decides membership
    clusters: list[tuple[Bbox | None, int | None, list[dict]]] = []
    for item in items:
        bbox, epsg = item_bbox(item), item_epsg(item)
        for seed, seed_epsg, members in clusters:
            if bbox is not None and seed is not None and seed_epsg == epsg and _iou(seed, bbox) > CLUSTER_IOU:
                members.append(item)
                break
        else:
            clusters.append((bbox, epsg, [item]))
    return [members for _, _, members in clusters]


def group_by_tile(items: Iterable[dict]) -> list[TileGroup]:
    """Items grouped by tile id, tiles sorted by id; untiled items clustered by footprint overlap and
    named after the clusters' centres, after the tiles."""
    tiled: dict[str, list[dict]] = {}
    untiled: list[dict] = []
    for item in sort_by_date(items):
        tile = tile_id(item)
        if tile is None:
            untiled.append(item)
        else:
            tiled.setdefault(tile, []).append(item)
    groups = sorted((_group(tile, members) for tile, members in tiled.items()), key=lambda g: natural_key(g.tile))
    clusters = [_group(_centre_name(union_bbox(item_bbox(i) for i in members)), members)
                for members in _cluster(untiled)]
    return groups + sorted(_distinct(clusters), key=lambda g: natural_key(g.tile))
