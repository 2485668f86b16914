"""A date whose quality band shows no clear pixel in a block is not read for that block.

COGs served over HTTP by nginx (its access log says which files GDAL fetched): a 512 x 512 px tile
at 10 m with red and nir and a 20 m SCL, on six dates with known clouds: one date wholly cloudy,
one cloudy over a single 256-px block, one cloud shadow except for a single clear pixel. Median and
NDVI std results equal a plain-numpy reference and the results of reading every date; the cloudy
date's bands are never fetched; best-pixel and the extra bands, which use cloudy observations,
still read them.
"""

from __future__ import annotations

import copy
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from cubescope.plugin.analysis.engine import graph
from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.executor import BlockState, _compute_local
from cubescope.plugin.analysis.engine.pipeline import Canceled, ReadFailed, execute, plan
from cubescope.plugin.demo.raster_io import Georef, write_cog

X0, Y0, RES, SIZE, EPSG = 600000.0, 5000000.0, 10.0, 512, 32634
CLEAR = (4, 5, 6, 7, 11)
FIRST = datetime(2023, 6, 1, 9, 30, tzinfo=timezone.utc)
DATES = 6
CLOUDY = 1
"""The date with no clear pixel anywhere."""


def _scl(rng: np.random.Generator) -> list[np.ndarray]:
    half = SIZE // 2
    mixed = rng.choice(np.array([4, 5, 8, 9, 3], dtype=np.uint8), size=(half, half))
    one_block = np.full((half, half), 5, dtype=np.uint8)
    one_block[: half // 2, : half // 2] = 9  # the north-west 256-px block at 10 m
    shadow = np.full((half, half), 3, dtype=np.uint8)
    shadow[-1, -1] = 4  # a single clear pixel in the south-east block
    return [np.where(rng.random((half, half)) < 0.2, 8, 4).astype(np.uint8), np.full((half, half), 9, np.uint8),
            one_block, mixed, shadow, np.full((half, half), 6, dtype=np.uint8)]


def _asset(href: str, res: float, dtype: str, nodata: float | None) -> dict:
    band: dict = {"data_type": dtype}
    if nodata is not None:
        band["nodata"] = nodata
    shape = int(SIZE * RES / res)
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
            "raster:bands": [band], "proj:epsg": EPSG, "proj:shape": [shape, shape],
            "proj:transform": [res, 0, X0, 0, -res, Y0]}


@pytest.fixture(scope="module")
def cloudy(tmp_path_factory):
    """(nginx server, items, truth): truth holds the arrays as written, per date."""
    from servers.nginx import start_nginx

    root = tmp_path_factory.mktemp("cloudy-dates")
    rng = np.random.default_rng(7)
    truth = {"red": [], "nir": [], "scl": _scl(rng)}
    for t in range(DATES):
        folder = root / f"d{t}"
        folder.mkdir()
        for band, top in (("red", 3000), ("nir", 6000)):
            pixels = rng.integers(1, top, size=(SIZE, SIZE), dtype=np.uint16)
            pixels[rng.random((SIZE, SIZE)) < 0.05] = 0  # no-data
            truth[band].append(pixels)
            write_cog(folder / f"{band}.tif", pixels, Georef((X0, RES, 0, Y0, 0, -RES), EPSG), 0)
        write_cog(folder / "scl.tif", truth["scl"][t], Georef((X0, 2 * RES, 0, Y0, 0, -2 * RES), EPSG), None,
                  resampling="NEAREST")
    (root / "probe.txt").write_text("ok")
    server = start_nginx(root, probe="probe.txt")
    span = SIZE * RES
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    ring = [list(to_lonlat.transform(x, y)) for x, y in
            ((X0, Y0), (X0 + span, Y0), (X0 + span, Y0 - span), (X0, Y0 - span), (X0, Y0))]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    items = []
    for t in range(DATES):
        when = FIRST + timedelta(days=10 * t)
        url = f"{server.url}/d{t}"
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"d{t}", "collection": "cloudy",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": [min(lons), min(lats), max(lons), max(lats)],
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "proj:epsg": EPSG},
            "assets": {"red": _asset(f"{url}/red.tif", RES, "uint16", 0),
                       "nir": _asset(f"{url}/nir.tif", RES, "uint16", 0),
                       "scl": _asset(f"{url}/scl.tif", 2 * RES, "uint8", None)},
            "links": []})
    yield server, items, truth
    server.stop()


def _request(server, out: Path, **kwargs) -> AnalysisRequest:
    fields = dict(source=server.url, collection="cloudy", operation="composite", bands=("red", "nir"),
                  periods=(Period(datetime(2023, 1, 1), datetime(2023, 12, 31)),), output=str(out),
                  extent=(X0, Y0 - SIZE * RES, X0 + SIZE * RES, Y0), extent_crs=f"EPSG:{EPSG}",
                  quality_band="scl", clear_values=",".join(map(str, CLEAR)), chunk_size=256)
    return AnalysisRequest(**{**fields, **kwargs})


