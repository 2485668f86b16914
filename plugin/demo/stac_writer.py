"""STAC documents shaped like the ones national cubes and Earth Search publish.

Plain dicts (no pystac) in the "self-contained" layout: every link is relative and there are
no ``self`` links, so the catalog can be moved, zipped or served from any URL prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .grids import TileGrid

STAC_VERSION = "1.0.0"
LICENSE = "CC-BY-4.0"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    name: f"https://stac-extensions.github.io/{name}/{version}/schema.json"
    for name, version in (
        ("eo", "v1.1.0"), ("raster", "v1.1.0"), ("projection", "v1.1.0"), ("grid", "v1.1.0"),
        ("mgrs", "v1.0.0"), ("sar", "v1.0.0"), ("sat", "v1.0.0"), ("view", "v1.0.0"),
        ("processing", "v1.1.0"), ("classification", "v1.1.0"), ("item-assets", "v1.0.0"),
    )
}
PROVIDERS = [
    {"name": "Cubescope demo generator", "roles": ["producer", "processor", "host"],
     "description": "Synthetic data with a known ground truth; not real observations."},
]


def ext(*names: str) -> list[str]:
    return [EXT[n] for n in names]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Stable, readable JSON (sorted keys would scramble the STAC field order people expect)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def catalog(children: list[tuple[str, str]]) -> dict[str, Any]:
    """Root catalog; `children` are (collection id, title)."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "cubescope-demo",
        "title": "Cubescope demo cube",
        "description": (
            "Offline, synthetic data cube around 24°E 45.5°N (two overlapping MGRS tiles in "
            "UTM zones 34 and 35): Sentinel-2 L2A-like and Sentinel-1 RTC-like time series, a DEM "
            "and a land-cover map, generated with a known ground truth (truth/truth.json)."
        ),
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json",
                   "title": "Cubescope demo cube"}]
        + [{"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json", "title": title}
           for cid, title in children],
    }


def collection(
    cid: str, title: str, description: str, extensions: list[str], bboxes: list[list[float]],
    interval: list[str | None], item_ids: list[str], item_assets: dict[str, Any],
    summaries: dict[str, Any], keywords: list[str],
) -> dict[str, Any]:
    """A collection whose items live in ``./<item-id>/<item-id>.json``."""
    union = [min(b[0] for b in bboxes), min(b[1] for b in bboxes),
             max(b[2] for b in bboxes), max(b[3] for b in bboxes)]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [*extensions, EXT["item-assets"]],
        "id": cid,
        "title": title,
        "description": description,
        "keywords": keywords,
        "license": LICENSE,
        "providers": PROVIDERS,
        "extent": {"spatial": {"bbox": [union, *bboxes]}, "temporal": {"interval": [interval]}},
        "summaries": summaries,
        "item_assets": item_assets,
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            {"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/", "type": "text/html"},
        ] + [{"rel": "item", "href": f"./{iid}/{iid}.json", "type": "application/geo+json"} for iid in item_ids],
    }


def item(
    iid: str, cid: str, tile: TileGrid, properties: dict[str, Any], assets: dict[str, Any],
    extensions: list[str], res: int,
) -> dict[str, Any]:
    """A GeoJSON Feature on a tile's grid at `res`; assets on another grid carry their own proj:*."""
    ring = tile.footprint_lonlat()
    props = dict(properties)
    props.update({
        "proj:epsg": tile.epsg,
        "proj:shape": list(tile.shape(res)),
        "proj:transform": tile.proj_transform(res),
        "grid:code": f"MGRS-{tile.code}",
        "mgrs:utm_zone": tile.utm_zone,
        "mgrs:latitude_band": tile.latitude_band,
        "mgrs:grid_square": tile.grid_square,
    })
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [*extensions, EXT["projection"], EXT["grid"], EXT["mgrs"]],
        "id": iid,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": tile.bbox_lonlat(),
        "properties": props,
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ],
        "assets": assets,
        "collection": cid,
    }


def grid_fields(tile: TileGrid, res: int) -> dict[str, Any]:
    """Asset-level proj:* for an asset whose grid differs from the item's."""
    return {"proj:shape": list(tile.shape(res)), "proj:transform": tile.proj_transform(res)}


def cog_asset(href: str, title: str, roles: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"href": href, "type": COG_TYPE, "title": title, "roles": roles or ["data"], **fields}
