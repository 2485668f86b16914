"""A Zarr cube chunked along time is read a block at a time: each chunk fetched and decoded once.

A cube generated here (12 dates x 96 x 96 px, chunks of 4 dates x 32 x 32 px, uint16 bands with
no-data, an SCL whose dates 4-7 are wholly cloudy, CRS only in a ``proj_epsg`` attribute as the
benchmark cube has it) is served by nginx, whose access log says which chunk files GDAL fetched.
Results equal a plain-numpy reference and the results of reading the slices one by one
(``chunk_loader.ZARR_HYPERSLABS`` off); blocks and extents that cut Zarr chunks in odd places
give the same bytes as well.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from osgeo import gdal

from cubescope.plugin.analysis.engine import chunk_loader
from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import ReadFailed, run
from cubescope.plugin.analysis.engine.zarr_stack import (
    Hyperslab,
    pieces,
    source_window,
    take_mapped,
    time_runs,
    zarr_slice,
)
from cubescope.plugin.cube.zarr_compat import v2_format

X0, Y0, RES, SIZE, EPSG = 600000.0, 5000000.0, 10.0, 96, 32634
DATES, CHUNKS = 12, (4, 32, 32)
CLEAR = (4, 5, 6, 7, 11)
CLOUDY = range(4, 8)
"""Dates with no clear pixel: the second time chunk, whole."""
YEAR = Period(datetime(2023, 1, 1), datetime(2023, 12, 31))


def _write_cube(path: Path) -> dict[str, np.ndarray]:
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(11)
    truth = {}
    for band, top in (("red", 3000), ("nir", 6000)):
        values = rng.integers(1, top, size=(DATES, SIZE, SIZE), dtype=np.uint16)
        values[rng.random(values.shape) < 0.05] = 0  # no-data
        truth[band] = values
    scl = rng.choice(np.array([4, 5, 8, 9, 3], dtype=np.uint8), size=(DATES, SIZE, SIZE))
    scl[list(CLOUDY)] = 9
    truth["scl"] = scl
    times = pd.date_range("2023-03-01T10:00", periods=DATES, freq="14D")
    xs = X0 + RES * (np.arange(SIZE) + 0.5)
    ys = Y0 - RES * (np.arange(SIZE) + 0.5)
    dataset = xr.Dataset({name: (("time", "y", "x"), values) for name, values in truth.items()},
                         coords={"time": times, "y": ys, "x": xs}, attrs={"proj_epsg": EPSG})
    encoding = {name: {"chunks": CHUNKS, "_FillValue": 0} for name in truth}
    # Zarr v2 under zarr 3 too: the engine reads through GDAL, and GDAL before 3.11 (Debian 12 and 13)
    # cannot decode the v3 codecs zarr-python 3 writes ("Unsupported codec: bytes").
    dataset.to_zarr(path, mode="w", consolidated=True, encoding=encoding, **v2_format())
    return truth


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """(nginx server, local store path, truth)."""
    from servers.nginx import start_nginx

    root = tmp_path_factory.mktemp("zarr-hyperslabs")
    truth = _write_cube(root / "cube.zarr")
    (root / "probe.txt").write_text("ok")
    server = start_nginx(root, probe="probe.txt")
    yield server, root / "cube.zarr", truth
    server.stop()


def _run(source: str, out: Path, **fields) -> np.ndarray:
    request = AnalysisRequest(**{**dict(
        source=source, collection="", operation="composite", method="median", bands=("red", "nir"),
        periods=(YEAR,), output=str(out), quality_band="scl", clear_values=",".join(map(str, CLEAR))), **fields})
    pixels = gdal.Open(str(run(request))).ReadAsArray()
    return pixels[None] if pixels.ndim == 2 else pixels


def _fetched(server, start: int) -> Counter:
    """How often each path was fetched (GET) after line ``start`` of nginx's access log; GDAL also asks
    for a chunk's size now and then (HEAD), which transfers nothing."""
    log = server.tmp / "access.log"
    lines = log.read_text().splitlines()[start:] if log.exists() else []
    requests = [line.split('"')[1].split() for line in lines if '"' in line]
    return Counter(path for method, path, *_ in requests if method == "GET")


