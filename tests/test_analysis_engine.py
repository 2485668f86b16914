"""The job around the arithmetic: estimate, COG output, bad input, failures and cancelling that leave
nothing behind, and a real Dask cluster giving the very same bytes as local threads."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from landsat_names import as_landsat
from osgeo import gdal

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.cog_writer import WriteError
from cubescope.plugin.analysis.engine.grid import GridTooLarge
from cubescope.plugin.analysis.engine.pipeline import (
    Canceled,
    EmptyPeriod,
    ReadFailed,
    SchedulerUnreachable,
    estimate,
    execute,
    plan,
    run,
    search_periods,
)
from cubescope.plugin.analysis.engine.planning import AnalysisError

TILE = (732320.0, 5041600.0, 734880.0, 5044160.0)
"""Tile 34TGR in EPSG:32634 (256 x 256 px at 10 m)."""
WEST = (732320.0, 5042880.0, 733600.0, 5044160.0)
"""128 x 128 px of tile 34TGR west of the other tile: four 64-px blocks, no reprojection."""
SUMMER = Period(datetime(2023, 5, 1), datetime(2023, 9, 30))


def _request(demo_cube, out: Path, **kwargs) -> AnalysisRequest:
    defaults = dict(source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite",
                    bands=("red", "nir", "NDVI"), periods=(SUMMER,), output=str(out), extent=TILE,
                    extent_crs="EPSG:32634")
    defaults.update(kwargs)
    return AnalysisRequest(**defaults)


def _read(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    return dataset.ReadAsArray()


def test_estimate_reports_the_volume_without_reading_or_writing(demo_cube, tmp_path):
    out = tmp_path / "never.tif"
    volume = estimate(_request(demo_cube, out, extra_bands=True))
    assert (volume.width, volume.height, volume.crs, volume.resolution) == (256, 256, "EPSG:32634", 10.0)
    assert volume.dates == 11 and volume.items == 22  # two tiles per date touch the tile's bbox
    assert set(volume.bands_read) == {"red", "nir", "scl"}
    assert volume.bytes_read == 11 * 256 * 256 * (2 + 2 + 1)
    assert volume.output_bands == ("red median", "nir median", "NDVI median", "CLEAROB", "TOTALOB")
    assert volume.bytes_written == 5 * 256 * 256 * 4
    assert "11 dates" in volume.describe() and "256 x 256" in volume.describe()
    difference = estimate(_request(demo_cube, out, operation="difference", bands=("NDVI",), extra_bands=True,
                                   periods=(SUMMER, Period(datetime(2024, 5, 1), datetime(2024, 7, 31)))))
    assert difference.output_bands == ("NDVI median difference",) and difference.dates == 11 + 6
    assert list(tmp_path.iterdir()) == []


def test_output_is_a_cog_with_descriptions_nodata_overviews_and_metadata(demo_cube, tmp_path):
    out = tmp_path / "composite.tif"
    path = run(_request(demo_cube, out, method="best-pixel", extra_bands=True, resolution=5.0))
    assert path == out and sorted(p.name for p in tmp_path.iterdir()) == ["composite.tif"]
    dataset = gdal.Open(str(out))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (512, 512)
    structure = dataset.GetMetadata("IMAGE_STRUCTURE")
    assert structure.get("LAYOUT") == "COG" and structure.get("COMPRESSION") == "DEFLATE"
    band = dataset.GetRasterBand(1)
    assert band.GetBlockSize() == [256, 256] and band.GetOverviewCount() >= 1
    assert np.isnan(band.GetNoDataValue())
    names = [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]
    assert names == ["red best-pixel", "nir best-pixel", "NDVI best-pixel", "CLEAROB", "TOTALOB", "PROVENANCE"]
    meta = dataset.GetMetadata()
    assert meta["CUBESCOPE_OPERATION"] == "composite" and meta["CUBESCOPE_METHOD"] == "best-pixel"
    assert meta["CUBESCOPE_PERIOD"] == "2023-05-01/2023-09-30"
    assert meta["CUBESCOPE_COLLECTION"] == "demo-s2-l2a" and meta["CUBESCOPE_BANDS"] == "red,nir,NDVI"
    assert "scl" in meta["CUBESCOPE_QUALITY"] and len(meta["CUBESCOPE_DATES"].split(",")) == 11


def _colours(path: Path) -> list[str]:
    dataset = gdal.Open(str(path))
    return [gdal.GetColorInterpretationName(dataset.GetRasterBand(i).GetColorInterpretation())
            for i in range(1, dataset.RasterCount + 1)]


def test_a_true_colour_composite_says_which_band_is_red_green_and_blue(demo_cube, tmp_path):
    """Asked in the sensor's order (and by band id), the bands carry their colour, so that QGIS and
    GDAL show a true-colour image; nir, the index and the extra bands carry none."""
    out = tmp_path / "natural.tif"
    run(_request(demo_cube, out, bands=("B02", "green", "red", "nir", "ndvi"), extent=WEST, extra_bands=True))
    assert _colours(out) == ["Blue", "Green", "Red"] + ["Undefined"] * 4  # nir, NDVI, CLEAROB, TOTALOB


@pytest.mark.parametrize("bands", [("nir", "red", "green"), ("red", "green", "ndvi")])
def test_a_false_colour_or_partial_composite_keeps_the_bands_uncoloured(demo_cube, tmp_path, bands):
    out = tmp_path / "false.tif"
    run(_request(demo_cube, out, bands=bands, extent=WEST))
    assert "Red" not in _colours(out) and "Blue" not in _colours(out)


@pytest.mark.parametrize("api", ["stac_api_light", "stac_api_full"])
def test_a_composite_from_a_stac_api_reading_cogs_over_http_equals_the_local_one(demo_cube, tmp_path, request, api):
    """The everyday deployment: items searched on a STAC API (rustac; stac-fastapi-pgstac), COGs read over
    HTTP by ranges from nginx. Same items after the cloud limit, same dates, same bytes as from the
    catalog on disk."""
    server = request.getfixturevalue(api)
    fields = dict(bands=("red", "nir", "NDVI"), extent=WEST, max_cloud=40.0)
    local = run(_request(demo_cube, tmp_path / "local.tif", **fields))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        remote = run(_request(demo_cube, tmp_path / "api.tif", source=server.url, **fields))
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == [], "connections closed"
    meta_local, meta_remote = gdal.Open(str(local)).GetMetadata(), gdal.Open(str(remote)).GetMetadata()
    assert meta_remote["CUBESCOPE_SOURCE"] == server.url
    assert (meta_remote["CUBESCOPE_ITEMS"], meta_remote["CUBESCOPE_DATES"]) == \
        (meta_local["CUBESCOPE_ITEMS"], meta_local["CUBESCOPE_DATES"])
    assert 0 < len(meta_remote["CUBESCOPE_DATES"].split(",")) < 11, "the cloud limit left some dates out"
    assert _read(remote).tobytes() == _read(local).tobytes()
    served = (request.getfixturevalue("nginx_server").tmp / "access.log").read_text()
    assert " 206 " in served and "/red.tif" in served, "the pixels came from nginx, by ranges"


def test_an_empty_period_says_so(demo_cube, tmp_path):
    request = _request(demo_cube, tmp_path / "x.tif", periods=(Period(datetime(2022, 1, 1), datetime(2022, 12, 31)),))
    with pytest.raises(EmptyPeriod, match="No items of demo-s2-l2a between 2022-01-01 and 2022-12-31"):
        run(request)
    assert list(tmp_path.iterdir()) == []


def test_an_extent_touching_no_item_says_so(demo_cube, tmp_path):
    request = _request(demo_cube, tmp_path / "x.tif", extent=(10.0, 50.0, 10.1, 50.1), extent_crs="EPSG:4326")
    with pytest.raises(EmptyPeriod, match=r"The extent .* touches no item of demo-s2-l2a .*move or enlarge"):
        run(request)


@pytest.mark.parametrize(("bands", "message"), [
    (("NBR",), "NBR needs the 'swir22' band"),
    (("red", "B99"), "No band 'B99' .*available bands: .*nir"),
])
def test_a_band_that_cannot_be_computed_is_named(demo_cube, tmp_path, bands, message):
    with pytest.raises(AnalysisError, match=message):
        run(_request(demo_cube, tmp_path / "x.tif", bands=bands))
    assert list(tmp_path.iterdir()) == []


def test_real_earth_search_items_plan_their_bands_and_refuse_an_ambiguous_name(shared_data, tmp_path):
    """Real Earth Search metadata (10 items of tile 13TDE): NDVI reads nir and red at 10 m with the SCL rule;
    "rededge", the common name of three bands, is refused naming them, and "rededge2" plans at 20 m."""
    folder = shared_data / "stac" / "earth-search-sentinel-2-c1-l2a"
    items = json.loads((folder / "item-collection.json").read_text())["features"]
    west, south, east, north = items[0]["bbox"]
    middle = ((west + east) / 2, (south + north) / 2)
    extent = (middle[0] - 0.05, middle[1] - 0.05, middle[0] + 0.05, middle[1] + 0.05)

    def request(*bands: str) -> AnalysisRequest:
        return AnalysisRequest(source="earth-search", collection="sentinel-2-c1-l2a", operation="composite",
                               bands=bands, periods=(Period(datetime(2024, 1, 1), datetime(2024, 12, 31)),),
                               output=str(tmp_path / "x.tif"), extent=extent, extent_crs="EPSG:4326")

    job = plan(request("NDVI"), [items])
    assert (job.volume.crs, job.volume.resolution, job.volume.dates) == ("EPSG:32613", 10.0, len(items))
    assert job.periods[0].asset_keys == ("nir", "red", "scl")
    assert "scl is one of 4, 5, 6, 7, 11" in job.quality
    with pytest.raises(AnalysisError, match=r"^'rededge' is the common name of 3 bands in item .*: "
                                            r"rededge1 \(B05\), rededge2 \(B06\), rededge3 \(B07\); name one"):
        plan(request("NDVI", "rededge"), [items])
    job = plan(request("rededge2"), [items])
    assert (job.periods[0].asset_keys, job.volume.resolution) == (("rededge2", "scl"), 20.0)
    assert list(tmp_path.iterdir()) == []


def test_landsat_naming_its_nir_nir08_gives_the_same_ndvi_and_nir(demo_cube, tmp_path):
    """No band of a Landsat Collection 2 item is "nir": NDVI and a "nir" band take "nir08" instead, and on
    the same pixels give the very same composite."""
    found = search_periods(_request(demo_cube, tmp_path / "unused.tif"))
    results = {}
    for name, items in (("s2", found[0]), ("landsat", as_landsat(found[0]))):
        job = plan(_request(demo_cube, tmp_path / f"{name}.tif", bands=("nir", "NDVI"), extent=WEST), [items])
        results[name] = (job.periods[0].asset_keys, _read(execute(job)))
    assert results["s2"][0] == ("nir", "red", "scl") and results["landsat"][0] == ("nir08", "red", "scl")
    s2, landsat = results["s2"][1], results["landsat"][1]
    assert s2.shape == (2, 128, 128) and np.isfinite(s2).mean() > 0.9
    np.testing.assert_array_equal(landsat, s2)
    assert gdal.Open(str(tmp_path / "landsat.tif")).GetRasterBand(2).GetDescription() == "NDVI median"
    without = [{**item, "assets": {k: a for k, a in item["assets"].items() if k != "nir08"}}
               for item in as_landsat(found[0])]
    with pytest.raises(AnalysisError, match=r"^NDVI needs the 'nir' or 'nir08' band \(common name\)"):
        plan(_request(demo_cube, tmp_path / "x.tif", bands=("NDVI",), extent=WEST), [without])


def test_an_absurd_resolution_is_refused_with_the_size(demo_cube, tmp_path):
    with pytest.raises(GridTooLarge, match=r"would be 2,560,000 x 2,560,000 pixels x 3 band\(s\) .*TB"):
        run(_request(demo_cube, tmp_path / "x.tif", resolution=0.001))
    assert list(tmp_path.iterdir()) == []


def test_a_crs_without_an_epsg_code_is_named_not_spelled_out_in_messages(demo_cube, tmp_path):
    """Mollweide (ESRI:54009) reaches the engine as WKT, as the dock and the algorithms pass any CRS
    without an EPSG code: the estimate and the refusal name it, they do not print 700 characters."""
    from pyproj import CRS

    mollweide = CRS.from_user_input("ESRI:54009").to_wkt()
    volume = estimate(_request(demo_cube, tmp_path / "x.tif", crs=mollweide, resolution=20.0))
    assert "(World_Mollweide (ESRI:54009))" in volume.describe() and "PROJCRS" not in volume.describe()
    with pytest.raises(GridTooLarge) as refused:
        run(_request(demo_cube, tmp_path / "x.tif", crs=mollweide, resolution=0.001))
    assert "in World_Mollweide (ESRI:54009);" in str(refused.value) and "PROJCRS" not in str(refused.value)


def test_an_unreachable_scheduler_fails_fast_and_clearly(demo_cube, tmp_path, unused_port):
    request = _request(demo_cube, tmp_path / "x.tif", dask_scheduler=f"127.0.0.1:{unused_port}",
                       scheduler_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match=f"Cannot reach the Dask scheduler at tcp://127.0.0.1:{unused_port}"):
        run(request)
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


def test_the_dask_cluster_gives_identical_results(demo_cube, tmp_path, dask_cluster):
    """Worker processes compute the same blocks as local threads, bit for bit: a two-pass best-pixel
    composite with its extra bands, and a two-period difference (median of DNs and of NDVI)."""
    jobs = [
        dict(method="best-pixel", extra_bands=True),  # two passes: the scene order, then the blocks
        dict(operation="difference", bands=("red", "NDVI"),
             periods=(SUMMER, Period(datetime(2024, 5, 1), datetime(2024, 7, 31)))),
    ]
    for number, job in enumerate(jobs):
        logs: list[str] = []
        local = _request(demo_cube, tmp_path / f"local{number}.tif", chunk_size=64, extent=WEST, **job)
        remote = replace(local, output=str(tmp_path / f"remote{number}.tif"), dask_scheduler=dask_cluster)
        items = search_periods(local)
        a = _read(execute(plan(local, items)))
        b = _read(execute(plan(remote, items), log=logs.append))
        assert any("Dask cluster" in line for line in logs)
        assert a.tobytes() == b.tobytes(), job
        assert np.isfinite(a).mean() > 0.9


@pytest.fixture(scope="module")
def cluster_without_cubescope(tmp_path_factory):
    """`dask scheduler` + `dask worker` processes whose Python cannot import Cubescope (no PYTHONPATH),
    like a user's cluster that has odc-stac but not the plugin."""
    from servers.ports import free_port, port_open
    from servers.process import ServerProcess, server_env

    folder = tmp_path_factory.mktemp("bare-dask")
    port = free_port()
    dask = Path(sys.executable).with_name("dask")
    env = server_env()
    check = subprocess.run([sys.executable, "-c", "import cubescope"], env=env, cwd=folder, capture_output=True)
    assert check.returncode != 0, "the workers' Python must not see Cubescope"
    scheduler = ServerProcess.start("dask scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                                       "--dashboard-address", "127.0.0.1:0"],
                                    folder / "scheduler.log", env=env, cwd=folder)
    workers = None
    try:
        scheduler.wait_ready(lambda: port_open(port))
        workers = ServerProcess.start("dask worker", [dask, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2",
                                                     "--nthreads", "1", "--dashboard-address", "127.0.0.1:0",
                                                     "--local-directory", str(folder)],
                                      folder / "worker.log", env=env, cwd=folder)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        if workers is not None:
            workers.stop()
        scheduler.stop()


