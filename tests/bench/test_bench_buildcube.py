"""Regular cube benchmark: a 12-period cube against 12 separate composites of the same periods.

The composite benchmark's data (24 dates x 4 bands x 2048 x 2048 uint16 COGs + SCL, local disk),
cut into 12 calendar months (two dates each), median with the SCL mask. Side by side, in this
process, after a warm-up read: (a) 12 runs of the engine (plan + execute, one COG each), (b) the
cube as COGs + STAC, (c) the cube as Zarr. Prints times and the build's overhead over (a)
(target: at most 10 %); asserts only that the cube's values equal the composites'.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from osgeo import gdal

BENCH = Path(__file__).resolve().parent
# pytest puts this folder (no __init__.py) on sys.path.

import composite_data as data  # noqa: E402
import composite_runner as runner  # noqa: E402

OUT = data.REPO / "build" / "bench-data" / "buildcube-out"
TARGET_OVERHEAD = 0.10
YEAR = (datetime(2023, 1, 1), datetime(2023, 12, 31, 23, 59, 59))


def _composites(request, items, periods) -> tuple[float, list[Path]]:
    from cubescope.plugin.analysis.engine.pipeline import execute, plan
    from cubescope.plugin.products.cubes.builder import _bucket

    paths = []
    start = time.perf_counter()
    for number, (period, found) in enumerate(zip(periods, _bucket(items, periods))):
        single = replace(request, periods=(period,), output=str(OUT / f"composite-{number:02d}.tif"))
        paths.append(execute(plan(single, [found])))
    return time.perf_counter() - start, paths


def _cube(request, items, fmt: str) -> tuple[float, Path]:
    from cubescope.plugin.products.cubes.builder import CubeRequest, build_from_items

    target = OUT / ("cube.zarr" if fmt == "zarr" else "cube-stac")
    shutil.rmtree(target, ignore_errors=True)
    cube = CubeRequest(replace(request, output=str(target)), step="P1M", format=fmt)
    start = time.perf_counter()
    path = build_from_items(cube, items)
    return time.perf_counter() - start, path


def test_cube_build_against_separate_composites():
    from cubescope.plugin.analysis.engine.analysis_request import Period
    from cubescope.plugin.products.cubes.timeline import regular_periods

    data.ensure_bench_data()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    runner._libraries()
    items = runner._items(1)
    request = replace(runner._request(1, OUT / "unused.tif"), periods=(Period(*YEAR),), threads=0)
    periods = regular_periods(*YEAR, "P1M")
    assert len(periods) == 12
    runner.floor(1, OUT)  # warm the page cache

    separate, composites = _composites(request, items, periods)
    stac_time, catalog = _cube(request, items, "cog-stac")
    zarr_time, store = _cube(request, items, "zarr")

    rows = [("(a) 12 separate composites (engine, one COG each)", separate),
            ("(b) cube build, COG + STAC", stac_time), ("(c) cube build, Zarr", zarr_time)]
    print()
    for label, seconds in rows:
        overhead = seconds / separate - 1
        print(f"{label:<52} {seconds:7.2f} s  overhead {overhead:+6.1%}")
    for label, seconds in rows[1:]:
        verdict = "PASS" if seconds / separate - 1 <= TARGET_OVERHEAD else "FAIL"
        print(f"{label}: overhead target <= {TARGET_OVERHEAD:.0%}: {verdict}")

    import zarr

    group = zarr.open_group(str(store), mode="r")
    for number, path in enumerate(composites):
        expected = gdal.Open(str(path)).ReadAsArray()
        for band, name in enumerate(runner.BANDS):
            assert np.array_equal(group[name][number], expected[band], equal_nan=True), (number, name)
            cog = next(catalog.parent.glob(f"*/*_{periods[number].start:%Y-%m-%d}/{name}.tif"))
            assert np.array_equal(gdal.Open(str(cog)).ReadAsArray(), expected[band], equal_nan=True)
