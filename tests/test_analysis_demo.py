"""The engine on the demo cube against numpy references read straight from the COGs.

A small extent of tile 34TGR on its native grid (so every output pixel is one input pixel), the
references read each item's COGs with GDAL and compute each method from its definition. The NDVI
difference map is compared with the truth's clear-cut raster; the real MODIS cube's per-pixel NDVI
standard deviation with numpy.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import execute, plan, run
from cubescope.plugin.analysis.ops import composite
from cubescope.plugin.analysis.ops.statistics import STATISTICS

#: Rows 0-99, columns 0-119 of tile 34TGR (10 m, EPSG:32634), away from the other tile.
X0, Y1 = 732320.0, 5044160.0
EXTENT = (X0, Y1 - 1000.0, X0 + 1200.0, Y1)
ROWS, COLS = 100, 120
CLEAR = (4, 5, 6, 7, 11)
PERIOD = Period(datetime(2023, 3, 1), datetime(2023, 12, 31))


def _request(demo_cube, tmp_path: Path, **kwargs) -> AnalysisRequest:
    defaults = dict(source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite",
                    bands=("red", "NDVI"), periods=(PERIOD,), output=str(tmp_path / "out.tif"), extent=EXTENT,
                    extent_crs="EPSG:32634")
    defaults.update(kwargs)
    return AnalysisRequest(**defaults)


def _read(path: Path) -> tuple[np.ndarray, tuple, list[str]]:
    dataset = gdal.Open(str(path))
    descriptions = [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)]
    return dataset.ReadAsArray().reshape(dataset.RasterCount, dataset.RasterYSize, -1), \
        dataset.GetGeoTransform(), descriptions


class Reference:
    """The 34TGR items of a period, read with GDAL into numpy stacks."""

    def __init__(self, demo_cube, period: Period) -> None:
        folder = Path(demo_cube.catalog).parent / "demo-s2-l2a"
        items = [{**json.loads(p.read_text()), "folder": p.parent} for p in sorted(folder.glob("*T34TGR/*.json"))]
        start, end = period.start.strftime("%Y-%m-%dT%H:%M:%SZ"), period.end.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.items = sorted((i for i in items if start <= i["properties"]["datetime"] <= end),
                            key=lambda i: i["properties"]["datetime"])
        self.when = [datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00")) for i in self.items]
        self.raw = {band: np.stack([self._band(i, band, 1) for i in self.items]) for band in ("red", "nir")}
        scl = np.stack([self._band(i, "scl", 2) for i in self.items])
        self.clear = np.isin(scl, CLEAR)

    def _band(self, item: dict, band: str, factor: int) -> np.ndarray:
        data = gdal.Open(str(item["folder"] / item["assets"][band]["href"])).ReadAsArray(
            0, 0, COLS // factor, ROWS // factor)
        return np.repeat(np.repeat(data, factor, axis=0), factor, axis=1)  # 20 m SCL onto 10 m pixels

    def physical(self, band: str) -> np.ndarray:
        raw = self.raw[band]
        rb = self.items[0]["assets"][band]["raster:bands"][0]
        return np.where(raw != rb["nodata"], raw.astype(np.float64) * rb["scale"] + rb["offset"], np.nan)

    def ndvi(self) -> np.ndarray:
        red, nir = self.physical("red"), self.physical("nir")
        with np.errstate(invalid="ignore", divide="ignore"):
            return (nir - red) / (nir + red)

    def years(self) -> np.ndarray:
        def start(year: int) -> datetime:
            return datetime(year, 1, 1, tzinfo=timezone.utc)

        return np.array([w.year + (w - start(w.year)).total_seconds() / (start(w.year + 1) - start(w.year))
                         .total_seconds() for w in self.when])


@pytest.fixture(scope="module")
def reference(demo_cube):
    return Reference(demo_cube, PERIOD)


def _nan(function, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(data, axis=0)


def _composite_reference(method: str, ref: Reference) -> tuple[list[np.ndarray], np.ndarray | None]:
    red, ndvi = ref.physical("red"), ref.ndvi()
    present = ~np.isnan(red)
    valid = ref.clear & present
    layers = [red, ndvi]
    if method in ("median", "mean", "min", "max"):
        function = {"median": np.nanmedian, "mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}[method]
        return [_nan(function, np.where(ref.clear & ~np.isnan(layer), layer, np.nan)) for layer in layers], None
    t = red.shape[0]
    doy = np.array([w.timetuple().tm_yday for w in ref.when], dtype=np.float64)
    outs = [np.full((ROWS, COLS), np.nan) for _ in layers]
    provenance = np.full((ROWS, COLS), np.nan)
    if method == "best-pixel":
        counts = [(valid[i]).sum() for i in range(t)]
        order = sorted(range(t), key=lambda i: (-counts[i], i))
    for y in range(ROWS):
        for x in range(COLS):
            if method == "best-pixel":
                for n, layer in enumerate(layers):
                    ok = ~np.isnan(layer[:, y, x])
                    hit = next((i for i in order if ref.clear[i, y, x] and ok[i]), None)
                    if hit is None:
                        hit = next((i for i in order if ok[i]), None)
                    if hit is not None:
                        outs[n][y, x] = layer[hit, y, x]
                        if n == 0:
                            provenance[y, x] = doy[hit]
            else:
                candidates = [i for i in range(t) if ref.clear[i, y, x] and np.isfinite(ndvi[i, y, x])]
                if candidates:
                    hit = max(candidates, key=lambda i: (ndvi[i, y, x], -i))
                    for n, layer in enumerate(layers):
                        outs[n][y, x] = layer[hit, y, x]
                    provenance[y, x] = doy[hit]
    return outs, provenance


@pytest.mark.parametrize("method", composite.METHODS)
def test_composites_match_numpy_on_the_demo_cube(demo_cube, tmp_path, reference, method):
    path = run(_request(demo_cube, tmp_path, method=method, extra_bands=True))
    data, transform, names = _read(path)
    assert transform == (X0, 10.0, 0.0, Y1, 0.0, -10.0)
    assert data.shape[1:] == (ROWS, COLS)
    expected, provenance = _composite_reference(method, reference)
    for layer, name, want in zip(data, names, expected):
        if method in ("median", "mean"):
            np.testing.assert_allclose(layer, want.astype(np.float32), rtol=1e-6, equal_nan=True, err_msg=name)
        else:
            assert np.array_equal(layer, want.astype(np.float32), equal_nan=True), name
    present = ~np.isnan(reference.physical("red"))
    assert names[2:4] == ["CLEAROB", "TOTALOB"]
    assert np.array_equal(data[2], (reference.clear & present).sum(axis=0))
    assert np.array_equal(data[3], present.sum(axis=0))
    if provenance is not None:
        assert names[4] == "PROVENANCE"
        assert np.array_equal(data[4], provenance, equal_nan=True)
        assert np.isfinite(data[4]).mean() > 0.9


@pytest.mark.parametrize("statistic", STATISTICS)
def test_time_statistics_of_ndvi_match_numpy(demo_cube, tmp_path, reference, statistic):
    path = run(_request(demo_cube, tmp_path, operation="statistics", statistic=statistic, bands=("NDVI",)))
    data, _, names = _read(path)
    assert names == [f"NDVI {statistic}"]
    ndvi = reference.ndvi()
    valid = reference.clear & np.isfinite(ndvi)
    masked = np.where(valid, ndvi, np.nan)
    if statistic == "slope":
        years = reference.years()
        expected = np.full((ROWS, COLS), np.nan)
        for y in range(ROWS):
            for x in range(COLS):
                keep = valid[:, y, x]
                if keep.sum() >= 2:
                    expected[y, x] = np.polyfit(years[keep], ndvi[keep, y, x], 1)[0]
    elif statistic == "count":
        expected = valid.sum(axis=0).astype(np.float64)
    else:
        expected = _nan({"mean": np.nanmean, "std": np.nanstd, "min": np.nanmin, "max": np.nanmax,
                         "median": np.nanmedian}[statistic], masked)
    if statistic in ("min", "max", "count"):
        assert np.array_equal(data[0], expected.astype(np.float32), equal_nan=True)
    else:
        np.testing.assert_allclose(data[0], expected.astype(np.float32), rtol=2e-5, atol=1e-6, equal_nan=True)
    assert np.isfinite(data[0]).mean() > 0.9


def test_the_clear_cut_appears_in_the_ndvi_difference_exactly_where_the_truth_puts_it(demo_cube, tmp_path):
    """Summer 2023 (before the 2023-10-12 clear-cut) against summer 2024, on tile 34TGR's own grid."""
    tile = (X0, Y1 - 2560.0, X0 + 2560.0, Y1)
    before = Period(datetime(2023, 5, 1), datetime(2023, 9, 30))
    after = Period(datetime(2024, 5, 1), datetime(2024, 7, 31))
    path = run(_request(demo_cube, tmp_path, operation="difference", bands=("NDVI",), periods=(before, after),
                        extent=tile))
    data, transform, names = _read(path)
    change = gdal.Open(str(Path(demo_cube.root) / "truth" / "34TGR_change.tif"))
    assert transform == change.GetGeoTransform()
    assert names == ["NDVI median difference"]
    truth = change.ReadAsArray() == 1
    assert truth.sum() > 1000
    strongly_negative = data[0] < -0.3
    assert np.array_equal(strongly_negative, truth)
    assert not np.isnan(data[0]).any()


