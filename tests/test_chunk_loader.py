"""The chunk loader gives what odc-stac's own loader gives, pixel for pixel, faster.

Generated COGs with known layouts: two tiles of one solar day that overlap (odc-stac's order
decides the overlap) with a no-data hole in the first, a quality band at twice the pixel size, a
tile shifted by half a pixel and one in another UTM zone (both need a warper), and a grid whose
edges cut through tiles and blocks. Each load is compared with odc-stac loading the same plan with
its own reader.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dask
import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from cubescope.plugin.analysis.engine import open_files
from cubescope.plugin.analysis.engine.executor import Canceled, block_runner, block_state, in_every_thread
from cubescope.plugin.analysis.engine.graph import ReadFailed, reading_errors
from cubescope.plugin.analysis.engine.grid import OutputGrid
from cubescope.plugin.analysis.engine.load import gdal_items, grid_longitude, group_by_solar_day, load_lazy
from cubescope.plugin.demo.raster_io import Georef, write_cog

X0, Y0, RES = 500000.0, 5000000.0, 10.0
DAY = datetime(2023, 6, 1, 9, 30, tzinfo=timezone.utc)


def _asset(path: Path, epsg: int, transform: list[float], shape: tuple[int, int], dtype: str,
           nodata: float | None) -> dict:
    band: dict = {"data_type": dtype}
    if nodata is not None:
        band["nodata"] = nodata
    return {"href": str(path), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"], "raster:bands": [band], "proj:epsg": epsg, "proj:shape": list(shape),
            "proj:transform": transform}


def _tile(folder: Path, name: str, when: datetime, x0: float, y0: float, size: int, seed: int,
          epsg: int = 32634, hole: bool = False) -> dict:
    """A 10 m red band (uint16, no-data 0) and a 20 m scl band (uint8) with their upper left at (x0, y0)."""
    rng = np.random.default_rng(seed)
    red = rng.integers(1, 10000, size=(size, size), dtype=np.uint16)
    if hole:
        red[size // 3: size // 2, size // 2:] = 0
    scl = rng.integers(1, 12, size=(size // 2, size // 2), dtype=np.uint8)
    write_cog(folder / f"{name}-red.tif", red, Georef((x0, RES, 0, y0, 0, -RES), epsg), 0)
    write_cog(folder / f"{name}-scl.tif", scl, Georef((x0, 2 * RES, 0, y0, 0, -2 * RES), epsg), None,
              resampling="NEAREST")
    span = size * RES
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    ring = [list(to_lonlat.transform(x, y)) for x, y in
            ((x0, y0), (x0 + span, y0), (x0 + span, y0 - span), (x0, y0 - span), (x0, y0))]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": name, "collection": "c",
        "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "assets": {
            "red": _asset(folder / f"{name}-red.tif", epsg, [RES, 0, x0, 0, -RES, y0], (size, size), "uint16", 0),
            "scl": _asset(folder / f"{name}-scl.tif", epsg, [2 * RES, 0, x0, 0, -2 * RES, y0], (size // 2, size // 2),
                          "uint8", None),
        },
        "links": [],
    }


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("chunk-loader")
    return [
        _tile(folder, "a", DAY, X0, Y0, 300, 1, hole=True),
        _tile(folder, "b", DAY + timedelta(minutes=1), X0 + 2000, Y0 - 400, 300, 2),  # overlaps a
        _tile(folder, "shifted", DAY + timedelta(days=5), X0 + 5, Y0 - 5, 300, 3),  # half a pixel off
        _tile(folder, "other-zone", DAY + timedelta(days=10), 28750, 5017110, 300, 4, epsg=32635),
        _tile(folder, "c", DAY + timedelta(days=15), X0 - 800, Y0 + 600, 300, 5),  # cut by the grid
    ]


def _load(items: list[dict], grid: OutputGrid, direct: bool, float_bands: tuple[str, ...] = (),
          chunk: int = 128):
    slices = group_by_solar_day(items, grid_longitude(grid))
    ready, options = gdal_items(items, ("red", "scl"))
    return load_lazy(ready, slices, ("red", "scl"), grid, chunk, "nearest", nearest=("scl",),
                     float_bands=float_bands, gdal_options=options, direct=direct)


GRID = OutputGrid("EPSG:32634", RES, (X0 - 400, Y0 - 3500, X0 + 4700, Y0 + 200))  # 510 x 370 px


@pytest.mark.parametrize("float_bands", [(), ("red",)])
def test_every_pixel_equals_odc_stacs_own_load(tiles, float_bands):
    ours = _load(tiles, GRID, direct=True, float_bands=float_bands)
    theirs = _load(tiles, GRID, direct=False, float_bands=float_bands)
    assert ours.red.data.name.startswith("cubescope-load-red"), "the chunk loader reads the cube"
    assert theirs.sizes == ours.sizes and ours.sizes["time"] == 4  # a and b share a solar day
    for name in ("red", "scl"):
        mine, odc = ours[name].values, theirs[name].values
        assert mine.dtype == odc.dtype
        np.testing.assert_array_equal(mine, odc, err_msg=name)
    red = ours.red.values
    # The ground truth behind the comparison: the overlap of a and b takes a's pixels, and b's where
    # a has its hole; the half-pixel shift and the other zone were warped, not skipped.
    a = gdal.Open(tiles[0]["assets"]["red"]["href"]).ReadAsArray()
    b = gdal.Open(tiles[1]["assets"]["red"]["href"]).ReadAsArray()
    row, col = 20, 40  # the grid's pixel (row, col) of a's upper left
    overlap = red[0, row + 100:row + 150, col + 200:col + 300]
    from_a, from_b = a[100:150, 200:300], b[60:110, :100]  # b starts 40 rows, 200 columns into a
    expected = np.where(from_a != 0, from_a, from_b)
    np.testing.assert_array_equal(overlap, expected.astype(red.dtype))
    assert (from_a == 0).any(), "the hole lies in the overlap"
    no_data = np.isnan(red) if red.dtype.kind == "f" else red == 0
    assert not no_data[1, row + 1:row + 299, col + 1:col + 299].any()
    assert (~no_data[2]).sum() > 250 * 250


def test_the_quality_band_at_twice_the_pixel_size_is_repeated_not_resampled(tiles):
    scl = _load(tiles[:1], GRID, direct=True).scl.values[0]
    source = gdal.Open(tiles[0]["assets"]["scl"]["href"]).ReadAsArray()
    np.testing.assert_array_equal(scl[20:320, 40:340], np.repeat(np.repeat(source, 2, axis=0), 2, axis=1))


def test_a_file_rewritten_between_two_loads_is_read_afresh(tmp_path):
    item = _tile(tmp_path, "t", DAY, X0, Y0, 256, 7)
    grid = OutputGrid("EPSG:32634", RES, (X0, Y0 - 2560, X0 + 2560, Y0))
    with dask.config.set(scheduler="sync"):
        first = _load([item], grid, direct=True).red.values  # this thread keeps the file open
        assert item["assets"]["red"]["href"] in threading.current_thread().__dict__["_cubescope_handles"]["files"]
        write_cog(Path(item["assets"]["red"]["href"]), np.full((256, 256), 42, dtype=np.uint16),
                  Georef((X0, RES, 0, Y0, 0, -RES), 32634), 0)
        second = _load([item], grid, direct=True).red.values
    assert (first != 42).any() and (second == 42).all()


def test_open_files_are_bounded_and_closed_on_failure(tmp_path):
    when = [DAY + timedelta(days=d) for d in range(open_files.HANDLES + 10)]  # one red file per date
    items = [_tile(tmp_path, f"d{n}", day, X0, Y0, 128, n) for n, day in enumerate(when)]
    grid = OutputGrid("EPSG:32634", RES, (X0, Y0 - 1280, X0 + 1280, Y0))
    with dask.config.set(scheduler="sync"):  # every read in this thread
        values = _load(items, grid, direct=True, chunk=64).red.values
    assert values.shape == (len(when), 128, 128) and (values > 0).all()
    files = threading.current_thread().__dict__["_cubescope_handles"]["files"]
    assert len(files) == open_files.HANDLES, "more files than the bound were read; the bound held"

    broken = Path(items[3]["assets"]["red"]["href"])
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    with pytest.raises(ReadFailed, match=r"d3-red\.tif"), reading_errors(), dask.config.set(scheduler="sync"):
        _load(items, grid, direct=True, chunk=64).red.compute()
    state = threading.current_thread().__dict__["_cubescope_handles"]
    assert "files" not in state, "the files were closed at the failure"
    with dask.config.set(scheduler="sync"):  # the same load's other blocks go on reading on this thread
        assert (_load(items[4:], grid, direct=True, chunk=64).red.values > 0).all()


@pytest.mark.parametrize("started", [0, 1, 3])
def test_in_every_thread_runs_once_in_each_thread_of_the_pool(started):
    """The runner closes its threads' files with ``in_every_thread``: every thread of the pool (those
    it had not started yet too) runs the job exactly once, in that thread."""
    ran: list[str] = []
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="every") as pool:
        list(pool.map(lambda _: threading.current_thread().name, range(started)))
        in_every_thread(pool, 3, lambda: ran.append(threading.current_thread().name))
        assert sorted(ran) == sorted(f"every_{n}" for n in range(3))


def test_a_cancelled_run_stops_the_blocks_it_is_computing():
    """A cancel drops the queued blocks and sets the run's stop event, which a block still computing
    sees (the chunk loader looks at it before each time slice)."""
    started = threading.Event()
    seen: list[bool] = []

    @dask.delayed
    def block() -> int:
        started.set()
        state = block_state()
        seen.append(state is not None and state.stop.wait(30))
        return 0

    with block_runner(threads=1) as runner, pytest.raises(Canceled):
        runner.run([((0, 0), block())], lambda _key, _value: None, started.is_set)
    assert seen == [True]
    assert block_state() is None, "outside a run's block thread there is no block state"


def test_progress_moves_with_the_slices_a_block_has_read():
    """Between two finished blocks the progress counts the slices the blocks in flight have read: over
    a slow link one block takes seconds, and a bar standing still reads as a hang."""
    reported: list[float] = []
    halfway = threading.Event()

    def progress(done: float, total: int) -> None:
        reported.append(done / total)
        if 0 < done < 1:
            halfway.set()

    @dask.delayed
    def block() -> int:
        state = block_state()
        assert state is not None
        state.read()  # one of its four slices
        assert halfway.wait(30), "the runner reported no progress within the block"
        state.read(3)
        return 0

    with block_runner(threads=1) as runner:
        runner.run([((0, 0), block())], lambda _key, _value: None, progress=progress, reads_per_block=4)
    assert reported == [0.25, 1.0]