def _log_length(server) -> int:
    log = server.tmp / "access.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _reference(truth: dict, band: str, reduce) -> np.ndarray:
    values = truth[band].astype(np.float64)
    valid = np.isin(truth["scl"], CLEAR) & (values != 0)
    with warnings.catch_warnings():  # pixels never clear: NaN, as in the result
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(np.where(valid, values, np.nan), axis=0)


def _chunk_files(counts: Counter, variable: str) -> dict[str, int]:
    return {path: n for path, n in counts.items() if re.fullmatch(rf"/cube\.zarr/{variable}/\d+\.\d+\.\d+", path)}


def test_each_chunk_is_fetched_once_and_a_wholly_cloudy_time_chunk_not_at_all(cube, tmp_path, monkeypatch):
    server, _, truth = cube
    start = _log_length(server)
    median = _run(f"{server.url}/cube.zarr", tmp_path / "median.tif")
    fetched = _fetched(server, start)
    for number, band in enumerate(("red", "nir")):
        np.testing.assert_array_equal(median[number], _reference(truth, band, np.nanmedian).astype(np.float32))
    assert np.isfinite(median[0]).mean() > 0.9

    red = _chunk_files(fetched, "red")
    # 3 x 3 spatial chunks; time chunks 0 and 2 (dates 0-3, 8-11), each once; time chunk 1 is all cloud.
    assert sorted(red) == sorted(f"/cube.zarr/red/{t}.{y}.{x}" for t in (0, 2) for y in range(3) for x in range(3))
    assert set(red.values()) == {1}
    assert len(_chunk_files(fetched, "scl")) == 27  # the quality band is read on every date

    monkeypatch.setattr(chunk_loader, "ZARR_HYPERSLABS", False)
    start = _log_length(server)
    slices = _run(f"{server.url}/cube.zarr", tmp_path / "slices.tif")
    assert slices.tobytes() == median.tobytes()
    assert max(_chunk_files(_fetched(server, start), "red").values()) > 1  # slice by slice: fetched again


@pytest.mark.parametrize("fields", [
    dict(chunk_size=40),  # blocks that cut Zarr chunks
    dict(extent=(X0 + 50, Y0 - 910, X0 + 870, Y0 - 30), extent_crs=f"EPSG:{EPSG}"),  # an extent that does
    dict(operation="statistics", statistic="std", bands=("nir",), chunk_size=48),
], ids=["blocks-across-chunks", "extent-across-chunks", "std"])
def test_blocks_and_extents_across_chunks_give_the_bytes_of_slice_by_slice_reads(cube, tmp_path, monkeypatch,
                                                                                  fields):
    _, store, truth = cube
    stacked = _run(str(store), tmp_path / "stacked.tif", **fields)
    monkeypatch.setattr(chunk_loader, "ZARR_HYPERSLABS", False)
    slices = _run(str(store), tmp_path / "slices.tif", **fields)
    assert stacked.tobytes() == slices.tobytes()
    if "extent" not in fields:
        reduce = np.nanstd if fields.get("statistic") == "std" else np.nanmedian
        band = "nir" if "statistic" in fields else "red"
        np.testing.assert_allclose(stacked[0], _reference(truth, band, reduce), rtol=1e-6, equal_nan=True)
    else:
        assert stacked.shape[1:] == (88, 82)  # rows 3..90, columns 5..86 of the cube
        np.testing.assert_array_equal(stacked[0], _reference(truth, "red", np.nanmedian)[3:91, 5:87]
                                      .astype(np.float32))


@pytest.mark.parametrize("where", ["local", "http"])
def test_a_corrupt_chunk_fails_naming_the_store_and_leaves_nothing(cube, tmp_path_factory, where):
    server, store, _ = cube
    root = tmp_path_factory.mktemp(f"corrupt-{where}")
    shutil.copytree(store, root / "cube.zarr")
    (root / "cube.zarr" / "red" / "2.1.1").write_bytes(b"not zlib at all" * 10)
    out = tmp_path_factory.mktemp(f"out-{where}")
    if where == "local":
        source = str(root / "cube.zarr")
    else:  # served from the same nginx: its root holds the fixture's folder, not this one
        shutil.move(str(root / "cube.zarr"), str(server.root / f"corrupt-{root.name}.zarr"))
        source = f"{server.url}/corrupt-{root.name}.zarr"
    with pytest.raises(ReadFailed, match=rf"{re.escape(source)}.*/red"):
        _run(source, out / "result.tif")
    assert list(out.iterdir()) == []


