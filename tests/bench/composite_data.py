"""Deterministic benchmark cube for the composite benchmark: Sentinel-2-like COGs on local disk.

24 dates x 2 x 2 tiles of 2048 x 2048 px (10 m, EPSG:32634): blue, green, red, nir as uint16 COGs
(deflate, predictor 2, 512-px tiles, overviews; nodata 0, scale 0.0001, offset -0.1) and an `scl`
quality band at 20 m (uint8, 1024 x 1024). One tile is the "1x" extent, all four the "4x" extent.
Written once into ``build/bench-data/composite`` (about 4 GB uncompressed, ~2 GB on disk) with
GDAL; a manifest records the layout so a changed generator regenerates.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

VERSION = 2
DATES = 24
TILES = 2  # per side
SIZE = 2048
RES = 10.0
EPSG = 32634
X0, Y0 = 500000.0, 5100000.0
BANDS = ("blue", "green", "red", "nir")
BASE_DN = {"blue": 1400, "green": 1700, "red": 1900, "nir": 3600}
SEASON = {"blue": 0.05, "green": 0.08, "red": -0.25, "nir": 0.35}
SEED = 20240

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / "build" / "bench-data" / "composite"


def dates() -> list[datetime]:
    start = datetime(2023, 1, 5, 9, 30, tzinfo=timezone.utc)
    return [start + timedelta(days=15 * k) for k in range(DATES)]


def tile_origin(tx: int, ty: int) -> tuple[float, float]:
    return X0 + tx * SIZE * RES, Y0 - ty * SIZE * RES


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field in [0, 1): coarse noise upsampled with bilinear interpolation."""
    coarse = rng.random((shape[0] // cells + 2, shape[1] // cells + 2))
    ys = np.arange(shape[0]) / cells
    xs = np.arange(shape[1]) / cells
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = coarse[np.ix_(y0, x0)]
    b = coarse[np.ix_(y0, x0 + 1)]
    c = coarse[np.ix_(y0 + 1, x0)]
    d = coarse[np.ix_(y0 + 1, x0 + 1)]
    return (a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy).astype(np.float32)


def _write_cog(path: Path, array: np.ndarray, origin: tuple[float, float], res: float) -> None:
    from osgeo import gdal, osr

    mem = gdal.GetDriverByName("MEM").Create("", array.shape[1], array.shape[0], 1,
                                              gdal.GDT_UInt16 if array.dtype == np.uint16 else gdal.GDT_Byte)
    mem.SetGeoTransform((origin[0], res, 0.0, origin[1], 0.0, -res))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    mem.SetProjection(srs.ExportToWkt())
    band = mem.GetRasterBand(1)
    band.SetNoDataValue(0)
    band.WriteArray(array)
    resampling = "NEAREST" if array.dtype == np.uint8 else "AVERAGE"
    tmp = path.with_suffix(".tmp.tif")
    out = gdal.GetDriverByName("COG").CreateCopy(str(tmp), mem, options=[
        "COMPRESS=DEFLATE", "PREDICTOR=2", "BLOCKSIZE=512", f"OVERVIEW_RESAMPLING={resampling}"])
    if out is None:
        raise RuntimeError(f"cannot write {path}: {gdal.GetLastErrorMsg()}")
    out = None
    os.replace(tmp, path)


def _write_scene(args: tuple[Path, int, int, int]) -> None:
    """All files of one tile on one date (run in a worker process)."""
    root, t, tx, ty = args
    rng = np.random.default_rng([SEED, t, tx, ty])
    land = _smooth(np.random.default_rng([SEED, tx, ty]), (SIZE, SIZE), 128)
    season = np.sin(2 * np.pi * t / DATES)
    cloud_cover = 0.15 + 0.5 * rng.random() ** 2
    cloud_field = _smooth(rng, (SIZE // 2, SIZE // 2), 64)
    cloud = cloud_field > np.quantile(cloud_field, 1 - cloud_cover)
    shadow = np.roll(cloud, (12, 20), axis=(0, 1)) & ~cloud
    scl = np.where(land[::2, ::2] > 0.8, 6, np.where(land[::2, ::2] > 0.3, 4, 5)).astype(np.uint8)
    scl[cloud] = np.where(cloud_field[cloud] > np.quantile(cloud_field, 1 - cloud_cover / 2), 9, 8)
    scl[shadow] = 3
    cloud10 = np.repeat(np.repeat(cloud, 2, axis=0), 2, axis=1)
    folder = root / f"T{tx}{ty}_{t:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    origin = tile_origin(tx, ty)
    for band in BANDS:
        dn = BASE_DN[band] * (0.7 + 0.6 * land) * (1 + SEASON[band] * season)
        dn = dn + rng.integers(0, 60, size=dn.shape)
        dn = np.where(cloud10, 6500 + 500 * land, dn)
        _write_cog(folder / f"{band}.tif", np.clip(dn, 1, 65535).astype(np.uint16), origin, RES)
    _write_cog(folder / "scl.tif", scl, origin, RES * 2)


def _item(root: Path, t: int, tx: int, ty: int, when: datetime) -> dict:
    folder = root / f"T{tx}{ty}_{t:02d}"
    x0, y0 = tile_origin(tx, ty)
    span = SIZE * RES
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    corners = [to_lonlat.transform(x, y) for x, y in
               ((x0, y0 - span), (x0 + span, y0 - span), (x0 + span, y0), (x0, y0), (x0, y0 - span))]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]

    def asset(name: str, res: float, dtype: str, common: str | None) -> dict:
        band: dict = {"nodata": 0, "data_type": dtype, "spatial_resolution": res}
        if common:
            band.update(scale=0.0001, offset=-0.1)
        shape = int(span / res)
        out = {"href": str(folder / f"{name}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
               "roles": ["data"], "raster:bands": [band],
               "proj:shape": [shape, shape], "proj:transform": [res, 0.0, x0, 0.0, -res, y0]}
        if common:
            out["eo:bands"] = [{"name": name, "common_name": common}]
        return out

    assets = {b: asset(b, RES, "uint16", b) for b in BANDS}
    assets["scl"] = asset("scl", RES * 2, "uint8", None)
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": f"bench_T{tx}{ty}_{when:%Y%m%d}",
        "collection": "bench-s2",
        "geometry": {"type": "Polygon", "coordinates": [[list(c) for c in corners]]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "proj:epsg": EPSG,
                       "proj:shape": [SIZE, SIZE], "proj:transform": [RES, 0.0, x0, 0.0, -RES, y0]},
        "assets": assets, "links": [],
    }


def manifest() -> dict:
    return {"version": VERSION, "dates": DATES, "tiles": TILES, "size": SIZE, "seed": SEED}


def ensure_bench_data(root: Path = DEFAULT_DIR, workers: int | None = None) -> Path:
    """Generate the cube once; return the path of ``items.json`` (a list of STAC item dicts)."""
    items_path = root / "items.json"
    manifest_path = root / "manifest.json"
    if items_path.exists() and manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest():
        return items_path
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(root, t, tx, ty) for t in range(DATES) for ty in range(TILES) for tx in range(TILES)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        list(pool.map(_write_scene, jobs))
    when = dates()
    items = [_item(root, t, tx, ty, when[t]) for t in range(DATES) for ty in range(TILES) for tx in range(TILES)]
    items_path.write_text(json.dumps(items), encoding="utf-8")
    manifest_path.write_text(json.dumps(manifest()), encoding="utf-8")
    return items_path


#: Cloud cover of the "cloudy year" variant's 24 dates: the 24-quantiles of the cloud cover of the 100
#: real Sentinel-2 L2A items (Planetary Computer, 2024) in the team's reference data: half of them below
#: 20 %, one in eight above 80 %. Applied in a shuffled order over the year.
CLOUDY_YEAR = (0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.01, 0.02, 0.03, 0.07, 0.12, 0.18, 0.22, 0.32, 0.36, 0.4, 0.46,
               0.58, 0.64, 0.69, 0.78, 0.82, 0.85, 0.99)
CLOUDY_DIR = REPO / "build" / "bench-data" / "composite-cloudy"


def _cloudy_scl(args: tuple[Path, int, float]) -> None:
    """The 1x tile's SCL on date ``t`` with ``cover`` of it cloudy: cloud systems of a few km with
    ragged edges (a 5 km field plus 600 m detail), clear land classes elsewhere."""
    folder, t, cover = args
    rng = np.random.default_rng([SEED, 7, t])
    land = _smooth(np.random.default_rng([SEED, 0, 0]), (SIZE, SIZE), 128)[::2, ::2]
    field = _smooth(rng, (SIZE // 2, SIZE // 2), 512) + 0.1 * _smooth(rng, (SIZE // 2, SIZE // 2), 32)
    scl = np.where(land > 0.8, 6, np.where(land > 0.3, 4, 5)).astype(np.uint8)
    if cover > 0:
        cloud = field > np.quantile(field, 1 - cover)
        scl[cloud] = np.where(field[cloud] > np.quantile(field, 1 - cover / 2), 9, 8)
    folder.mkdir(parents=True, exist_ok=True)
    _write_cog(folder / "scl.tif", scl, tile_origin(0, 0), RES * 2)


def ensure_cloudy_data(root: Path = CLOUDY_DIR) -> Path:
    """The 1x items with their SCL replaced by a cloudy year's (:data:`CLOUDY_YEAR`); the bands are
    the benchmark cube's own. Returns the path of its ``items.json``."""
    items = [i for i in json.loads(ensure_bench_data().read_text()) if "_T00_" in i["id"]]
    items_path, manifest_path = root / "items.json", root / "manifest.json"
    wanted = {**manifest(), "covers": list(CLOUDY_YEAR)}
    if items_path.exists() and manifest_path.exists() and json.loads(manifest_path.read_text()) == wanted:
        return items_path
    covers = np.random.default_rng(SEED).permutation(np.array(CLOUDY_YEAR))
    jobs = [(root / f"T00_{t:02d}", t, float(covers[t])) for t in range(DATES)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_cloudy_scl, jobs))
    for t, item in enumerate(sorted(items, key=lambda i: i["properties"]["datetime"])):
        item["assets"]["scl"]["href"] = str(jobs[t][0] / "scl.tif")
        item["properties"]["eo:cloud_cover"] = round(100 * float(covers[t]), 1)
    items_path.write_text(json.dumps(items), encoding="utf-8")
    manifest_path.write_text(json.dumps(wanted), encoding="utf-8")
    return items_path


def cloudless_share(items_path: Path, chunk: int, clear: tuple[int, ...]) -> tuple[int, int]:
    """(block-dates whose SCL has no clear pixel, all block-dates) for blocks of ``chunk`` 10 m pixels."""
    from osgeo import gdal

    none = total = 0
    side = chunk // 2  # the SCL is at 20 m
    for item in json.loads(items_path.read_text()):
        dataset = gdal.Open(item["assets"]["scl"]["href"])
        scl = dataset.GetRasterBand(1).ReadAsArray()
        clear_pixels = np.isin(scl, clear)
        for y in range(0, scl.shape[0], side):
            for x in range(0, scl.shape[1], side):
                total += 1
                none += not clear_pixels[y:y + side, x:x + side].any()
    return none, total


def extent(scale: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in EPSG:32634 of the 1x (one tile) or 4x (all four tiles) extent."""
    if scale not in (1, 4):
        raise ValueError("scale must be 1 or 4")
    side = SIZE * RES * (1 if scale == 1 else TILES)
    return X0, Y0 - side, X0 + side, Y0


if __name__ == "__main__":
    print(ensure_bench_data(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR))