def test_workers_need_odc_stac_but_not_cubescope(demo_cube, tmp_path, cluster_without_cubescope):
    """The block functions and the reader travel with the tasks as code (pickled by value)."""
    local = _request(demo_cube, tmp_path / "local.tif", chunk_size=64, extent=WEST, method="best-pixel",
                     extra_bands=True, scheduler_timeout=30.0)
    remote = replace(local, output=str(tmp_path / "remote.tif"), dask_scheduler=cluster_without_cubescope)
    items = search_periods(local)
    assert _read(execute(plan(local, items))).tobytes() == _read(execute(plan(remote, items))).tobytes()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cancelling_midway_leaves_nothing(demo_cube, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen: list[float] = []
    request = _request(demo_cube, out_dir / "x.tif", chunk_size=64)
    with pytest.raises(Canceled):
        run(request, progress=seen.append, is_canceled=lambda: bool(seen) and seen[-1] > 30)
    assert 30 < seen[-1] < 90
    assert _files(out_dir) == []


def test_cancelling_while_the_cog_is_copied_stops_the_copy_and_leaves_nothing(demo_cube, tmp_path):
    """The COG copy after the blocks (80-100 %) compresses every tile again, seconds for a large
    result: a cancel then stops it at GDAL's next progress step instead of waiting for the end."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen: list[float] = []
    request = _request(demo_cube, out_dir / "x.tif", chunk_size=256, resolution=2.5)  # 1024 x 1024 px
    with pytest.raises(Canceled):
        run(request, progress=seen.append, is_canceled=lambda: bool(seen) and seen[-1] > 81)
    assert 81 < seen[-1] < 100, "stopped within the copy, before it completed"
    assert _files(out_dir) == []


def test_a_folder_removed_midway_fails_and_leaves_no_file(demo_cube, tmp_path):
    """A real write failure: the output folder disappears while blocks are being written."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    request = _request(demo_cube, out_dir / "x.tif", chunk_size=64)

    def progress(percent: float) -> None:
        if percent > 40 and out_dir.exists():
            shutil.rmtree(out_dir)

    with pytest.raises(WriteError):
        run(request, progress=progress)
    assert not out_dir.exists()


def _with_red(items: list[list[dict]], index: int, href: Path) -> list[list[dict]]:
    """The items with the red asset of the period's item ``index`` pointing to ``href``."""
    changed = [list(found) for found in items]
    item = changed[0][index]
    changed[0][index] = {**item, "assets": {**item["assets"], "red": {**item["assets"]["red"], "href": str(href)}}}
    return changed


def test_an_item_truncated_midway_is_left_out_and_reported(demo_cube, tmp_path):
    """A real read failure: one date's COG ends a third of the way in. The run finishes, the log and the
    output's metadata name the file as truncated; asked to stop at the first bad input, it stops and
    leaves no file."""
    request = _request(demo_cube, tmp_path / "out" / "x.tif", chunk_size=64)
    (tmp_path / "out").mkdir()
    items = search_periods(request)
    broken = tmp_path / "broken-red.tif"
    source = Path(items[0][-1]["assets"]["red"]["href"])
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    said: list[str] = []
    path = execute(plan(request, _with_red(items, -1, broken)), log=said.append)
    metadata = gdal.Open(str(path)).GetMetadata()
    assert metadata["CUBESCOPE_SKIPPED_INPUTS"] == "1"
    assert metadata["CUBESCOPE_SKIPPED"].startswith(f"{broken}: truncated or corrupt")
    assert any(line.startswith(f"Warning:   {broken}: truncated or corrupt") for line in said), said

    stopping = replace(request, output=str(tmp_path / "out" / "y.tif"), fail_on_bad_input=True)
    with pytest.raises(ReadFailed, match=rf"Stopped at the first input .*{re.escape(str(broken))}: truncated"):
        execute(plan(stopping, _with_red(items, -1, broken)))
    assert _files(tmp_path / "out") == ["x.tif"]


def test_a_png_named_tif_is_an_error_left_out_not_a_silent_drop(demo_cube, tmp_path):
    """A file that is not what its name says: GDAL reads a PNG named red.tif (without georeferencing).
    It is reported as not a GeoTIFF, and it gives no pixel: the composite equals the one where that
    date's red file is missing."""
    request = _request(demo_cube, tmp_path / "png.tif", bands=("red",))
    items = search_periods(request)
    source = items[0][2]["assets"]["red"]["href"]
    png = tmp_path / "png" / "red.tif"
    png.parent.mkdir()
    gdal.Translate(str(png), source, format="PNG")
    said: list[str] = []
    path = execute(plan(request, _with_red(items, 2, png)), log=said.append)
    assert f"Warning:   {png}: not a GeoTIFF: GDAL reads it as PNG" in said
    assert gdal.Open(str(path)).GetMetadata()["CUBESCOPE_SKIPPED_INPUTS"] == "1"
    missing = tmp_path / "missing" / "red.tif"
    reference = execute(plan(replace(request, output=str(tmp_path / "missing.tif")), _with_red(items, 2, missing)),
                        log=said.append)
    assert f"Warning:   {missing}: not found" in said
    np.testing.assert_array_equal(_read(path), _read(reference))
    clean = execute(plan(replace(request, output=str(tmp_path / "clean.tif")), items))
    assert not np.array_equal(_read(path), _read(clean), equal_nan=True)  # that date did count


DISK_FULL = textwrap.dedent("""
    import json, resource, signal, sys
    from datetime import datetime
    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
    from cubescope.plugin.analysis.engine.pipeline import run
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    args = json.loads(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (args["limit"], args["limit"]))
    request = AnalysisRequest(source=args["catalog"], collection="demo-s2-l2a", operation="composite",
                              bands=("red", "nir", "NDVI"), output=args["output"], extent=tuple(args["extent"]),
                              extent_crs="EPSG:32634", chunk_size=64, extra_bands=True,
                              periods=(Period(datetime(2023, 5, 1), datetime(2023, 9, 30)),))
    try:
        run(request)
    except OSError as error:
        print("FAILED:", error)
        sys.exit(3)
""")


@pytest.mark.parametrize("limit", [150_000, 1_250_000])
def test_a_full_disk_midway_leaves_no_partial_file(demo_cube, tmp_path, limit):
    """Files may not grow past ``limit`` bytes (RLIMIT_FSIZE): writes fail like on a full disk, in the
    staged GeoTIFF (150 kB) or while copying it into the compressed COG (1.25 MB)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = {"limit": limit, "catalog": str(demo_cube.catalog), "output": str(out_dir / "x.tif"), "extent": TILE}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", DISK_FULL, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "FAILED: " in done.stdout and ("File too large" in done.stdout or "Cannot write" in done.stdout)
    assert _files(out_dir) == []


def test_an_existing_output_is_replaced_only_when_the_new_one_is_complete(demo_cube, tmp_path):
    out = tmp_path / "x.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(Canceled):
        run(_request(demo_cube, out, chunk_size=64), is_canceled=lambda: True)
    assert out.read_bytes() == b"previous result"
    run(replace(_request(demo_cube, out), method="max"))
    assert gdal.Open(str(out)).RasterCount == 3


LOCAL_RUN = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
    from cubescope.plugin.analysis.engine.pipeline import run
    args = json.loads(sys.argv[1])
    run(AnalysisRequest(source=args["catalog"], collection="demo-s2-l2a", operation="composite",
                        bands=("red", "NDVI"), output=args["output"], extent=tuple(args["extent"]),
                        extent_crs="EPSG:32634", chunk_size=64,
                        periods=(Period(datetime(2023, 5, 1), datetime(2023, 9, 30)),)))
    print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "distributed")))
""")


def test_a_local_run_does_not_import_the_dask_cluster_client(demo_cube, tmp_path):
    """Asking dask for its scheduler by name imports ``distributed`` first (0.3 s under the import lock,
    while the first blocks wait); a local run passes the scheduler itself."""
    args = {"catalog": str(demo_cube.catalog), "output": str(tmp_path / "x.tif"), "extent": TILE}
    done = subprocess.run([sys.executable, "-c", LOCAL_RUN, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert gdal.Open(str(tmp_path / "x.tif")).RasterCount == 2