# --- blocks off the cube's grid: the window read once, each date warped from memory ------------------

MERCATOR = dict(crs="EPSG:3857")


def test_a_reprojected_composite_fetches_each_chunk_once_and_gives_the_warped_slices_bytes(cube, tmp_path,
                                                                                          monkeypatch):
    server, _, truth = cube
    start = _log_length(server)
    median = _run(f"{server.url}/cube.zarr", tmp_path / "median.tif", **MERCATOR)
    red = _chunk_files(_fetched(server, start), "red")
    assert sorted(red) == sorted(f"/cube.zarr/red/{t}.{y}.{x}" for t in (0, 2) for y in range(3) for x in range(3))
    assert set(red.values()) == {1}
    # Reprojected, yet every value is one of the dates' medians at some pixel of the cube.
    assert np.isfinite(median[0]).mean() > 0.8
    reference = _reference(truth, "red", np.nanmedian).astype(np.float32)
    assert np.isin(median[0][np.isfinite(median[0])], reference).all()

    monkeypatch.setattr(chunk_loader, "ZARR_HYPERSLABS", False)
    start = _log_length(server)
    slices = _run(f"{server.url}/cube.zarr", tmp_path / "slices.tif", **MERCATOR)
    assert slices.tobytes() == median.tobytes()
    assert max(_chunk_files(_fetched(server, start), "red").values()) > 1  # each date warped on its own


@pytest.mark.parametrize("fields", [
    dict(chunk_size=40),
    dict(chunk_size=40, resampling="bilinear"),
    dict(chunk_size=40, resampling="cubic", operation="statistics", statistic="std", bands=("nir",)),
    dict(resolution=35.0, resampling="average"),  # shrinking: the warper's kernel widens
    dict(crs="EPSG:4326", resolution=0.0002, chunk_size=48),
    dict(crs=f"EPSG:{EPSG}", resolution=7.0, chunk_size=40),  # the cube's CRS, another pixel size
], ids=["nearest", "bilinear", "cubic-std", "average-coarser", "lonlat", "finer-pixels"])
def test_blocks_off_the_grid_give_the_bytes_of_each_date_warped_on_its_own(cube, tmp_path, monkeypatch, fields):
    _, store, _ = cube
    fields = {**MERCATOR, **fields}
    stacked = _run(str(store), tmp_path / "stacked.tif", **fields)
    monkeypatch.setattr(chunk_loader, "ZARR_HYPERSLABS", False)
    slices = _run(str(store), tmp_path / "slices.tif", **fields)
    assert np.isfinite(stacked[0]).mean() > 0.8
    assert stacked.tobytes() == slices.tobytes()


def test_a_window_past_the_memory_allowance_is_warped_date_by_date(cube, tmp_path, monkeypatch):
    server, _, _ = cube
    from cubescope.plugin.analysis.engine import zarr_stack

    monkeypatch.setattr(zarr_stack, "WARP_WINDOW_BYTES", -10**12)  # no window fits
    start = _log_length(server)
    median = _run(f"{server.url}/cube.zarr", tmp_path / "median.tif", **MERCATOR)
    assert max(_chunk_files(_fetched(server, start), "red").values()) > 1  # read slice by slice
    monkeypatch.setattr(zarr_stack, "WARP_WINDOW_BYTES", 64 * 2**20)
    assert _run(f"{server.url}/cube.zarr", tmp_path / "windowed.tif", **MERCATOR).tobytes() == median.tobytes()


# --- the pure parts -------------------------------------------------------------------------------

def test_zarr_slice_hrefs_are_parsed_and_other_hrefs_are_not():
    part = zarr_slice('ZARR:"/vsis3/bucket/cubes/s2.zarr":/red:17')
    assert (part.store, part.array, part.index) == ("/vsis3/bucket/cubes/s2.zarr", "/red", 17)
    assert zarr_slice('ZARR:"/vsicurl/https://host/a b.zarr":/group/nir:0').array == "/group/nir"
    assert zarr_slice("/data/red.tif") is None
    assert zarr_slice('ZARR:"/data/c.zarr":/red') is None  # a whole array, not one time step


