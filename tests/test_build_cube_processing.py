"""cubescope:buildcube from the command line (the README's lines), in both formats.

The Zarr and the COG + STAC cubes that ``qgis_process`` writes must hold exactly what the pure
builder writes for the same request in this process.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
from osgeo import gdal
from qgis_desktop import qgis_process

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.products.cubes.builder import ZARR, CubeRequest, build_cube

SMALL = "732320,732960,5041600,5042240 [EPSG:32634]"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("qgis-home")
    enabled = qgis_process(home, "plugins", "enable", "cubescope")
    assert enabled.returncode == 0, enabled.stderr[-2000:]
    return home


def _arguments(demo_cube, out, fmt: int) -> list[str]:
    return [f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a", "BANDS=red,NDVI", f"EXTENT={SMALL}",
            "START=2023-01-01", "END=2023-03-31", "PERIOD=P16D", "CYCLIC=true", "METHOD=1", "EXTRA_BANDS=true",
            "MAX_CLOUD=100", "DASK_SCHEDULER=local", f"FORMAT={fmt}", f"OUTPUT={out}"]


def test_buildcube_writes_a_zarr_cube_equal_to_the_builders(home, demo_cube, tmp_path):
    import xarray

    out = tmp_path / "cube.zarr"
    done = qgis_process(home, "--json", "run", "cubescope:buildcube", "--", *_arguments(demo_cube, out, 0))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["results"]["OUTPUT"] == str(out)
    reference = build_cube(CubeRequest(AnalysisRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite", bands=("red", "NDVI"),
        method="mean", extra_bands=True, output=str(tmp_path / "reference.zarr"),
        periods=(Period(datetime(2023, 1, 1), datetime(2023, 3, 31, 23, 59, 59)),),
        extent=(732320, 5041600, 732960, 5042240), extent_crs="EPSG:32634"), step="P16D", cyclic=True, format=ZARR))
    built, expected = xarray.open_zarr(out), xarray.open_zarr(reference)
    starts = [np.datetime64(d) for d in ("2023-01-01", "2023-01-17", "2023-02-02", "2023-02-18", "2023-03-06",
                                         "2023-03-22")]
    assert list(built.time.values) == starts
    for name in ("red", "NDVI", "CLEAROB", "TOTALOB"):
        assert np.array_equal(built[name].values, expected[name].values, equal_nan=True), name
    assert np.isfinite(built.red.values).any()


def test_buildcube_writes_cogs_and_a_stac_catalog(home, demo_cube, tmp_path):
    out = tmp_path / "cube"
    done = qgis_process(home, "--json", "run", "cubescope:buildcube", "--", *_arguments(demo_cube, out, 1))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["results"]["CATALOG"] == str(out / "catalog.json")
    collection = json.loads((out / "demo-s2-l2a-mean-p16d-cyclic" / "collection.json").read_text())
    items = [link for link in collection["links"] if link["rel"] == "item"]
    assert len(items) == 6
    cog = gdal.Open(str(next(out.glob("*/*_2023-03-06/NDVI.tif"))))
    assert cog.GetGeoTransform() == (732320.0, 10.0, 0.0, 5042240.0, 0.0, -10.0)
    assert np.isfinite(cog.ReadAsArray()).any()


def test_buildcube_parameters_in_process(qgis_app, demo_cube, tmp_path):
    """The algorithm inside QGIS (toolbox, modeler): its parameters, and a cube in the chosen format."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from cubescope.plugin.processing.build_cube_algorithm import BuildCubeAlgorithm

    algorithm = BuildCubeAlgorithm()
    algorithm.initAlgorithm()
    names = [p.name() for p in algorithm.parameterDefinitions()]
    assert names == ["SOURCE", "COLLECTION", "BANDS", "START", "END", "PERIOD", "CYCLIC", "METHOD", "EXTRA_BANDS",
                     "EXTENT", "RESOLUTION", "TARGET_CRS", "MAX_CLOUD", "QUALITY_BAND", "CLEAR_VALUES",
                     "DASK_SCHEDULER", "FORMAT", "OUTPUT", "FAIL_ON_BAD_INPUT"]
    out = tmp_path / "inside.zarr"
    parameters = dict(arg.split("=", 1) for arg in _arguments(demo_cube, out, 0))
    parameters.update(CYCLIC=True, EXTRA_BANDS=False, METHOD=0, FORMAT=0)
    results, ok = algorithm.run(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert ok and results["OUTPUT"] == str(out)
    import xarray

    cube = xarray.open_zarr(out)
    assert sorted(cube.data_vars) == ["NDVI", "red", "time_bnds"] and cube.red.shape == (6, 64, 64)
