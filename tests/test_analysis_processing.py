"""cubescope:composite, :difference and :temporalstats from the command line (the README's lines).

Each algorithm runs in ``qgis_process`` on the demo's static catalog and must write exactly the
raster the pure engine writes for the same request in this process.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest
from osgeo import gdal
from qgis_desktop import qgis_process

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import run

TILE = "732320,734880,5041600,5044160 [EPSG:32634]"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("qgis-home")
    enabled = qgis_process(home, "plugins", "enable", "cubescope")
    assert enabled.returncode == 0, enabled.stderr[-2000:]
    return home


def _same_raster(a, b) -> None:
    first, second = gdal.Open(str(a)), gdal.Open(str(b))
    assert first.GetGeoTransform() == second.GetGeoTransform()
    names = [first.GetRasterBand(i).GetDescription() for i in range(1, first.RasterCount + 1)]
    assert names == [second.GetRasterBand(i).GetDescription() for i in range(1, second.RasterCount + 1)]
    assert first.ReadAsArray().tobytes() == second.ReadAsArray().tobytes()
    assert np.isfinite(first.ReadAsArray()).mean() > 0.9


def _check(run_, out) -> None:
    assert run_.returncode == 0, run_.stdout[-3000:] + run_.stderr[-3000:]
    assert out.exists() and sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_composite_from_the_command_line(home, demo_cube, tmp_path):
    out = tmp_path / "composite.tif"
    done = qgis_process(
        home, "run", "cubescope:composite", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=red,nir,NDVI", "START=2023-05-01", "END=2023-09-30", "METHOD=4", "EXTRA_BANDS=true",
        f"EXTENT={TILE}", "MAX_CLOUD=100", f"OUTPUT={out}")
    _check(done, out)
    assert "22 items on 11 dates" in done.stdout
    engine = run(AnalysisRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite",
        bands=("red", "nir", "NDVI"), method="best-pixel", extra_bands=True, output=str(tmp_path / "engine.tif"),
        periods=(Period(datetime(2023, 5, 1), datetime(2023, 9, 30, 23, 59, 59)),),
        extent=(732320, 5041600, 734880, 5044160), extent_crs="EPSG:32634"))
    _same_raster(out, engine)
    meta = gdal.Open(str(out)).GetMetadata()
    assert meta["CUBESCOPE_METHOD"] == "best-pixel" and meta["CUBESCOPE_PERIOD"] == "2023-05-01/2023-09-30"


def test_difference_from_the_command_line(home, demo_cube, tmp_path):
    out = tmp_path / "ndvi-difference.tif"
    done = qgis_process(
        home, "run", "cubescope:difference", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=NDVI", "START_A=2023-05-01", "END_A=2023-09-30", "START_B=2024-05-01", "END_B=2024-07-31",
        "METHOD=0", f"EXTENT={TILE}", f"OUTPUT={out}")
    _check(done, out)
    change = gdal.Open(str(demo_cube.root / "truth" / "34TGR_change.tif")).ReadAsArray() == 1
    assert np.array_equal(gdal.Open(str(out)).ReadAsArray() < -0.3, change)


def test_temporal_statistics_from_the_command_line(home, demo_cube, tmp_path):
    out = tmp_path / "ndvi-std.tif"
    done = qgis_process(
        home, "run", "cubescope:temporalstats", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=NDVI", "START=2023-03-01", "END=2024-07-31", "STATISTIC=1", "MAX_CLOUD=80",
        "EXTENT=23.975,23.99,45.49,45.51 [EPSG:4326]", "RESOLUTION=20", "DASK_SCHEDULER=local", f"OUTPUT={out}")
    _check(done, out)
    engine = run(AnalysisRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="statistics", statistic="std",
        bands=("NDVI",), output=str(tmp_path / "engine.tif"), max_cloud=80, resolution=20,
        periods=(Period(datetime(2023, 3, 1), datetime(2024, 7, 31, 23, 59, 59)),),
        extent=(23.975, 45.49, 23.99, 45.51)))
    _same_raster(out, engine)
    assert gdal.Open(str(out)).GetGeoTransform()[1] == 20.0


def test_statistics_of_a_zarr_cube_from_the_command_line(home, demo_cube, tmp_path):
    """SOURCE is the Zarr store itself; no COLLECTION."""
    out = tmp_path / "zarr-count.tif"
    done = qgis_process(
        home, "run", "cubescope:temporalstats", "--", f"SOURCE={demo_cube.zarr}", "BANDS=NDVI",
        "START=2023-03-01", "END=2024-07-31", "STATISTIC=5", f"OUTPUT={out}")
    _check(done, out)
    assert "37 items on 37 dates" in done.stdout
    engine = run(AnalysisRequest(
        source=str(demo_cube.zarr), collection="", operation="statistics", statistic="count", bands=("NDVI",),
        output=str(tmp_path / "engine.tif"),
        periods=(Period(datetime(2023, 3, 1), datetime(2024, 7, 31, 23, 59, 59)),)))
    _same_raster(out, engine)
    counts = gdal.Open(str(out)).ReadAsArray()
    assert counts.shape == (256, 256) and 0 < counts.min() < counts.max() <= 37


def test_bad_input_is_reported_in_the_users_words(home, demo_cube, tmp_path):
    done = qgis_process(
        home, "run", "cubescope:temporalstats", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=NBR", "START=2023-03-01", "END=2023-12-31", "STATISTIC=0", f"OUTPUT={tmp_path / 'x.tif'}")
    assert done.returncode != 0
    assert "NBR needs the 'swir22' band" in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []



def test_a_start_after_the_end_is_refused_before_any_work_without_a_traceback(home, demo_cube, tmp_path):
    done = qgis_process(
        home, "run", "cubescope:composite", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=red", "START=2024-05-01", "END=2024-03-01", f"OUTPUT={tmp_path / 'x.tif'}")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "START 2024-05-01 is after END 2024-03-01" in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_cut_cogs_from_the_command_line_are_left_out_reported_or_stop_the_run(home, demo_cube, tmp_path):
    """`qgis_process` on a catalog whose red COGs end partway: the composite is written, each file left
    out is a warning naming it with its cause, and the output counts them; with FAIL_ON_BAD_INPUT the
    run fails naming the first one, and writes nothing."""
    from cut_catalog import catalog_with_cut_red

    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    arguments = [f"SOURCE={catalog}", "COLLECTION=demo-s2-l2a", "BANDS=red", "START=2023-06-01",
                 "END=2023-08-31", "METHOD=0", f"EXTENT={TILE}"]
    out = tmp_path / "out" / "median.tif"
    out.parent.mkdir()
    done = qgis_process(home, "run", "cubescope:composite", "--", *arguments, f"OUTPUT={out}")
    _check(done, out)
    left_out = gdal.Open(str(out)).GetMetadata()["CUBESCOPE_SKIPPED"].splitlines()
    assert int(gdal.Open(str(out)).GetMetadata()["CUBESCOPE_SKIPPED_INPUTS"]) == len(left_out) > 0
    said = done.stdout + done.stderr
    assert "could not be read and w" in said
    for line in left_out:
        assert "/red.tif: truncated or corrupt (" in line and line in said, line

    stopped = qgis_process(home, "run", "cubescope:composite", "--", *arguments, "FAIL_ON_BAD_INPUT=true",
                           f"OUTPUT={tmp_path / 'out' / 'stopped.tif'}")
    assert stopped.returncode != 0
    assert re.search(r"Stopped at the first input that cannot be read \(as asked\): \S+/red\.tif: truncated",
                     stopped.stdout + stopped.stderr), stopped.stdout[-2000:] + stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stdout + stopped.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["median.tif"]
