"""Minicubes: several sources on one grid, aggregated per variable, written as CF NetCDF and Zarr."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
import xarray
from rasterio.windows import Window

from cubescope.plugin.products.minicubes import build as mc
from cubescope.plugin.products.minicubes import store as store

# Tile A's Sentinel-1 grid is 20 m from (732320, 5044160) in EPSG:32634: a 32 x 32 minicube centred
# here at 20 m is that grid's top-left corner, west of tile B, so no resampling happens at all.
CENTRE = (732640.0, 5043840.0)
START, END = datetime(2023, 3, 1, tzinfo=timezone.utc), datetime(2023, 4, 30, 23, 59, 59, tzinfo=timezone.utc)


def _sources(demo_cube) -> str:
    cat = demo_cube.catalog
    zarr = next((demo_cube.catalog.parent.parent / "zarr").glob("*34TGR.zarr"))
    return (f"{cat}|demo-s2-l2a|red,nir,scl|median\n{cat}|demo-s1-rtc|vv,vh|mean\n"
            f"{cat}|demo-s1-rtc|vv_max=vv|max;{cat}|demo-dem|elevation=data|mean;"
            f"{cat}|demo-landcover|landcover=data|first;{zarr}||climate=red|max")


@pytest.fixture(scope="module")
def cube(demo_cube, tmp_path_factory):
    request = mc.MinicubeRequest(
        sources=mc.parse_sources(_sources(demo_cube)), start=START, end=END,
        output=str(tmp_path_factory.mktemp("mc") / "cube.nc"), point=CENTRE, point_crs="EPSG:32634",
        size=32, resolution=20.0, cadence="P24D")
    path = mc.run(request)
    return request, path, xarray.open_dataset(path)


def _s1_items(demo_cube) -> list[dict]:
    files = demo_cube.collections["demo-s1-rtc"].parent.glob("*T34TGR*/*.json")
    return sorted((json.loads(p.read_text()) | {"dir": p.parent} for p in files),
                  key=lambda i: i["properties"]["datetime"])


def test_grid_is_the_utm_zone_of_the_point_and_snapped():
    request = mc.MinicubeRequest(sources=(mc.SourceSpec("x.json", "c", ("red",)),), start=START, end=END,
                                 output="o.nc", point=(23.98, 45.5), size=10, resolution=20)
    grid = mc.minicube_grid(request)
    assert grid.crs == "EPSG:32634" and grid.shape == (10, 10)
    assert all(v % 20 == 0 for v in grid.bounds)
    assert mc.utm_crs(24.1, -10) == "EPSG:32735"


def test_cadence_and_source_parsing():
    assert mc.Cadence.parse("P24D").edges(START, END)[:3] == [START, datetime(2023, 3, 25, tzinfo=timezone.utc),
                                                               datetime(2023, 4, 18, tzinfo=timezone.utc)]
    assert mc.Cadence.parse("P1M").edges(START, END)[1] == datetime(2023, 4, 1, tzinfo=timezone.utc)
    assert mc.Cadence.parse("native").native
    with pytest.raises(mc.MinicubeError, match="Cadence"):
        mc.Cadence.parse("5 days")
    with pytest.raises(mc.MinicubeError, match="aggregation"):
        mc.parse_sources("a.json|c|red|mode")
    spec = mc.parse_sources("a.json|c|elevation=data|static")[0]
    assert spec.names == ("elevation",) and spec.sources == ("data",)


def test_variables_share_one_grid_and_static_layers_have_no_time(cube):
    _, _, ds = cube
    assert ds["x"].values.tolist() == [732330.0 + 20 * k for k in range(32)]
    assert ds["y"].values.tolist() == [5044150.0 - 20 * k for k in range(32)]
    assert "EPSG\",32634" in ds["spatial_ref"].attrs["crs_wkt"]
    for name in ("red", "nir", "scl", "vv", "vh", "vv_max", "climate"):
        assert ds[name].dims == ("time", "y", "x"), name
    for name in ("elevation", "landcover"):
        assert ds[name].dims == ("y", "x"), name
    assert set(np.unique(ds["landcover"].values[np.isfinite(ds["landcover"].values)])) <= {
        10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}
    assert np.isfinite(ds["elevation"].values).all() and np.isfinite(ds["climate"].values).any()


def test_aggregated_s1_equals_a_numpy_reference(cube, demo_cube):
    _, _, ds = cube
    edges = mc.Cadence.parse("P24D").edges(START, END)
    items = _s1_items(demo_cube)
    for k, when in enumerate(ds["time"].values):
        upper = min(edges[k + 1], END).isoformat()[:19]  # the last step stops at the end date
        chosen = [i for i in items if edges[k].isoformat()[:19] <= i["properties"]["datetime"][:19] < upper]
        assert chosen, when
        stack = []
        for item in chosen:
            with rasterio.open(item["dir"] / "vv.tif") as src:
                stack.append(src.read(1, window=Window(0, 0, 32, 32)))
        stack = np.stack(stack).astype(np.float32)
        np.testing.assert_array_equal(ds["vv"].values[k], np.nanmean(stack, axis=0))
        np.testing.assert_array_equal(ds["vv_max"].values[k], np.nanmax(stack, axis=0))


def test_cf_time_and_provenance(cube, demo_cube):
    _request, path, ds = cube
    assert path.suffix == ".nc"
    assert ds["time"].dtype.kind == "M"
    assert str(ds["time"].values[0])[:10] == "2023-03-01"
    assert ds["time"].encoding["units"].startswith("days since")
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["cadence"] == "P24D"
    vv = ds["vv"].attrs
    assert (vv["source_collection"], vv["source_asset"], vv["aggregation"]) == ("demo-s1-rtc", "vv", "mean")
    assert vv["source_url"] == str(demo_cube.catalog) and vv["units"] == "linear power"
    assert ds["scl"].attrs["resampling"] == "nearest" and ds["red"].attrs["resampling"] == "bilinear"
    assert ds["elevation"].attrs["aggregation"] == "static"
    assert ds["climate"].attrs["source_variable"] == "red" and ds["climate"].attrs["source_url"].endswith(".zarr")
    for name in ds.data_vars:
        if name != "spatial_ref":
            assert ds[name].attrs["grid_mapping"] == "spatial_ref" and ds[name].attrs["long_name"], name


def test_zarr_output_matches_netcdf(cube, tmp_path):
    request, _, ds = cube
    dataset = mc.build(request)
    path = store.write(dataset, tmp_path / "cube.zarr", mc.ZARR)
    z = xarray.open_zarr(path)
    assert z["time"].dtype.kind == "M"
    np.testing.assert_array_equal(z["vv"].values, ds["vv"].values)
    assert z["vv"].attrs["source_asset"] == "vv"
    assert (path / ".zgroup").is_file() and (path / "vv" / ".zarray").is_file(), "Zarr v2, under zarr 3 too"
    assert not list(path.rglob("zarr.json"))


def test_qgis_process_minicube(demo_cube, tmp_path):
    from qgis_desktop import qgis_process

    home, out = tmp_path / "home", tmp_path / "minicube.nc"
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    cat = demo_cube.catalog
    run = qgis_process(
        home, "--json", "run", "cubescope:minicube", "--",
        f"SOURCES={cat}|demo-s1-rtc|vv,vh|mean;{cat}|demo-dem|elevation=data|static",
        "POINT=732640,5043840 [EPSG:32634]", "SIZE=32", "RESOLUTION=20", "START=2023-03-01", "END=2023-04-30",
        "CADENCE=P24D", "FORMAT=0", f"OUTPUT={out}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert json.loads(run.stdout)["results"]["OUTPUT"] == str(out)
    ds = xarray.open_dataset(out)
    assert ds["vv"].shape == (3, 32, 32) and ds["elevation"].dims == ("y", "x")
    assert ds["x"].values[0] == 732330.0 and "32634" in ds["spatial_ref"].attrs["crs_wkt"]


def test_algorithm_in_process(qgis_app, demo_cube, tmp_path):
    """The same parameters through the algorithm in this process (where odc-stac runs)."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from cubescope.plugin.processing.minicube_algorithm import MinicubeAlgorithm

    algorithm = MinicubeAlgorithm().create()
    cat, out = demo_cube.catalog, tmp_path / "minicube.zarr"
    results, ok = algorithm.run({
        "SOURCES": f"{cat}|demo-s1-rtc|vv|max\n{cat}|demo-dem|elevation=data|static",
        "POINT": "732640,5043840 [EPSG:32634]", "SIZE": 32, "RESOLUTION": 20, "START": "2023-03-01",
        "END": "2023-04-30", "CADENCE": "P24D", "FORMAT": 1, "OUTPUT": str(out)},
        QgsProcessingContext(), QgsProcessingFeedback())
    assert ok and results["OUTPUT"] == str(out)
    ds = xarray.open_zarr(out)
    assert ds["vv"].attrs["aggregation"] == "max" and ds["vv"].shape == (3, 32, 32)