def _run(server, items, out: Path, **kwargs) -> np.ndarray:
    job = plan(_request(server, out, **kwargs), [items])
    assert job.grid.width == job.grid.height == SIZE and job.chunk == 256
    pixels = gdal.Open(str(execute(job))).ReadAsArray()
    return pixels[None] if pixels.ndim == 2 else pixels  # (bands, y, x) for one band too


def _fetched(server, start: int) -> list[str]:
    """The requested paths in nginx's access log after line ``start``."""
    lines = (server.tmp / "access.log").read_text().splitlines()[start:]
    return [line.split('"')[1].split()[1] for line in lines if '"' in line]


def _log_length(server) -> int:
    log = server.tmp / "access.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _valid(truth: dict, band: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.stack(truth[band]).astype(np.float64)
    clear = np.isin(np.stack(truth["scl"]), CLEAR).repeat(2, axis=1).repeat(2, axis=2)
    return values, clear & (values != 0)


def test_a_wholly_cloudy_date_is_not_fetched_and_the_median_is_unchanged(cloudy, tmp_path, monkeypatch):
    server, items, truth = cloudy
    start = _log_length(server)
    skipping = _run(server, items, tmp_path / "skipping.tif")
    fetched = _fetched(server, start)
    assert "/d0/red.tif" in fetched and "/d4/nir.tif" in fetched  # a single clear pixel is worth a read
    assert f"/d{CLOUDY}/scl.tif" in fetched
    assert f"/d{CLOUDY}/red.tif" not in fetched and f"/d{CLOUDY}/nir.tif" not in fetched

    for number, band in enumerate(("red", "nir")):
        values, valid = _valid(truth, band)
        with np.errstate(all="ignore"):
            reference = np.nanmedian(np.where(valid, values, np.nan), axis=0)
        np.testing.assert_array_equal(skipping[number], reference.astype(np.float32))
    assert np.isnan(skipping[0]).any() and np.isfinite(skipping[0]).mean() > 0.9

    monkeypatch.setattr(graph, "SKIP_CLOUDY_DATES", False)
    start = _log_length(server)
    every = _run(server, items, tmp_path / "every.tif")
    assert f"/d{CLOUDY}/red.tif" in _fetched(server, start)  # the log does show a read when there is one
    assert every.tobytes() == skipping.tobytes()


def test_time_statistics_skip_cloudy_dates_too(cloudy, tmp_path):
    server, items, truth = cloudy
    start = _log_length(server)
    std = _run(server, items, tmp_path / "std.tif", operation="statistics", statistic="std", bands=("red",))
    assert f"/d{CLOUDY}/red.tif" not in _fetched(server, start)
    values, valid = _valid(truth, "red")
    with np.errstate(all="ignore"):
        reference = np.nanstd(np.where(valid, values, np.nan), axis=0)  # population std, as documented
    np.testing.assert_allclose(std[0], reference, rtol=1e-6, equal_nan=True)
    assert np.isfinite(std[0]).mean() > 0.9


def test_best_pixel_and_the_extra_bands_still_read_cloudy_dates(cloudy, tmp_path):
    """Best-pixel falls back to a cloudy value where a pixel is never clear, and TOTALOB counts every
    observation: both need the cloudy date's bands."""
    server, items, truth = cloudy
    start = _log_length(server)
    result = _run(server, items, tmp_path / "best.tif", method="best-pixel", extra_bands=True)
    assert f"/d{CLOUDY}/red.tif" in _fetched(server, start)
    dataset = gdal.Open(str(tmp_path / "best.tif"))  # kept while its bands are asked
    names = [dataset.GetRasterBand(n + 1).GetDescription() for n in range(len(result))]
    present = np.stack(truth["red"]) != 0
    np.testing.assert_array_equal(result[names.index("TOTALOB")], present.sum(axis=0).astype(np.float32))
    _, valid = _valid(truth, "red")
    np.testing.assert_array_equal(result[names.index("CLEAROB")], valid.sum(axis=0).astype(np.float32))


def test_a_dask_cluster_skips_the_same_dates_with_the_same_result(cloudy, tmp_path, dask_cluster):
    server, items, _ = cloudy
    local = _run(server, items, tmp_path / "local.tif")
    start = _log_length(server)
    remote = _run(server, items, tmp_path / "remote.tif", dask_scheduler=dask_cluster)
    fetched = _fetched(server, start)
    assert "/d0/red.tif" in fetched  # the workers read over HTTP themselves, into the same log
    assert f"/d{CLOUDY}/red.tif" not in fetched and f"/d{CLOUDY}/nir.tif" not in fetched
    assert remote.tobytes() == local.tobytes()


