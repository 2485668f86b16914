"""The three other collections: Sentinel-1 RTC-like backscatter, a DEM and a land-cover map.

They share the tiles of the Sentinel-2 collection (S1 and the DEM on the 20 m grid, land
cover on the 10 m grid) like national cubes that resample everything onto the MGRS grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import stac_writer as sw
from .grids import TileGrid
from .layout import DEM_COLLECTION, LANDCOVER_COLLECTION, S1_COLLECTION
from .raster_io import Georef, write_cog
from .schedule import S1_RELATIVE_ORBIT, Acquisition

DEM_NODATA = -32767.0
LANDCOVER_YEAR = 2023

WORLDCOVER_CLASSES = [
    {"value": v, "name": n, "description": d, "color_hint": c}
    for v, n, d, c in (
        (10, "tree_cover", "Tree cover", "006400"), (20, "shrubland", "Shrubland", "ffbb22"),
        (30, "grassland", "Grassland", "ffff4c"), (40, "cropland", "Cropland", "f096ff"),
        (50, "built_up", "Built-up", "fa0000"), (60, "bare_sparse_vegetation", "Bare / sparse vegetation", "b4b4b4"),
        (70, "snow_and_ice", "Snow and ice", "f0f0f0"),
        (80, "permanent_water_bodies", "Permanent water bodies", "0064c8"),
        (90, "herbaceous_wetland", "Herbaceous wetland", "0096a0"), (95, "mangroves", "Mangroves", "00cf75"),
        (100, "moss_and_lichen", "Moss and lichen", "fae6a0"),
    )
]
_WC_COLORS = {c["value"]: tuple(int(c["color_hint"][i:i + 2], 16) for i in (0, 2, 4)) for c in WORLDCOVER_CLASSES}


# ---------------------------------------------------------------- Sentinel-1 RTC
def s1_item_id(tile: TileGrid, acq: Acquisition) -> str:
    return f"S1A_IW_GRDH_1SDV_{acq.compact}_T{tile.code}_RTC"


def _s1_asset(pol: str) -> dict[str, Any]:
    return {
        "type": sw.COG_TYPE,
        "title": f"{pol.upper()}: gamma0 terrain-corrected backscatter (linear power)",
        "roles": ["data", "backscatter"],
        "sar:polarizations": [pol.upper()],
        "raster:bands": [{"nodata": "nan", "data_type": "float32", "spatial_resolution": 20,
                          "unit": "linear power"}],
    }


def s1_item_assets() -> dict[str, Any]:
    return {pol: _s1_asset(pol) for pol in ("vv", "vh")}


_SAR = {
    "sar:instrument_mode": "IW", "sar:frequency_band": "C", "sar:center_frequency": 5.405,
    "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD", "sar:resolution_range": 20,
    "sar:resolution_azimuth": 22, "sar:pixel_spacing_range": 10, "sar:pixel_spacing_azimuth": 10,
    "sar:looks_range": 5, "sar:looks_azimuth": 1, "sar:looks_equivalent_number": 4.4,
    "sar:observation_direction": "right",
}


def write_s1_item(item_dir: Path, tile: TileGrid, acq: Acquisition, bands: dict[str, np.ndarray]) -> dict[str, Any]:
    item_dir.mkdir(parents=True)
    iid = s1_item_id(tile, acq)
    assets = {}
    for pol, data in bands.items():
        write_cog(item_dir / f"{pol}.tif", data, Georef(tile.geotransform(20), tile.epsg), nodata=math.nan)
        assets[pol] = {"href": f"./{pol}.tif", **_s1_asset(pol)}
    props = {
        "datetime": acq.iso, "platform": acq.platform, "constellation": "sentinel-1", "instruments": ["c-sar"],
        "gsd": 20, **_SAR, "sat:orbit_state": "ascending", "sat:relative_orbit": S1_RELATIVE_ORBIT,
        "sat:absolute_orbit": 47464 + 175 * acq.index,  # 175 orbits per 12-day cycle
        "processing:level": "L2",
    }
    doc = sw.item(iid, S1_COLLECTION, tile, props, assets, sw.ext("sar", "sat", "raster", "processing"), res=20)
    sw.write_json(item_dir / f"{iid}.json", doc)
    return doc


def s1_collection(tiles: tuple[TileGrid, ...], item_ids: list[str], interval: list[str]) -> dict[str, Any]:
    summaries = {
        "platform": ["sentinel-1a"], "constellation": ["sentinel-1"], "instruments": ["c-sar"],
        "gsd": [20], "proj:epsg": sorted({t.epsg for t in tiles}),
        "sar:instrument_mode": ["IW"], "sar:frequency_band": ["C"], "sar:polarizations": ["VV", "VH"],
        "sar:product_type": ["GRD"], "sat:orbit_state": ["ascending"],
    }
    description = (
        "Sentinel-1 RTC-like gamma0 backscatter (linear power, float32, NaN no-data) on the 20 m "
        "grids of the two demo MGRS tiles, every 12 days (S1A), with multiplicative speckle."
    )
    return sw.collection(
        S1_COLLECTION, "Demo Sentinel-1 RTC (synthetic)", description,
        sw.ext("sar", "sat", "raster", "processing", "projection", "grid", "mgrs"),
        [t.bbox_lonlat() for t in tiles], interval, item_ids, s1_item_assets(), summaries,
        ["sentinel", "copernicus", "sar", "rtc", "synthetic", "demo"],
    )


# ---------------------------------------------------------------- DEM
DEM_DATETIME = "2021-04-22T00:00:00Z"


def _dem_asset() -> dict[str, Any]:
    return {"type": sw.COG_TYPE, "title": "Elevation (metres above the geoid)", "roles": ["data"],
            "raster:bands": [{"nodata": DEM_NODATA, "data_type": "float32", "spatial_resolution": 20,
                              "unit": "metre"}]}


def write_dem_item(item_dir: Path, tile: TileGrid, data: np.ndarray) -> dict[str, Any]:
    item_dir.mkdir(parents=True)
    iid = f"DEM_T{tile.code}"
    write_cog(item_dir / "data.tif", data, Georef(tile.geotransform(20), tile.epsg), nodata=DEM_NODATA)
    props = {"datetime": DEM_DATETIME, "platform": "tandem-x", "gsd": 20}
    doc = sw.item(iid, DEM_COLLECTION, tile, props, {"data": {"href": "./data.tif", **_dem_asset()}},
                  sw.ext("raster"), res=20)
    sw.write_json(item_dir / f"{iid}.json", doc)
    return doc


def dem_collection(tiles: tuple[TileGrid, ...], item_ids: list[str]) -> dict[str, Any]:
    return sw.collection(
        DEM_COLLECTION, "Demo digital elevation model (synthetic)",
        "Smooth synthetic terrain around a lake basin, float32 metres on the tiles' 20 m grids.",
        sw.ext("raster", "projection", "grid", "mgrs"), [t.bbox_lonlat() for t in tiles],
        [DEM_DATETIME, DEM_DATETIME], item_ids, {"data": _dem_asset()},
        {"gsd": [20], "proj:epsg": sorted({t.epsg for t in tiles})}, ["dem", "elevation", "synthetic", "demo"],
    )


# ---------------------------------------------------------------- land cover
_LC_START = f"{LANDCOVER_YEAR}-01-01T00:00:00Z"
_LC_END = f"{LANDCOVER_YEAR}-12-31T23:59:59Z"


def _landcover_asset() -> dict[str, Any]:
    return {"type": sw.COG_TYPE, "title": "Land-cover classes (ESA WorldCover codes)", "roles": ["data"],
            "classification:classes": WORLDCOVER_CLASSES,
            "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10,
                              "classification:classes": WORLDCOVER_CLASSES}]}


def write_landcover_item(item_dir: Path, tile: TileGrid, data: np.ndarray) -> dict[str, Any]:
    item_dir.mkdir(parents=True)
    iid = f"LC{LANDCOVER_YEAR}_T{tile.code}"
    write_cog(item_dir / "data.tif", data, Georef(tile.geotransform(10), tile.epsg), nodata=0,
              resampling="NEAREST", overview_count=2, color_table=_WC_COLORS)
    props = {"datetime": None, "start_datetime": _LC_START, "end_datetime": _LC_END, "gsd": 10}
    doc = sw.item(iid, LANDCOVER_COLLECTION, tile, props, {"data": {"href": "./data.tif", **_landcover_asset()}},
                  sw.ext("raster", "classification"), res=10)
    sw.write_json(item_dir / f"{iid}.json", doc)
    return doc


def landcover_collection(tiles: tuple[TileGrid, ...], item_ids: list[str]) -> dict[str, Any]:
    return sw.collection(
        LANDCOVER_COLLECTION, "Demo land cover (synthetic, WorldCover legend)",
        f"Land-cover map of {LANDCOVER_YEAR} at 10 m in ESA WorldCover codes (state before the "
        "October 2023 clear-cut), on both demo tiles.",
        sw.ext("raster", "classification", "projection", "grid", "mgrs"), [t.bbox_lonlat() for t in tiles],
        [_LC_START, _LC_END], item_ids, {"data": _landcover_asset()},
        {"gsd": [10], "proj:epsg": sorted({t.epsg for t in tiles}), "classification:classes": WORLDCOVER_CLASSES},
        ["land cover", "worldcover", "synthetic", "demo"],
    )