# 300 x 300 px at 8 m around the middle of tile A: 2 x 2 blocks of 256 px (two of them partial), every
# source resampled (8 m is no multiple of the data's 10 and 20 m), all pixels inside the data.
MIDDLE = (733600.0, 5042880.0)


def _blocks_request(demo_cube, output, sources: str = "", **fields) -> mc.MinicubeRequest:
    return mc.MinicubeRequest(sources=mc.parse_sources(sources or _sources(demo_cube)), start=START, end=END,
                              output=str(output), point=MIDDLE, point_crs="EPSG:32634", size=300, resolution=8.0,
                              cadence="P24D", **fields)


def test_the_dask_cluster_writes_the_same_minicube(demo_cube, tmp_path, dask_cluster_without_cubescope):
    """Every block computed by workers that cannot import Cubescope (its code travels with the tasks),
    the Zarr source read here, and the result identical to local threads: values, coordinates, attributes."""
    from distributed import Client, get_task_stream

    local = _blocks_request(demo_cube, tmp_path / "local.zarr", format=mc.ZARR)
    remote = replace(local, output=str(tmp_path / "remote.zarr"), dask_scheduler=dask_cluster_without_cubescope)
    logs: list[str] = []
    mc.run(local)
    with Client(dask_cluster_without_cubescope, set_as_default=False) as client, get_task_stream(client) as stream:
        mc.run(remote, log=logs.append)
    ran = [str(task["key"]) for task in stream.data]
    assert any(f"on Dask cluster {dask_cluster_without_cubescope}" in line for line in logs)
    assert any("cubescope-steps" in key for key in ran) and any("cubescope-first" in key for key in ran)
    assert not any(store.LOCAL in key for key in ran)  # the Zarr source never leaves this process
    a, b = xarray.open_zarr(tmp_path / "local.zarr"), xarray.open_zarr(tmp_path / "remote.zarr")
    assert set(a.variables) == set(b.variables) and len(a.data_vars) == 10
    assert a["vv"].shape == (3, 300, 300) and a["vv"].encoding["chunks"] == (3, 256, 256)
    for name in a.variables:
        assert a[name].dims == b[name].dims and a[name].attrs == b[name].attrs, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        if name in a.data_vars and name != "spatial_ref":
            assert np.isfinite(a[name].values).mean() > 0.95, name
    assert {k: v for k, v in a.attrs.items() if k != "history"} == {k: v for k, v in b.attrs.items() if k != "history"}


