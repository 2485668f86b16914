"""The Zarr data cube of tile A: the Sentinel-2 series as (time, y, x) arrays.

Chunks span the whole time axis and 64 x 64 pixels, the shape that makes a pixel's time
series one chunk read per band. Reflectances stay uint16 DN with CF ``scale_factor`` and
``add_offset`` (decoded by xarray, exposed as band scale/offset by GDAL); swir16 and scl are
brought to 10 m by repeating each 20 m pixel 2 x 2 (nearest neighbour), so all variables
share one grid. Time is CF seconds since 2023-01-01: integer seconds decode exactly, which
fractional "days since" would not (xarray rounds some to the nanosecond below).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import osr

from .grids import TileGrid, crs_wkt
from .scenes import BANDS_10M, S2Scene
from .schedule import Acquisition
from .sentinel2 import COLLECTION_ID, EO_BANDS, SCL_CLASSES
from .spectra import DN_OFFSET, DN_SCALE
from .zarr_writer import ZarrArray, write_zarr

CHUNK_XY = 64
TIME_EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)
TIME_UNITS = "seconds since 2023-01-01 00:00:00"


def _grid_mapping(tile: TileGrid) -> dict[str, Any]:
    """CF grid mapping of a UTM north zone, plus the WKT and geotransform GDAL/rioxarray use."""
    wkt = crs_wkt(tile.epsg)
    return {
        "grid_mapping_name": "transverse_mercator",
        "longitude_of_central_meridian": float(6 * tile.utm_zone - 183),
        "latitude_of_projection_origin": 0.0,
        "scale_factor_at_central_meridian": 0.9996,
        "false_easting": 500000.0,
        "false_northing": 0.0,
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
        "longitude_of_prime_meridian": 0.0,
        "reference_ellipsoid_name": "WGS 84",
        "geographic_crs_name": "WGS 84",
        "horizontal_datum_name": "World Geodetic System 1984",
        "projected_crs_name": f"WGS 84 / UTM zone {tile.utm_zone}N",
        "crs_wkt": wkt,
        "spatial_ref": wkt,
        "GeoTransform": " ".join(repr(v) for v in tile.geotransform(10)),
    }


def _gdal_crs(tile: TileGrid) -> dict[str, str]:
    """The ``_CRS`` attribute GDAL's Zarr driver reads (it ignores CF grid mappings)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(tile.epsg)
    return {"url": f"http://www.opengis.net/def/crs/EPSG/0/{tile.epsg}",
            "wkt": srs.ExportToWkt(["FORMAT=WKT2_2018"])}


def _up(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)


def write_cube(path: Path, tile: TileGrid, acqs: list[Acquisition], scenes: list[S2Scene],
               generator_version: str) -> None:
    """Write the Zarr v2 cube of one tile from its rendered Sentinel-2 scenes."""
    n = len(acqs)
    rows, cols = tile.shape(10)
    chunks = (n, CHUNK_XY, CHUNK_XY)
    common = {"grid_mapping": "spatial_ref", "coordinates": "spatial_ref", "_CRS": _gdal_crs(tile)}
    arrays = []
    seconds = np.array([int((a.datetime - TIME_EPOCH).total_seconds()) for a in acqs], dtype=np.int64)
    arrays.append(ZarrArray("time", seconds, ("time",), (n,), None, {
        "standard_name": "time", "long_name": "sensing time", "axis": "T",
        "units": TIME_UNITS, "calendar": "proleptic_gregorian"}))
    x0, dx, _, y0, _, dy = tile.geotransform(10)
    arrays.append(ZarrArray("x", x0 + (np.arange(cols) + 0.5) * dx, ("x",), (cols,), None, {
        "standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection",
        "units": "m", "axis": "X"}))
    arrays.append(ZarrArray("y", y0 + (np.arange(rows) + 0.5) * dy, ("y",), (rows,), None, {
        "standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection",
        "units": "m", "axis": "Y"}))
    arrays.append(ZarrArray("spatial_ref", np.array(0, dtype=np.int32), (), (), None, _grid_mapping(tile)))
    for band in (*BANDS_10M, "swir16"):
        stack = np.stack([s.bands[band] for s in scenes])
        data = stack if band in BANDS_10M else _up(stack)
        eo = EO_BANDS[band]
        arrays.append(ZarrArray(band, data, ("time", "y", "x"), chunks, 0, {
            "long_name": f"{eo['description']} surface reflectance",
            "standard_name": "surface_bidirectional_reflectance", "units": "1",
            "scale_factor": DN_SCALE, "add_offset": DN_OFFSET, "_FillValue": 0,
            "center_wavelength_um": eo["center_wavelength"], "resampling": "none" if band in BANDS_10M
            else "20 m pixels repeated 2 x 2 (nearest neighbour)", **common}))
    scl = _up(np.stack([s.scl for s in scenes]))
    arrays.append(ZarrArray("scl", scl, ("time", "y", "x"), chunks, 0, {
        "long_name": "Sentinel-2 scene classification", "_FillValue": 0,
        "flag_values": [c["value"] for c in SCL_CLASSES],
        "flag_meanings": " ".join(c["name"] for c in SCL_CLASSES),
        "resampling": "20 m pixels repeated 2 x 2 (nearest neighbour)", **common}))
    attrs = {
        "title": f"Demo Sentinel-2 L2A cube, tile {tile.code}",
        "Conventions": "CF-1.8",
        "source": f"cubescope demo generator {generator_version} (synthetic data)",
        "stac_collection": COLLECTION_ID,
        "mgrs_tile": tile.code,
        "grid_code": f"MGRS-{tile.code}",
        "proj_epsg": tile.epsg,
        "chunking": {"time": n, "y": CHUNK_XY, "x": CHUNK_XY},
        "chunking_note": "whole time axis per chunk: one chunk read per band for a pixel time series",
        "time_coverage_start": acqs[0].iso,
        "time_coverage_end": acqs[-1].iso,
    }
    write_zarr(path, arrays, attrs)
