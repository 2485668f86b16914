"""Regular cubes: timelines, values equal to the engine's composites, Zarr read by xarray and GDAL,
COG + STAC browsed by Cubescope, and interrupted builds that resume to the same result."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.grid import transform_point
from cubescope.plugin.analysis.engine.pipeline import Canceled, run
from cubescope.plugin.products.cubes.builder import (
    COG_STAC,
    PROGRESS_FILE,
    ZARR,
    CubeError,
    CubeRequest,
    build_cube,
    collection_id,
)
from cubescope.plugin.products.cubes.timeline import Step, parse_step, regular_periods

SMALL = (732320.0, 5041600.0, 732960.0, 5042240.0)
"""64 x 64 px of tile 34TGR in EPSG:32634."""
SPRING = Period(datetime(2023, 3, 1), datetime(2023, 6, 30, 23, 59, 59))
"""Four months of acquisitions every 5 to 20 days."""
BANDS = ("red", "nir", "NDVI")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --- timelines ------------------------------------------------------------------------------------

def test_parse_step_reads_iso_durations_and_refuses_others():
    assert parse_step("P16D") == Step(days=16)
    assert parse_step("p8d") == Step(days=8)
    assert parse_step("P2W") == Step(days=14)
    assert parse_step("P1M") == Step(months=1)
    assert parse_step("P1Y") == Step(months=12)
    for bad in ("16D", "P0D", "P1.5M", "P1M2D", ""):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_step(bad)


def test_continuous_16_day_periods_follow_each_other_from_the_start():
    periods = regular_periods(datetime(2023, 12, 20), datetime(2024, 2, 15), "P16D")
    assert [(p.start, p.end) for p in periods] == [
        (_utc(2023, 12, 20), _utc(2024, 1, 4, 23, 59, 59)),
        (_utc(2024, 1, 5), _utc(2024, 1, 20, 23, 59, 59)),
        (_utc(2024, 1, 21), _utc(2024, 2, 5, 23, 59, 59)),
        (_utc(2024, 2, 6), _utc(2024, 2, 15)),  # cut at the end date
    ]


def test_cyclic_16_day_periods_restart_on_january_first():
    periods = regular_periods(datetime(2023, 1, 1), datetime(2024, 1, 31, 23, 59, 59), "P16D", cyclic=True)
    starts = [p.start for p in periods]
    assert len([s for s in starts if s.year == 2023]) == 23  # as the Brazil Data Cube's 16-day cubes
    assert starts[:3] == [_utc(2023, 1, 1), _utc(2023, 1, 17), _utc(2023, 2, 2)]
    assert (periods[22].start, periods[22].end) == (_utc(2023, 12, 19), _utc(2023, 12, 31, 23, 59, 59))
    assert starts[23:] == [_utc(2024, 1, 1), _utc(2024, 1, 17)]
    assert periods[-1].end == _utc(2024, 1, 31, 23, 59, 59)
    # A start inside a period keeps the yearly grid (the first period is cut, not shifted).
    later = regular_periods(datetime(2023, 1, 10), datetime(2023, 2, 20), "P16D", cyclic=True)
    assert [(p.start, p.end) for p in later] == [
        (_utc(2023, 1, 10), _utc(2023, 1, 16, 23, 59, 59)), (_utc(2023, 1, 17), _utc(2023, 2, 1, 23, 59, 59)),
        (_utc(2023, 2, 2), _utc(2023, 2, 17, 23, 59, 59)), (_utc(2023, 2, 18), _utc(2023, 2, 20))]


def test_monthly_periods_are_calendar_months():
    periods = regular_periods(datetime(2024, 1, 1), datetime(2024, 4, 30, 23, 59, 59), "P1M")
    assert [(p.start, p.end) for p in periods] == [
        (_utc(2024, 1, 1), _utc(2024, 1, 31, 23, 59, 59)), (_utc(2024, 2, 1), _utc(2024, 2, 29, 23, 59, 59)),
        (_utc(2024, 3, 1), _utc(2024, 3, 31, 23, 59, 59)), (_utc(2024, 4, 1), _utc(2024, 4, 30, 23, 59, 59))]
    assert regular_periods(datetime(2024, 1, 1), datetime(2024, 12, 31), "P3M", cyclic=True)[1].start == \
        _utc(2024, 4, 1)


# --- builds ---------------------------------------------------------------------------------------

def _cube(demo_cube, out: Path, fmt: str = ZARR, step: str = "P1M", **fields) -> CubeRequest:
    defaults = dict(source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite", bands=BANDS,
                    periods=(SPRING,), output=str(out), extent=SMALL, extent_crs="EPSG:32634", extra_bands=True,
                    threads=2)
    defaults.update(fields)
    return CubeRequest(AnalysisRequest(**defaults), step=step, format=fmt)


@pytest.fixture(scope="module")
def built(demo_cube, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cubes")
    return {fmt: build_cube(_cube(demo_cube, folder / name, fmt))
            for fmt, name in ((ZARR, "cube.zarr"), (COG_STAC, "cube-stac"))}


def _zarr_array(path: Path, name: str) -> np.ndarray:
    import zarr

    return zarr.open_group(str(path), mode="r")[name][:]


def _stac_items(catalog: Path) -> list[dict]:
    from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
    from cubescope.plugin.stac.http import local_fetcher
    from cubescope.plugin.stac.sources import Source, SourceKind

    client = CatalogClient(Source("cube", SourceKind.STATIC, str(catalog)), local_fetcher())
    collections = [c.id for page in client.collections() for c in page]
    query = SearchQuery(collections=tuple(collections), bbox=None, start=None, end=None, max_cloud=None)
    return [item for page in client.search(query) for item in page.items]


def _cog(catalog: Path, date: str, band: str) -> Path:
    return next(catalog.parent.glob(f"*/*_{date}/{band}.tif"))


def test_a_period_of_the_cube_equals_the_engines_composite_exactly(demo_cube, built, tmp_path):
    may = Period(datetime(2023, 5, 1), datetime(2023, 5, 31, 23, 59, 59))
    request = _cube(demo_cube, tmp_path / "x").request
    path = run(replace(request, periods=(may,), output=str(tmp_path / "may.tif")))
    engine = gdal.Open(str(path))
    expected = engine.ReadAsArray()
    names = ("red", "nir", "NDVI", "CLEAROB", "TOTALOB")
    assert expected.shape == (5, 64, 64) and np.isfinite(expected[0]).any()
    for number, name in enumerate(names):
        assert np.array_equal(_zarr_array(built[ZARR], name)[2], expected[number], equal_nan=True), name
        cog = gdal.Open(str(_cog(built[COG_STAC], "2023-05-01", name)))
        assert np.array_equal(cog.ReadAsArray(), expected[number], equal_nan=True), name
        assert cog.GetGeoTransform() == engine.GetGeoTransform()


def test_a_period_without_observations_is_nan_with_zero_counts(demo_cube, tmp_path):
    autumn = Period(datetime(2023, 10, 1), datetime(2023, 11, 17, 23, 59, 59))
    out = build_cube(_cube(demo_cube, tmp_path / "gap.zarr", step="P16D", bands=("red",), periods=(autumn,)))
    red, total = _zarr_array(out, "red"), _zarr_array(out, "TOTALOB")
    assert red.shape == (3, 64, 64)
    assert np.isnan(red[1]).all() and (total[1] == 0).all()  # October 17 to November 1: no acquisition
    assert np.isfinite(red[0]).any() and (total[0] > 0).all() and (total[2] > 0).all()


def test_the_zarr_cube_opens_in_xarray_with_its_timeline_and_crs(built):
    import xarray
    from pyproj import CRS

    dataset = xarray.open_zarr(built[ZARR])
    starts = [np.datetime64(f"2023-0{m}-01") for m in (3, 4, 5, 6)]
    assert list(dataset.time.values) == starts
    assert {"red", "nir", "NDVI", "CLEAROB", "TOTALOB"} <= set(dataset.data_vars)
    assert dataset.red.dims == ("time", "y", "x") and dataset.red.shape == (4, 64, 64)
    assert CRS.from_wkt(dataset.spatial_ref.attrs["crs_wkt"]).to_epsg() == 32634
    assert dataset.red.attrs["grid_mapping"] == "spatial_ref"
    assert float(dataset.x[0]) == SMALL[0] + 5 and float(dataset.y[0]) == SMALL[3] - 5
    assert dataset.attrs["chunking"] == {"time": 4, "y": 64, "x": 64}
    assert dataset.red.encoding["chunks"] == (4, 64, 64)
    assert (Path(built[ZARR]) / ".zmetadata").is_file()


def test_the_zarr_cube_is_zarr_v2_whichever_zarr_python_wrote_it(built):
    """zarr 3 writes v3 unless told; the cube stays v2, what GDAL before 3.11 and zarr 2 read."""
    store = Path(built[ZARR])
    assert json.loads((store / ".zgroup").read_text()) == {"zarr_format": 2}
    assert not list(store.rglob("zarr.json"))
    for name in ("time", "x", "spatial_ref", "red", "CLEAROB"):
        assert json.loads((store / name / ".zarray").read_text())["zarr_format"] == 2, name
    consolidated = json.loads((store / ".zmetadata").read_text())["metadata"]
    assert consolidated["red/.zarray"]["fill_value"] == "NaN" and consolidated["red/.zarray"]["dtype"] == "<f4"


def test_the_zarr_cube_opens_in_gdal_like_the_cogs(built):
    cog = gdal.Open(str(_cog(built[COG_STAC], "2023-03-01", "red")))
    classic = gdal.Open(f'ZARR:"{built[ZARR]}":/red:0')
    assert classic.GetGeoTransform() == cog.GetGeoTransform()
    assert classic.GetSpatialRef().IsSame(cog.GetSpatialRef(), ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"])
    assert classic.GetSpatialRef().GetAuthorityCode(None) == cog.GetSpatialRef().GetAuthorityCode(None) == "32634"
    assert np.array_equal(classic.ReadAsArray(), cog.ReadAsArray(), equal_nan=True)
    multidim = gdal.OpenEx(str(built[ZARR]), gdal.OF_MULTIDIM_RASTER)
    array = multidim.GetRootGroup().OpenMDArray("NDVI")
    assert [d.GetName() for d in array.GetDimensions()] == ["time", "y", "x"]
    srs = array.GetSpatialRef()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    assert srs.GetAuthorityCode(None) == "32634"


def test_the_cog_stac_cube_is_browsable_and_its_series_equals_the_zarr_one(built):
    from cubescope.plugin.analysis.timeseries import read_series
    from cubescope.plugin.cube.cog_reader import CogStackReader
    from cubescope.plugin.cube.zarr_reader import ZarrReader

    items = _stac_items(built[COG_STAC])
    assert sorted(i["properties"]["datetime"] for i in items) == [f"2023-0{m}-01T00:00:00Z" for m in (3, 4, 5, 6)]
    assert items[0]["properties"]["proj:epsg"] == 32634 and items[0]["properties"]["proj:shape"] == [64, 64]
    collection = json.loads(next(built[COG_STAC].parent.glob("*/collection.json")).read_text())
    assert set(collection["item_assets"]) == {"red", "nir", "NDVI", "CLEAROB", "TOTALOB"}
    lon, lat = transform_point(732645.0, 5041925.0, "EPSG:32634", "EPSG:4326")
    with CogStackReader(items) as cogs, ZarrReader(str(built[ZARR])) as cube:
        from_cogs = read_series(cogs, lon, lat, ["red", "NDVI", "CLEAROB"])
        from_zarr = read_series(cube, lon, lat, ["red", "NDVI", "CLEAROB"])
    assert from_cogs.times() == from_zarr.times() and len(from_zarr.times()) == 4
    for name in ("red", "NDVI", "CLEAROB"):
        assert np.array_equal(from_cogs.values(name), from_zarr.values(name), equal_nan=True), name
    assert np.isfinite(from_zarr.values("red")[2])


@pytest.mark.parametrize("fmt", [ZARR, COG_STAC])
def test_an_interrupted_build_resumes_to_the_same_cube(demo_cube, built, tmp_path, fmt):
    import xarray

    out = tmp_path / ("cube.zarr" if fmt == ZARR else "cube")
    messages: list[str] = []
    with pytest.raises(Canceled, match="after 2 of 4 periods"):
        build_cube(_cube(demo_cube, out, fmt), log=messages.append,
                   is_canceled=lambda: any(m.startswith("Period 2 of 4") for m in messages))
    assert json.loads((out / PROGRESS_FILE).read_text())["done"] == [0, 1]
    if fmt == ZARR:
        partial = xarray.open_zarr(out)  # readable while interrupted: the rest is NaN
        assert np.isfinite(partial.red[0].values).any() and np.isnan(partial.red[2].values).all()
    else:
        assert len(_stac_items(out / "catalog.json")) == 2
    messages.clear()
    build_cube(_cube(demo_cube, out, fmt), log=messages.append)
    assert any("Resuming: 2 of 4" in m for m in messages)
    assert not any(m.startswith("Period 1 of 4") for m in messages)
    for name in ("red", "NDVI", "TOTALOB"):
        if fmt == ZARR:
            assert np.array_equal(_zarr_array(out, name), _zarr_array(built[ZARR], name), equal_nan=True)
        else:
            for date in ("2023-03-01", "2023-06-01"):
                resumed = gdal.Open(str(_cog(out / "catalog.json", date, name))).ReadAsArray()
                whole = gdal.Open(str(_cog(built[COG_STAC], date, name))).ReadAsArray()
                assert np.array_equal(resumed, whole, equal_nan=True)
    assert json.loads((out / PROGRESS_FILE).read_text())["complete"] is True


def test_a_cancel_between_the_band_files_of_a_period_leaves_none_of_them(demo_cube, tmp_path):
    """A period's bands are copied into COGs one after the other: cancelled once the first is in
    place, the period keeps none of its files, and it is not recorded as done."""
    out = tmp_path / "cube"
    folder = out / "demo-s2-l2a-median-p1m" / "demo-s2-l2a-median-p1m_2023-03-01"
    with pytest.raises(Canceled, match="after 0 of 4 periods"):
        build_cube(_cube(demo_cube, out, COG_STAC), is_canceled=lambda: (folder / "red.tif").exists())
    assert list(folder.iterdir()) == []
    assert json.loads((out / PROGRESS_FILE).read_text())["done"] == []


def test_an_output_holding_another_cube_is_refused(demo_cube, built):
    with pytest.raises(CubeError, match=r"another cube .*method"):
        build_cube(_cube(demo_cube, built[ZARR], method="mean"))


def test_best_pixel_cube_equals_the_engine(demo_cube, tmp_path):
    cube = _cube(demo_cube, tmp_path / "bp.zarr", method="best-pixel", bands=("red",),
                 periods=(Period(datetime(2023, 5, 1), datetime(2023, 6, 30, 23, 59, 59)),))
    build_cube(cube)
    assert collection_id(cube) == "demo-s2-l2a-best-pixel-p1m"
    june = Period(datetime(2023, 6, 1), datetime(2023, 6, 30, 23, 59, 59))
    path = run(replace(cube.request, periods=(june,), output=str(tmp_path / "june.tif")))
    expected = gdal.Open(str(path)).ReadAsArray()
    for number, name in enumerate(("red", "CLEAROB", "TOTALOB", "PROVENANCE")):
        assert np.array_equal(_zarr_array(tmp_path / "bp.zarr", name)[1], expected[number], equal_nan=True), name
