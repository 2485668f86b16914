"""One benchmark run in its own process: ``python composite_runner.py VARIANT SCALE OUTDIR``.

Prints one JSON line with the wall time of the work (imports excluded), the CPU time all its
threads spent meanwhile, and the process's peak resident memory (VmHWM). Variants:

- ``anchor``: odc-stac with default settings (eager load) + ``.where(mask).median("time")``, written
  with odc-geo's ``write_cog``;
- ``floor``: only reading the same pixels: every band and SCL file's window read with GDAL, one
  thread per CPU, nothing computed or written;
- ``floor-odc``: the same pixels through odc-stac on Cubescope's grid and blocks, nothing computed;
- ``cubescope``: Cubescope's engine, median composite with the SCL mask, written as a COG;
- ``parts``: the masked median of every block and the COG write, each alone (after ``cubescope``);
- ``cloudy``, ``cloudy-every``: the same on a cloudy year (the 1x bands with a cloudier SCL), with and
  without leaving unread the dates whose block has no clear pixel;
- ``http``, ``http-every``, ``http-sequential``: the cloudy year over HTTP (``$CUBESCOPE_BENCH_URL``):
  as the engine runs; reading every date; and reading every date one slice at a time, as before;
- ``zarr``, ``zarr-slices``, ``zarr-http``, ``zarr-http-slices``: a median composite of the benchmark
  Zarr cube (120 dates x 3 bands x 512 x 512, chunks of 10 dates x 128 x 128), from disk or over
  HTTP, each block's dates read as hyperslabs (as the engine runs) or one time slice at a time (before);
  ``zarr-3857``, ``zarr-3857-slices``, ``zarr-http-3857``, ``zarr-http-3857-slices``: the same composite
  reprojected to Web Mercator (EPSG:3857).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Run as a script: its own folder is already first on sys.path.

import composite_data as data  # noqa: E402

BANDS = ("blue", "green", "red", "nir")
CLEAR = (4, 5, 6, 7, 11)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _libraries() -> None:
    """Import what every variant uses before its clock starts (a QGIS session has them loaded)."""
    import dask.array  # noqa: F401
    import odc.geo.xr
    import odc.stac  # noqa: F401
    import pystac  # noqa: F401
    import rasterio  # noqa: F401


def _items(scale: int) -> list[dict]:
    items = json.loads(data.ensure_bench_data().read_text())
    return items if scale == 4 else [i for i in items if "_T00_" in i["id"]]


def _request(scale: int, out: Path):
    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period

    x0, y0, x1, y1 = data.extent(scale)
    return AnalysisRequest(source="bench", collection="bench-s2", operation="composite", bands=BANDS,
                           method="median", periods=(Period(datetime(2023, 1, 1), datetime(2023, 12, 31)),),
                           output=str(out), extent=(x0, y0, x1, y1), extent_crs=f"EPSG:{data.EPSG}")


def cubescope(scale: int, out: Path) -> dict:
    from cubescope.plugin.analysis.engine.pipeline import execute, plan

    items = _items(scale)
    started = time.perf_counter()
    job = plan(_request(scale, out / f"cubescope-{scale}x.tif"), [items])
    execute(job)
    return {"seconds": time.perf_counter() - started, "chunk": job.chunk}


def cloudy(scale: int, out: Path, skip: bool = True, remote: bool = False, readers: int = 0) -> dict:
    """Cubescope on the cloudy year (same bands, cloudier SCL), skipping cloudless dates or not; with
    ``remote``, its files are read over HTTP from ``$CUBESCOPE_BENCH_URL`` (nginx behind a slow link),
    ``readers`` slices of a chunk at once (0: the engine's default)."""
    from cubescope.plugin.analysis.engine import chunk_loader, graph
    from cubescope.plugin.analysis.engine.pipeline import execute, plan

    graph.SKIP_CLOUDY_DATES = skip
    if readers:
        chunk_loader.REMOTE_READERS = readers
    items = json.loads(data.ensure_cloudy_data().read_text())
    if remote:  # the same files, by URL: the served folder is build/bench-data
        local, url = str(data.REPO / "build" / "bench-data"), os.environ["CUBESCOPE_BENCH_URL"]
        for item in items:
            for asset in item["assets"].values():
                asset["href"] = asset["href"].replace(local, url)
    name = f"cloudy{'-http' if remote else ''}{'' if skip else '-every'}{f'-{readers}' if readers else ''}"
    started = time.perf_counter()
    job = plan(_request(1, out / f"{name}.tif"), [items])
    execute(job)
    return {"seconds": time.perf_counter() - started, "chunk": job.chunk}


def zarr_name(remote: bool, crs: str, hyperslabs: bool) -> str:
    """The variant's name, also its output file's: ``zarr[-http][-<EPSG code>][-slices]``."""
    return f"zarr{'-http' if remote else ''}{'-' + crs.split(':')[-1] if crs else ''}{'' if hyperslabs else '-slices'}"


def zarr(scale: int, out: Path, hyperslabs: bool = True, remote: bool = False, crs: str = "") -> dict:
    """A median composite of the benchmark's Zarr cube, all its dates; ``remote`` reads it over HTTP,
    ``crs`` is the output's (empty: the cube's own grid)."""
    import bench_data

    from cubescope.plugin.analysis.engine import chunk_loader
    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
    from cubescope.plugin.analysis.engine.pipeline import run

    chunk_loader.ZARR_HYPERSLABS = hyperslabs
    cube = bench_data.ensure_bench_data().zarr
    source = f"{os.environ['CUBESCOPE_BENCH_URL']}/{cube.name}" if remote else str(cube)
    name = zarr_name(remote, crs, hyperslabs)
    started = time.perf_counter()
    run(AnalysisRequest(source=source, collection="", operation="composite", method="median",
                        bands=bench_data.BANDS, periods=(Period(datetime(2021, 1, 1), datetime(2022, 12, 31)),),
                        crs=crs, output=str(out / f"{name}.tif")))
    return {"seconds": time.perf_counter() - started}


def floor(scale: int, out: Path) -> dict:
    from osgeo import gdal

    items = _items(scale)
    files = [a["href"] for item in items for key, a in item["assets"].items() if key in (*BANDS, "scl")]

    def read(path: str) -> int:
        dataset = gdal.Open(path)
        return dataset.GetRasterBand(1).ReadAsArray().nbytes  # each file lies wholly inside the extent

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        total = sum(pool.map(read, files))
    return {"seconds": time.perf_counter() - started, "bytes": total}


def floor_odc(scale: int, out: Path) -> dict:
    import dask.array as da
    import numpy as np

    from cubescope.plugin.analysis.engine.executor import block_runner
    from cubescope.plugin.analysis.engine.graph import block_tasks
    from cubescope.plugin.analysis.engine.load import gdal_items, load_lazy
    from cubescope.plugin.analysis.engine.pipeline import plan

    items = _items(scale)
    started = time.perf_counter()
    job = plan(_request(scale, out / "unused.tif"), [items])
    period = job.periods[0]
    ready, _ = gdal_items(period.items, period.asset_keys)
    dataset = load_lazy(ready, period.slices, period.asset_keys, job.grid, job.chunk, nearest=period.nearest)

    def touch(*stacks):  # each a one-element list: the time axis is whole, and not concatenated (as in graph.py)
        return np.zeros((1, *stacks[0][0].shape[1:]), dtype=np.float32)

    arrays = [arg for key in period.asset_keys for arg in (dataset[key].data, "tyx")]
    lazy = da.blockwise(touch, "byx", *arrays, new_axes={"b": 1}, dtype="float32", concatenate=False)
    with block_runner() as runner:
        runner.run(block_tasks(lazy), lambda key, block: None)
    return {"seconds": time.perf_counter() - started}


def parts(scale: int, out: Path) -> dict:
    """The two computations a median composite cannot do without besides reading, each alone and on
    one thread per CPU, on the benchmark's own pixels: Cubescope's mask and median of every block and
    band (the red band's and the SCL's first block, read before the clock starts, stand for each),
    and the COG write of the composite (``cubescope-1x.tif``, written by the ``cubescope`` variant).
    Their CPU seconds added to the floor's are the least any reader-median-writer pipeline built
    from these parts spends."""
    import numpy as np
    from osgeo import gdal

    from cubescope.plugin.analysis.engine.cog_writer import CogWriter
    from cubescope.plugin.analysis.engine.grid import OutputGrid
    from cubescope.plugin.analysis.ops import composite
    from cubescope.plugin.analysis.ops.blocks import masked_dn
    from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL

    items = sorted(_items(scale), key=lambda i: i["properties"]["datetime"])
    block, chunk = data.SIZE, 512

    def window(href: str, side: int) -> np.ndarray:
        dataset = gdal.Open(href)  # held: a band outliving its dataset crashes GDAL's bindings
        return dataset.GetRasterBand(1).ReadAsArray(0, 0, side, side)

    red = np.stack([window(i["assets"]["red"]["href"], chunk) for i in items])
    scl = np.stack([window(i["assets"]["scl"]["href"], chunk // 2) for i in items]).repeat(2, 1).repeat(2, 2)
    blocks = (block // chunk) ** 2 * scale
    composite_path = out / f"cubescope-{scale}x.tif"
    result = gdal.Open(str(composite_path)).ReadAsArray()
    x0, y0, x1, y1 = data.extent(scale)

    def median_block(_: int) -> None:  # as the engine does: the mask once per block, a median per band
        masked = masked_dn(SENTINEL2_SCL, scl, red.shape, red.dtype)
        for _band in BANDS:
            composite.median_zero_nodata(red, masked)

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(median_block, range(blocks)))
    median_s, median_cpu = time.perf_counter() - started, time.process_time() - cpu
    grid = OutputGrid(f"EPSG:{data.EPSG}", data.RES, (x0, y0, x1, y1))
    started, cpu = time.perf_counter(), time.process_time()
    with CogWriter(out / "parts.tif", grid, [f"{band} median" for band in BANDS]) as writer:
        for row in range(0, result.shape[1], chunk):
            for col in range(0, result.shape[2], chunk):
                writer.write(result[:, row:row + chunk, col:col + chunk], row, col)
        writer.finish()
    cog_s, cog_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": median_s + cog_s, "median_seconds": median_s, "median_cpu": median_cpu,
            "cog_seconds": cog_s, "cog_cpu": cog_cpu, "blocks": blocks}


def anchor(scale: int, out: Path) -> dict:
    import odc.geo.xr  # the .odc accessor
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    items = [pystac.Item.from_dict(i) for i in _items(scale)]
    started = time.perf_counter()
    geobox = GeoBox.from_bbox(data.extent(scale), f"EPSG:{data.EPSG}", resolution=data.RES)
    ds = odc.stac.load(items, bands=[*BANDS, "scl"], geobox=geobox, groupby="solar_day",
                       resampling={"scl": "nearest"})
    mask = ds.scl.isin(list(CLEAR))
    composite = ds[list(BANDS)].where(mask).median("time")
    composite.to_array("band").astype("float32").odc.write_cog(str(out / f"anchor-{scale}x.tif"), overwrite=True)
    return {"seconds": time.perf_counter() - started}


VARIANTS = {"anchor": anchor, "floor": floor, "floor-odc": floor_odc, "cubescope": cubescope, "parts": parts,
            "cloudy": cloudy, "cloudy-every": lambda scale, out: cloudy(scale, out, skip=False),
            "http": lambda scale, out: cloudy(scale, out, remote=True),
            "http-every": lambda scale, out: cloudy(scale, out, skip=False, remote=True),
            "http-sequential": lambda scale, out: cloudy(scale, out, skip=False, remote=True, readers=1),
            **{zarr_name(remote, crs, hyperslabs): partial(zarr, hyperslabs=hyperslabs, remote=remote, crs=crs)
               for remote in (False, True) for crs in ("", "EPSG:3857") for hyperslabs in (True, False)}}

if __name__ == "__main__":
    variant, scale, out_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    if variant != "floor":
        _libraries()
    cpu = time.process_time()
    result = VARIANTS[variant](scale, out_dir)
    result.update(variant=variant, scale=scale, peak_rss_mb=peak_rss_mb(), cpu_seconds=time.process_time() - cpu)
    print(json.dumps(result))
