"""The benchmark's data: 120 dates x 3 single-band COGs (2048 x 2048, deflate, 512-pixel tiles) and a Zarr cube.

Written once into ``build/bench-data`` (a stamp file marks a complete set) from a seed, so every run
and every machine reads the same bytes. One base array is made and each file adds a cheap per-date,
per-band offset to it: writing the 360 files takes well under a minute. The value of any pixel is
known without reading (`expected_value`), which is what the benchmark checks its reads against.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from cubescope.plugin.cube.zarr_compat import v2_format

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "build" / "bench-data"
VERSION = "2"
SEED = 20240601
DATES = 120
BANDS = ("B02", "B04", "B08")
SIZE = 2048
TILE = 512
PIXEL = 10.0
EPSG = 32634
ORIGIN = (500000.0, 5000000.0)
#: The Zarr cube: the same dates and bands on a 512 x 512 window, chunks of 10 dates x 128 x 128.
ZARR_SIZE = 512
ZARR_CHUNKS = (10, 128, 128)


@dataclass(frozen=True)
class BenchData:
    root: Path
    dates: tuple[date, ...]
    cogs: Path
    zarr: Path

    def relative_path(self, when: date, band: str) -> str:
        return f"cogs/{when.isoformat()}/{band}.tif"


def bench_dates() -> tuple[date, ...]:
    first = date(2021, 1, 3)
    return tuple(first + timedelta(days=5 * i) for i in range(DATES))


@lru_cache(maxsize=1)
def base_array() -> np.ndarray:
    """A field with structure and a little noise (tiles compress to a few hundred kB, like real bands)."""
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    field = 1500 + 600 * np.sin(x / 97.0) * np.cos(y / 131.0) + (x * 3 + y * 2) % 500
    return (field + rng.integers(0, 8, (SIZE, SIZE))).astype(np.uint16)


def offset(date_index: int, band_index: int) -> int:
    return (date_index * 37 + band_index * 1000) % 3000 + 1


def expected_value(date_index: int, band_index: int, row: int, col: int) -> int:
    """The raw value of a pixel, from the formula the files were written with."""
    return int(base_array()[row, col]) + offset(date_index, band_index)


def geotransform() -> tuple[float, ...]:
    return (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL)


def _wkt() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    return srs.ExportToWkt()


def _write_cog(path: Path, data: np.ndarray) -> None:
    from osgeo import gdal

    mem = gdal.GetDriverByName("MEM").Create("", SIZE, SIZE, 1, gdal.GDT_UInt16)
    mem.SetGeoTransform(geotransform())
    mem.SetProjection(_wkt())
    mem.GetRasterBand(1).WriteArray(data)
    mem.GetRasterBand(1).SetNoDataValue(0)
    options = ["COMPRESS=DEFLATE", "LEVEL=1", "PREDICTOR=YES", f"BLOCKSIZE={TILE}", "OVERVIEWS=NONE",
               "NUM_THREADS=ALL_CPUS"]
    if gdal.GetDriverByName("COG").CreateCopy(str(path), mem, options=options) is None:
        raise RuntimeError(f"GDAL could not write {path}: {gdal.GetLastErrorMsg()}")


def _write_zarr(path: Path, dates: tuple[date, ...]) -> None:
    import xarray

    base = base_array()[:ZARR_SIZE, :ZARR_SIZE]
    xs = ORIGIN[0] + PIXEL * (np.arange(ZARR_SIZE) + 0.5)
    ys = ORIGIN[1] - PIXEL * (np.arange(ZARR_SIZE) + 0.5)
    variables = {}
    for b, band in enumerate(BANDS):
        stack = np.stack([base + offset(d, b) for d in range(len(dates))]).astype(np.uint16)
        variables[band] = (("time", "y", "x"), stack)
    dataset = xarray.Dataset(variables, coords={"time": np.array(dates, dtype="datetime64[ns]"), "y": ys, "x": xs},
                             attrs={"proj_epsg": EPSG, "title": "Cubescope benchmark cube"})
    encoding = {band: {"chunks": ZARR_CHUNKS, "_FillValue": 0} for band in BANDS}
    dataset.to_zarr(path, mode="w", consolidated=True, encoding=encoding, **v2_format())  # v2: GDAL < 3.11 reads it


def ensure_bench_data(root: Path = ROOT) -> BenchData:
    """The data set, written when it is missing or incomplete (~1.1 GB, well under a minute)."""
    dates = bench_dates()
    stamp = root / f".complete-v{VERSION}"
    data = BenchData(root, dates, root / "cogs", root / "cube.zarr")
    if stamp.is_file():
        return data
    # Only this data set's own folders: other benchmarks keep theirs under the same root.
    for own in (data.cogs, data.zarr):
        shutil.rmtree(own, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    base = base_array()
    for d, when in enumerate(dates):
        folder = data.cogs / when.isoformat()
        folder.mkdir(parents=True)
        for b, band in enumerate(BANDS):
            _write_cog(folder / f"{band}.tif", base + np.uint16(offset(d, b)))
    _write_zarr(data.zarr, dates)
    (root / "index.html").write_text("benchmark data\n")
    stamp.write_text(json.dumps({"seed": SEED, "dates": len(dates), "bands": BANDS}))
    return data


def stac_items(data: BenchData, base_url: str) -> list[dict]:
    """One STAC item per date with a COG asset per band, hrefs under `base_url` (the proxy)."""
    from osgeo import osr

    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(EPSG)
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(source, target)
    x0, y0 = ORIGIN
    x1, y1 = x0 + SIZE * PIXEL, y0 - SIZE * PIXEL
    ring = [list(to_lonlat.TransformPoint(x, y)[:2]) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    items = []
    for when in data.dates:
        assets = {band: {"href": f"{base_url}/{data.relative_path(when, band)}",
                         "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
                         "raster:bands": [{"nodata": 0, "data_type": "uint16"}]} for band in BANDS}
        items.append({"type": "Feature", "stac_version": "1.0.0", "id": f"BENCH_{when:%Y%m%d}",
                      "geometry": {"type": "Polygon", "coordinates": [ring]},
                      "bbox": [min(p[0] for p in ring), min(p[1] for p in ring),
                               max(p[0] for p in ring), max(p[1] for p in ring)],
                      "properties": {"datetime": f"{when.isoformat()}T10:00:00Z", "proj:epsg": EPSG,
                                     "grid:code": "BENCH-1"},
                      "links": [], "assets": assets})
    return items


def pixel_lonlat(row: int, col: int) -> tuple[float, float]:
    """lon/lat of a pixel centre of the COGs."""
    from osgeo import osr

    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(EPSG)
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y = ORIGIN[0] + (col + 0.5) * PIXEL, ORIGIN[1] - (row + 0.5) * PIXEL
    lon, lat = osr.CoordinateTransformation(source, target).TransformPoint(x, y)[:2]
    return lon, lat