def test_an_unreachable_scheduler_fails_fast_and_names_it(demo_cube, tmp_path, unused_port):
    from cubescope.plugin.analysis.engine.executor import SchedulerUnreachable

    request = _blocks_request(demo_cube, tmp_path / "cube.nc", dask_scheduler=f"127.0.0.1:{unused_port}",
                              scheduler_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match=f"Dask scheduler at tcp://127.0.0.1:{unused_port}"):
        mc.run(request)
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("fmt", "name", "busy"), [
    (mc.ZARR, "cube.zarr", "cube.zarr.partial"),  # while blocks are written into the store
    (mc.NETCDF, "cube.nc", "cube.nc.partial"),  # while the streamed store is copied into the NetCDF file
])
def test_cancelling_during_the_write_leaves_nothing(demo_cube, tmp_path, fmt, name, busy):
    (tmp_path / name).write_text("an older minicube, replaced only by a complete one")
    seen: list[float] = []
    caught: list[bool] = []

    def is_canceled() -> bool:
        if (tmp_path / busy).exists() and seen and seen[-1] > 5.0:  # at least one block written
            caught.append(True)
        return bool(caught)

    request = _blocks_request(demo_cube, tmp_path / name, f"{demo_cube.catalog}|demo-s1-rtc|vv,vh|mean",
                              format=fmt)
    with pytest.raises(InterruptedError):
        mc.run(request, progress=seen.append, is_canceled=is_canceled)
    assert caught and seen[-1] < 100.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert (tmp_path / name).read_text().startswith("an older minicube")