def test_time_runs_skip_time_chunks_with_nothing_to_read():
    assert list(time_runs([0, 1, 2, 3, 8, 9, 11], 4)) == [(0, 3), (8, 11)]  # chunk 1 (4-7) is not decoded
    assert list(time_runs([3, 4], 4)) == [(3, 4)]  # adjacent chunks share one read
    assert list(time_runs([0, 5, 9], 1)) == [(0, 0), (5, 5), (9, 9)]
    assert list(time_runs([], 4)) == []


@given(st.integers(0, 70), st.integers(1, 60), st.integers(0, 70), st.integers(1, 60),
       st.integers(1, 33), st.integers(1, 33), st.sets(st.integers(0, 20), min_size=1, max_size=12),
       st.integers(1, 6))
def test_pieces_cover_the_window_once_and_stay_inside_chunks(x_off, width, y_off, height, cy, cx, steps, ct):
    slab = Hyperslab("s", "/a", {index: n for n, index in enumerate(sorted(steps))}, (x_off, y_off, width, height),
                     (0, 0))
    covered = np.zeros((max(steps) + 1, y_off + height, x_off + width), dtype=np.int32)
    for lo, hi, x0, y0, w, h in pieces(slab, (ct, cy, cx), split=True):
        assert x0 // cx == (x0 + w - 1) // cx and y0 // cy == (y0 + h - 1) // cy  # one chunk each
        assert lo // ct == hi // ct
        covered[lo:hi + 1, y0:y0 + h, x0:x0 + w] += 1
    window = covered[:, y_off:, x_off:]
    assert (window[sorted(steps)] == 1).all()
    assert covered.sum() == window.sum()  # nothing outside the window
    whole = pieces(slab, (ct, cy, cx), split=False)
    assert all(piece[2:] == (x_off, y_off, width, height) for piece in whole)
    assert [piece[:2] for piece in whole] == list(time_runs(sorted(steps), ct))


def test_the_source_window_covers_a_block_with_the_kernel_margin_and_is_none_far_away():
    from affine import Affine
    from odc.geo.crs import CRS
    from odc.geo.geobox import GeoBox

    class Grid:  # a 96 x 96 array of 10 m pixels, as the generated cube
        affine, shape = Affine(RES, 0, X0, 0, -RES, Y0), (SIZE, SIZE)

    utm = CRS(f"EPSG:{EPSG}")
    # A block of 20 m pixels over columns 20..59, rows 10..49 of the array, in the array's CRS.
    block = GeoBox((20, 20), Affine(20.0, 0, X0 + 200, 0, -20.0, Y0 - 100), utm)
    x0, y0, width, height = source_window(Grid, utm, block, "nearest")
    assert x0 <= 20 - 2 and y0 <= 10 - 2 and x0 + width >= 60 + 2 and y0 + height >= 50 + 2  # 1 px x scale 2
    assert x0 >= 20 - 4 and y0 >= 10 - 4 and x0 + width <= 60 + 4 and y0 + height <= 50 + 4
    wider = source_window(Grid, utm, block, "lanczos")
    assert wider[0] < x0 and wider[2] > width
    at_the_edge = GeoBox((20, 20), Affine(20.0, 0, X0 - 100, 0, -20.0, Y0 + 100), utm)
    assert source_window(Grid, utm, at_the_edge, "cubic")[:2] == (0, 0)  # clipped to the array
    far = GeoBox((20, 20), Affine(20.0, 0, X0 + 50_000, 0, -20.0, Y0), utm)
    assert source_window(Grid, utm, far, "nearest") is None


def test_mapped_pixels_take_the_fill_where_nothing_maps_or_the_source_is_nodata():
    stack = np.array([[[5, 0], [7, 8]], [[1, 2], [0, 4]]], dtype=np.uint16)  # 2 dates, 0 = no-data
    index = np.array([[3, -1, 1], [0, 0, 2]], dtype=np.int32)  # flat source pixel per output pixel
    chunk = np.full((3, 2, 3), 99.0, dtype=np.float32)
    take_mapped(index, stack, [2, 0], chunk, 0, np.nan)
    nan = np.nan
    np.testing.assert_array_equal(chunk[2], [[8, nan, nan], [5, 5, 7]])
    np.testing.assert_array_equal(chunk[0], [[4, nan, 2], [1, 1, nan]])
    assert (chunk[1] == 99).all()  # a slot no date goes to is left alone