MODIS_NODATA = -3000


def _modis_items(folder: Path) -> list[dict]:
    items = []
    from osgeo import osr

    for path in sorted(folder.glob("*.jp2")):
        dataset = gdal.Open(str(path))
        x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
        width, height = dataset.RasterXSize, dataset.RasterYSize
        srs = osr.SpatialReference(wkt=dataset.GetProjection())
        wgs84 = osr.SpatialReference()
        wgs84.ImportFromEPSG(4326)
        wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_lonlat = osr.CoordinateTransformation(srs, wgs84)
        corners = [to_lonlat.TransformPoint(x, y)[:2] for x, y in
                   ((x0, y0), (x0 + dx * width, y0), (x0 + dx * width, y0 + dy * height), (x0, y0 + dy * height))]
        lons, lats = [c[0] for c in corners], [c[1] for c in corners]
        when = path.stem.rsplit("_", 1)[1]
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": path.stem, "collection": "bdc-modis-ndvi",
            "geometry": {"type": "Polygon", "coordinates": [[*[list(c) for c in corners], list(corners[0])]]},
            "bbox": [min(lons), min(lats), max(lons), max(lats)],
            "properties": {"datetime": f"{when}T00:00:00Z", "proj:wkt2": srs.ExportToWkt(["FORMAT=WKT2_2018"]),
                           "proj:shape": [height, width], "proj:transform": [dx, 0.0, x0, 0.0, dy, y0]},
            "assets": {"NDVI": {"href": str(path), "type": "image/jp2", "roles": ["data"],
                                "raster:bands": [{"nodata": MODIS_NODATA, "data_type": "int16", "scale": 0.0001}]}},
            "links": [],
        })
    return items