def test_algorithm_computes_on_the_scheduler_it_is_given(qgis_app, demo_cube, tmp_path, dask_cluster_without_cubescope):
    """DASK_SCHEDULER reaches the request: the run says it computes on that cluster, or locally with "local"."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from cubescope.plugin.processing.minicube_algorithm import MinicubeAlgorithm

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS name)
            self.lines.append(info)

    outputs = {}
    for scheduler, expected in ((dask_cluster_without_cubescope, f"Dask cluster {dask_cluster_without_cubescope}"),
                                ("local", "local thread(s)")):
        feedback, out = Feedback(), tmp_path / f"{len(outputs)}.zarr"
        results, ok = MinicubeAlgorithm().create().run({
            "SOURCES": f"{demo_cube.catalog}|demo-s1-rtc|vv|max", "POINT": "732640,5043840 [EPSG:32634]",
            "SIZE": 32, "RESOLUTION": 20, "START": "2023-03-01", "END": "2023-04-30", "CADENCE": "P24D",
            "FORMAT": 1, "DASK_SCHEDULER": scheduler, "OUTPUT": str(out)}, QgsProcessingContext(), feedback)
        assert ok and any(line.startswith("Computing") and line.endswith(expected) for line in feedback.lines)
        outputs[scheduler] = xarray.open_zarr(results["OUTPUT"])["vv"].values
    first, second = outputs.values()
    assert first.shape == (3, 32, 32) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_cut_cogs_are_left_out_reported_and_counted_or_stop_the_run_when_asked(demo_cube, tmp_path):
    """Every red COG of a copy of the catalog ends where its second row of tiles starts: the minicube is
    written from what can be read, the log names each file left out with its cause and the store's
    attributes count them; asked to stop at the first bad input, the run stops and writes nothing."""
    from cut_catalog import catalog_with_cut_red, open_files_under

    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    sources = f"{catalog}|demo-s2-l2a|red,nir|median"
    said: list[str] = []
    path = mc.run(_blocks_request(demo_cube, tmp_path / "cut.zarr", sources, format=mc.ZARR), log=said.append)
    attrs = xarray.open_zarr(path).attrs
    left_out = attrs["cubescope_skipped"].splitlines()
    assert int(attrs["cubescope_skipped_inputs"]) == len(left_out) > 0
    for line in left_out:
        assert line.startswith(f"{tmp_path}/stac/demo-s2-l2a/") and "/red.tif: truncated or corrupt" in line, line
        assert f"Warning:   {line}" in said
    nir = xarray.open_zarr(path)["nir"].values
    assert np.isfinite(nir).mean() > 0.95  # the other band of the same items is whole

    stopping = _blocks_request(demo_cube, tmp_path / "stopped.nc", sources, fail_on_bad_input=True)
    with pytest.raises(OSError, match=r"Stopped at the first input that cannot be read .*red\.tif: truncated"):
        mc.run(stopping)
    assert not any(p.name.startswith("stopped") for p in tmp_path.iterdir())
    assert open_files_under(tmp_path / "stac") == []