def test_a_missing_remote_file_is_left_out_named_with_its_status_and_counted(cloudy, tmp_path):
    """The slices of a remote chunk are read by several threads at once; a 404 in one of them leaves
    that date's red out of every block (as if the item had no red), the run finishes with the other
    dates, the log names the URL with its status and the output's metadata counts it."""
    server, items, truth = cloudy
    broken = copy.deepcopy(items)
    broken[3]["assets"]["red"]["href"] = f"{server.url}/d3/missing-red.tif"  # date 3 is read in every block
    said: list[str] = []
    path = execute(plan(_request(server, tmp_path / "broken.tif"), [broken]), log=said.append)
    pixels = gdal.Open(str(path)).ReadAsArray()
    for number, band in enumerate(("red", "nir")):
        values, valid = _valid(truth, band)
        if band == "red":
            valid[3] = False
        with np.errstate(all="ignore"):
            reference = np.nanmedian(np.where(valid, values, np.nan), axis=0)
        np.testing.assert_array_equal(pixels[number], reference.astype(np.float32))
    expected = f"{server.url}/d3/missing-red.tif: HTTP 404 (not found)"
    metadata = gdal.Open(str(path)).GetMetadata()
    assert metadata["CUBESCOPE_SKIPPED_INPUTS"] == "1" and metadata["CUBESCOPE_SKIPPED"] == expected
    assert "Warning: 1 input could not be read and was left out; the result is computed from the others:" in said
    assert f"Warning:   {expected}" in said


def test_a_dask_cluster_leaves_out_and_reports_the_same_missing_file(cloudy, tmp_path, dask_cluster):
    """The workers are other processes: what they leave out reaches the run through the scheduler."""
    server, items, _ = cloudy
    broken = copy.deepcopy(items)
    broken[3]["assets"]["red"]["href"] = f"{server.url}/d3/missing-red.tif"
    local = _run(server, broken, tmp_path / "local.tif")
    path = execute(plan(_request(server, tmp_path / "remote.tif", dask_scheduler=dask_cluster), [broken]))
    assert gdal.Open(str(path)).ReadAsArray().tobytes() == local.tobytes()
    metadata = gdal.Open(str(path)).GetMetadata()
    assert metadata["CUBESCOPE_SKIPPED_INPUTS"] == "1"
    assert metadata["CUBESCOPE_SKIPPED"] == f"{server.url}/d3/missing-red.tif: HTTP 404 (not found)"


def test_a_run_asked_to_stop_at_the_first_bad_input_names_it_and_leaves_nothing(cloudy, tmp_path):
    server, items, _ = cloudy
    broken = copy.deepcopy(items)
    broken[3]["assets"]["red"]["href"] = f"{server.url}/d3/missing-red.tif"
    with pytest.raises(ReadFailed, match=r"Stopped at the first input that cannot be read \(as asked\): "
                                         r"http://127\.0\.0\.1:\d+/d3/missing-red\.tif: HTTP 404 \(not found\)"):
        _run(server, broken, tmp_path / "broken.tif", fail_on_bad_input=True)
    assert list(tmp_path.iterdir()) == []


def test_a_block_of_a_stopped_run_fetches_nothing_more_and_a_running_one_counts_its_reads(cloudy, tmp_path):
    """Remote slices cost round trips: once its run is cancelled or failed (the runner sets the run's
    stop event), a block still computing gives up before its next time slice instead of reading on.
    A block of a run still going reads, counting the slices it read (the runner's progress)."""
    server, items, truth = cloudy
    job = plan(_request(server, tmp_path / "unused.tif"), [items])
    datasets = graph.load_periods(job.periods, job.grid, job.chunk, "nearest", job.gdal_options)
    (_, first), *_ = graph.block_tasks(graph.result_array(job.periods, datasets))
    stopped = BlockState(threading.Event())
    stopped.stop.set()
    start = _log_length(server)
    with pytest.raises(Canceled):
        _compute_local(first, stopped)
    assert _fetched(server, start) == [] and stopped.reads == 0

    running = BlockState(threading.Event())
    block = _compute_local(first, running)
    assert "/d0/red.tif" in _fetched(server, start)
    # The north-west block: 6 SCL slices; red and nir on the 3 dates with a clear pixel there (date 1
    # is cloudy everywhere, date 2 over this block, date 4 in shadow but for one south-eastern pixel).
    assert running.reads == 6 + 2 * 3
    assert graph.reads_per_block(job.periods) == 6 * 3
    values, valid = _valid(truth, "red")
    with np.errstate(all="ignore"):
        reference = np.nanmedian(np.where(valid, values, np.nan), axis=0)[:256, :256]
    np.testing.assert_array_equal(block[0], reference.astype(np.float32))