def test_real_modis_ndvi_std_matches_numpy(shared_data, tmp_path):
    folder = shared_data / "real" / "bdc-modis-ndvi"
    items = _modis_items(folder)
    assert len(items) == 12
    request = AnalysisRequest(source="memory", collection="bdc-modis-ndvi", operation="statistics",
                              bands=("NDVI",), statistic="std", quality_band="none",
                              periods=(Period(datetime(2013, 9, 1), datetime(2014, 9, 1)),),
                              output=str(tmp_path / "std.tif"))
    path = execute(plan(request, [items]))
    data, transform, _ = _read(path)
    raw = np.stack([gdal.Open(i["assets"]["NDVI"]["href"]).ReadAsArray() for i in items]).astype(np.float64)
    ndvi = np.where(raw != MODIS_NODATA, raw * 1e-4, np.nan)
    expected = _nan(np.nanstd, ndvi)
    first = gdal.Open(items[0]["assets"]["NDVI"]["href"])
    assert transform == pytest.approx(first.GetGeoTransform())
    assert data.shape[1:] == raw.shape[1:]
    np.testing.assert_allclose(data[0], expected.astype(np.float32), rtol=1e-5, atol=1e-7, equal_nan=True)
    assert np.isfinite(data[0]).all() and data[0].max() > 0.05
