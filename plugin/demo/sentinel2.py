"""The Sentinel-2 L2A-like collection: COGs, thumbnails and STAC documents per item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import stac_writer as sw
from .grids import TileGrid
from .layout import S2_COLLECTION
from .raster_io import Georef, write_cog, write_png
from .scenes import S2Scene, thumbnail
from .schedule import S2_RELATIVE_ORBIT, Acquisition
from .sky import SCL_SHADOW
from .spectra import DN_OFFSET, DN_SCALE

COLLECTION_ID = S2_COLLECTION
TITLE = "Demo Sentinel-2 L2A (synthetic)"
#: Asset key -> resolution in metres.
ASSET_RES = {"blue": 10, "green": 10, "red": 10, "nir": 10, "swir16": 20, "scl": 20}
EO_BANDS = {
    "blue": {"name": "B02", "common_name": "blue", "description": "Blue (band 2)",
             "center_wavelength": 0.49, "full_width_half_max": 0.098},
    "green": {"name": "B03", "common_name": "green", "description": "Green (band 3)",
              "center_wavelength": 0.56, "full_width_half_max": 0.045},
    "red": {"name": "B04", "common_name": "red", "description": "Red (band 4)",
            "center_wavelength": 0.665, "full_width_half_max": 0.038},
    "nir": {"name": "B08", "common_name": "nir", "description": "NIR 1 (band 8)",
            "center_wavelength": 0.842, "full_width_half_max": 0.145},
    "swir16": {"name": "B11", "common_name": "swir16", "description": "SWIR 1 (band 11)",
               "center_wavelength": 1.61, "full_width_half_max": 0.143},
}
SCL_CLASSES = [
    {"value": v, "name": n, "description": d, "color_hint": c}
    for v, n, d, c in (
        (0, "no_data", "No data", "000000"), (1, "saturated_or_defective", "Saturated or defective", "ff0000"),
        (2, "dark_area_pixels", "Dark area pixels", "2f2f2f"), (3, "cloud_shadows", "Cloud shadows", "643200"),
        (4, "vegetation", "Vegetation", "00a000"), (5, "not_vegetated", "Not vegetated", "ffe65a"),
        (6, "water", "Water", "0000ff"), (7, "unclassified", "Unclassified", "808080"),
        (8, "cloud_medium_probability", "Cloud medium probability", "c0c0c0"),
        (9, "cloud_high_probability", "Cloud high probability", "ffffff"),
        (10, "thin_cirrus", "Thin cirrus", "64c8ff"), (11, "snow", "Snow or ice", "ff96ff"),
    )
]
_EXTENSIONS = ("eo", "raster", "view", "sat", "processing", "classification")


def item_id(tile: TileGrid, acq: Acquisition) -> str:
    """ESA product-name style id, e.g. ``S2A_MSIL2A_20230305T092029_R093_T34TGR``."""
    unit = "S2A" if acq.platform == "sentinel-2a" else "S2B"
    return f"{unit}_MSIL2A_{acq.compact}_R{S2_RELATIVE_ORBIT:03d}_T{tile.code}"


def _raster_band(key: str) -> dict[str, Any]:
    res = ASSET_RES[key]
    if key == "scl":
        return {"nodata": 0, "data_type": "uint8", "spatial_resolution": res, "classification:classes": SCL_CLASSES}
    return {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
            "scale": DN_SCALE, "offset": DN_OFFSET}


def _asset_meta(key: str) -> dict[str, Any]:
    """The parts of an asset that are the same in item_assets and in every item."""
    if key == "scl":
        return {"type": sw.COG_TYPE, "title": "Scene classification map (SCL)", "roles": ["data"],
                "gsd": 20, "raster:bands": [_raster_band(key)], "classification:classes": SCL_CLASSES}
    band = EO_BANDS[key]
    return {"type": sw.COG_TYPE, "title": f"{band['description']} - {ASSET_RES[key]}m",
            "roles": ["data", "reflectance"], "gsd": ASSET_RES[key], "eo:bands": [band],
            "raster:bands": [_raster_band(key)]}


def item_assets() -> dict[str, Any]:
    out = {key: _asset_meta(key) for key in ASSET_RES}
    out["thumbnail"] = {"type": "image/png", "title": "Thumbnail (true colour)", "roles": ["thumbnail"]}
    return out


def write_item(item_dir: Path, tile: TileGrid, acq: Acquisition, scene: S2Scene,
               sun: tuple[float, float]) -> dict[str, Any]:
    """Write the COGs, the thumbnail and the item JSON of one tile on one date."""
    item_dir.mkdir(parents=True)
    iid = item_id(tile, acq)
    assets: dict[str, Any] = {}
    for key, res in ASSET_RES.items():
        data = scene.scl if key == "scl" else scene.bands[key]
        georef = Georef(tile.geotransform(res), tile.epsg)
        write_cog(item_dir / f"{key}.tif", data, georef, nodata=0,
                  resampling="NEAREST" if key == "scl" else "AVERAGE", overview_count=2 if res == 10 else 1)
        asset = {"href": f"./{key}.tif", **_asset_meta(key)}
        if res != 10:
            asset.update(sw.grid_fields(tile, res))
        assets[key] = asset
    write_png(item_dir / "thumbnail.png", thumbnail(scene))
    assets["thumbnail"] = {"href": "./thumbnail.png", **item_assets()["thumbnail"]}
    valid = scene.scl != 0
    shadow = float((scene.scl == SCL_SHADOW).sum()) / max(int(valid.sum()), 1)
    props = {
        "datetime": acq.iso,
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": 10,
        "eo:cloud_cover": scene.cloud_cover,
        "s2:mgrs_tile": tile.code,
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": "05.09",
        "s2:nodata_pixel_percentage": round(100.0 * scene.nodata_fraction, 2),
        "s2:cloud_shadow_percentage": round(100.0 * shadow, 2),
        "sat:relative_orbit": S2_RELATIVE_ORBIT,
        "sat:orbit_state": "descending",
        "view:sun_azimuth": round(sun[0], 2),
        "view:sun_elevation": round(sun[1], 2),
        "processing:level": "L2A",
    }
    doc = sw.item(iid, COLLECTION_ID, tile, props, assets, sw.ext(*_EXTENSIONS), res=10)
    sw.write_json(item_dir / f"{iid}.json", doc)
    return doc


def collection_doc(tiles: tuple[TileGrid, ...], item_ids: list[str], interval: list[str],
                   cloud_covers: list[float]) -> dict[str, Any]:
    summaries = {
        "platform": ["sentinel-2a", "sentinel-2b"],
        "constellation": ["sentinel-2"],
        "instruments": ["msi"],
        "gsd": [10, 20],
        "eo:cloud_cover": {"minimum": min(cloud_covers), "maximum": max(cloud_covers)},
        "proj:epsg": sorted({t.epsg for t in tiles}),
        "mgrs:utm_zone": sorted({t.utm_zone for t in tiles}),
        "grid:code": [f"MGRS-{t.code}" for t in tiles],
        "eo:bands": list(EO_BANDS.values()),
    }
    description = (
        "Sentinel-2 L2A-like surface reflectance on two overlapping MGRS tiles (34TGR in UTM 34N, "
        "35TKL in UTM 35N), March 2023 to July 2024, with clouds, cloud shadows, thin cirrus and "
        "swath-edge no-data recorded in the SCL band. DN = reflectance * 10000 + 1000 "
        "(raster:bands scale 0.0001, offset -0.1, as Earth Search sentinel-2-c1-l2a)."
    )
    return sw.collection(
        COLLECTION_ID, TITLE, description, sw.ext(*_EXTENSIONS, "projection", "grid", "mgrs"),
        [t.bbox_lonlat() for t in tiles], interval, item_ids, item_assets(), summaries,
        ["sentinel", "copernicus", "esa", "msi", "l2a", "synthetic", "demo"],
    )

