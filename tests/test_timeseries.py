"""Pixel time series from the demo cube's COGs and Zarr, checked against its ground truth.

The truth says, for every tile, date and 20 m pixel, whether the sky was clear, cloudy, shadowed,
cirrus or no data, and the exact DN of a clear (or shadowed) pixel of each class. A series is right
when its clear dates carry exactly those values and its masked dates are exactly the truth's.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from demo_series import (
    ALL_BANDS,
    CLEAR,
    NODATA,
    TILES,
    ZARR_NAME,
    check_against_truth,
    raster,
    reflectance,
    scl_of,
    search_demo,
    sky,
    tile_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from landsat_names import as_landsat
from osgeo import osr

from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL, rule_for, rule_for_bands
from cubescope.plugin.analysis.timeseries import (
    Observation,
    choose,
    dedupe,
    plan_read,
    read_series,
    series_to_rows,
    write_csv,
)
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.reader import PixelReader
from cubescope.plugin.cube.zarr_reader import ZarrReader
from cubescope.plugin.demo.truth import class_on, date_index, expected_dn
from cubescope.plugin.stac.sources import Source, SourceKind

# ---- values and masks -----------------------------------------------------------------------------

@pytest.mark.parametrize(("point", "tile"), [("forest_a", "34TGR"), ("water_a", "34TGR"),
                                             ("grassland_b", "35TKL"), ("built_up_b", "35TKL")])
def test_single_tile_points_equal_the_truth_on_every_date(cog_reader, truth, demo_cube, point, tile):
    p = truth["points"][point]
    rule = rule_for(cog_reader.items()[0])
    assert rule is not None and rule.clear_values == SENTINEL2_SCL.clear_values
    series = read_series(cog_reader, p["lon"], p["lat"], ALL_BANDS, rule)
    assert series.warnings == []
    assert len(series.observations) == len(truth["s2"]["datetimes"]) == series.dates == 37
    assert [o.datetime.isoformat().replace("+00:00", "Z") for o in series.observations] == truth["s2"]["datetimes"]
    states = []
    for observation in series.observations:
        assert tile_of(observation.item_id) == tile
        check_against_truth(observation, truth, demo_cube.root, point, tile)
        pixel = p["pixels"][tile]
        states.append(sky(demo_cube.root, tile, date_index(truth, observation.datetime.isoformat()),
                          pixel["row_20m"], pixel["col_20m"]))
    assert CLEAR in states and len(set(states)) > 1, "the point should see clear and masked dates"


@pytest.mark.parametrize("point", ["forest_overlap", "water_overlap", "grassland_overlap", "winter_crop_overlap"])
def test_overlap_point_gives_one_observation_per_date_the_clear_tile_first(cog_reader, truth, demo_cube, point):
    p = truth["points"][point]
    assert set(p["pixels"]) == set(TILES)
    series = read_series(cog_reader, p["lon"], p["lat"], ALL_BANDS, rule_for(cog_reader.items()[0]))
    assert len(series.observations) == 37, "two tiles on one day must give one observation"
    for observation in series.observations:
        index = date_index(truth, observation.datetime.isoformat())
        states = {t: sky(demo_cube.root, t, index, p["pixels"][t]["row_20m"], p["pixels"][t]["col_20m"])
                  for t in TILES}
        # the expected choice: clear first, then a tile with data, then the first tile in sort order
        expected = min(TILES, key=lambda t: (states[t] != CLEAR, states[t] == NODATA, TILES.index(t)))
        assert tile_of(observation.item_id) == expected, (observation.datetime, states)
        check_against_truth(observation, truth, demo_cube.root, point, expected)
    assert sum(o.valid for o in series.observations) >= 20


def test_the_overlap_picks_the_clear_tile_when_only_one_is_clear(cog_reader, truth, demo_cube):
    """Somewhere in the overlap some date is clear in one tile only: that tile's item is the observation."""
    found = []
    for point, p in truth["points"].items():
        if set(p["pixels"]) != set(TILES):
            continue
        for index, when in enumerate(truth["s2"]["datetimes"]):
            states = [sky(demo_cube.root, t, index, p["pixels"][t]["row_20m"], p["pixels"][t]["col_20m"])
                      for t in TILES]
            if states == [NODATA, CLEAR] or (states[0] != CLEAR and states[1] == CLEAR):
                found.append((point, when))
    assert found, "the demo cube has a date where only the second tile is clear at an overlap point"
    point, when = found[0]
    p = truth["points"][point]
    series = read_series(cog_reader, p["lon"], p["lat"], ["red", "scl"], rule_for(cog_reader.items()[0]))
    chosen = next(o for o in series.observations if o.datetime.isoformat()[:10] == when[:10])
    assert tile_of(chosen.item_id) == "35TKL" and chosen.valid


def _boundary_pixels(root: Path, tile: str, res: int, values: np.ndarray, index: int, per_corner: int = 2):
    """Class corners clear on date `index`: pixels whose right and lower neighbours hold another class,
    and pixels whose left and upper ones do, so that a shift by one pixel either way reads another class."""
    sky_state = raster(str(root / "truth" / f"{tile}_sky.tif"))[index]
    step = 2 if res == 10 else 1
    found = []
    for d in (1, -1):
        corner = []
        for row in range(1, values.shape[0] - 1):
            for col in range(1, values.shape[1] - 1):
                v = values[row, col]
                clear = all(sky_state[(row + dr) // step, (col + dc) // step] == CLEAR
                            for dr in (-1, 0, 1) for dc in (-1, 0, 1))
                if v != values[row, col + d] and v != values[row + d, col] and clear:
                    corner.append((row, col))
        found.extend(corner[:: max(1, len(corner) // per_corner)][:per_corner])
    return found


def _pixel_centre_lonlat(truth: dict, tile: str, res: int, row: int, col: int) -> tuple[float, float]:
    gt = truth["tiles"][tile][f"geotransform_{res}m"]
    x, y = gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(truth["tiles"][tile]["epsg"])
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat = osr.CoordinateTransformation(source, target).TransformPoint(x, y)[:2]
    return lon, lat


@pytest.mark.parametrize("tile", TILES)
def test_each_band_is_read_at_its_own_pixel_in_its_own_utm_zone(catalog_items, truth, demo_cube, tile):
    """Pixels on class boundaries: one pixel off in x or y (or the wrong zone) reads another class."""
    when = "2023-03-05"
    index = date_index(truth, when)
    classes = raster(str(demo_cube.root / "truth" / truth["tiles"][tile]["rasters"]["classes"]))[0]
    classes_20m = raster(str(demo_cube.root / "truth" / truth["tiles"][tile]["rasters"]["classes_20m"]))[0]
    scl_codes = np.vectorize(lambda c: scl_of(truth, int(c)))(classes_20m)
    tile_items = [i for i in catalog_items if tile_of(i["id"]) == tile]
    with CogStackReader(tile_items) as tile_reader:
        pixels = _boundary_pixels(demo_cube.root, tile, 10, classes, index)
        assert len(pixels) == 4
        for row, col in pixels:
            lon, lat = _pixel_centre_lonlat(truth, tile, 10, row, col)
            series = read_series(tile_reader, lon, lat, ["red", "nir"])
            observation = next(o for o in series.observations if o.datetime.isoformat()[:10] == when)
            for band in ("red", "nir"):
                assert observation.values[band] == reflectance(expected_dn(truth, int(classes[row, col]), band, when))
        pixels = _boundary_pixels(demo_cube.root, tile, 20, scl_codes, index)
        assert len(pixels) == 4
        for row, col in pixels:
            lon, lat = _pixel_centre_lonlat(truth, tile, 20, row, col)
            series = read_series(tile_reader, lon, lat, ["scl"])
            observation = next(o for o in series.observations if o.datetime.isoformat()[:10] == when)
            assert observation.values["scl"] == scl_codes[row, col]


def test_the_clear_cut_shows_as_an_ndvi_drop_at_its_date_and_not_in_the_forest(cog_reader, truth):
    change = truth["change"]["date"]
    assert change == "2023-10-12"
    drops = {}
    for point in ("clear_cut_a", "forest_a"):
        p = truth["points"][point]
        series = read_series(cog_reader, p["lon"], p["lat"], ["ndvi"], rule_for(cog_reader.items()[0]))
        valid = [o for o in series.observations if o.valid]
        for o in valid:
            when = o.datetime.isoformat()[:10]
            expected = truth["clear"]["ndvi"][_class_name(truth, class_on(truth, point, when))][date_index(truth, when)]
            assert o.values["ndvi"] == pytest.approx(expected, abs=2e-3), (point, when)
        before = [o.values["ndvi"] for o in valid if o.datetime.isoformat()[:10] < change]
        after = [o.values["ndvi"] for o in valid if o.datetime.isoformat()[:10] >= change]
        drops[point] = before[-1] - after[0]
    assert drops["clear_cut_a"] > 0.4
    assert abs(drops["forest_a"]) < 0.1


def test_landsat_naming_its_nir_nir08_plots_the_same_ndvi(cog_reader, catalog_items, truth):
    """Landsat Collection 2 has no "nir" band, only "nir08": NDVI reads it, and equals the demo's."""
    p = truth["points"]["clear_cut_a"]
    rule = rule_for(cog_reader.items()[0])
    with CogStackReader(as_landsat(catalog_items)) as landsat:
        assert plan_read(landsat, ["ndvi", "nir"], rule).indices == {"ndvi": ("nir08", "red")}
        series = read_series(landsat, p["lon"], p["lat"], ["ndvi", "nir"], rule)
    expected = read_series(cog_reader, p["lon"], p["lat"], ["ndvi", "nir"], rule)
    assert len(series.observations) == 37 and sum(o.valid for o in series.observations) > 10
    assert [(o.datetime, o.valid, o.values) for o in series.observations] == [
        (o.datetime, o.valid, o.values) for o in expected.observations]


def _class_name(truth: dict, code: int) -> str:
    return next(c["name"] for c in truth["classes"] if c["code"] == code)


def test_values_stream_as_dates_complete(cog_reader, truth):
    p = truth["points"]["forest_overlap"]
    calls: list[tuple[Observation, int, int]] = []
    progress: list[tuple[int, int]] = []
    series = read_series(cog_reader, p["lon"], p["lat"], ["red", "ndvi"], rule_for(cog_reader.items()[0]),
                         on_observation=lambda o, k, n: calls.append((o, k, n)),
                         on_progress=lambda k, n: progress.append((k, n)))
    assert [k for _, k, _ in calls] == list(range(1, 38)) and {n for _, _, n in calls} == {37}
    assert progress == [(k, 37) for k in range(1, 38)]
    assert sorted((o for o, _, _ in calls), key=lambda o: o.datetime) == series.observations


def test_a_canceled_read_stops_before_reading(catalog_items, truth):
    p = truth["points"]["forest_a"]
    with CogStackReader(catalog_items) as fresh:
        series = read_series(fresh, p["lon"], p["lat"], ["red"], is_canceled=lambda: True)
    assert series.canceled and series.observations == []


def test_rows_and_csv(cog_reader, truth, tmp_path):
    p = truth["points"]["forest_a"]
    series = read_series(cog_reader, p["lon"], p["lat"], ["red", "ndvi"], rule_for(cog_reader.items()[0]))
    rows = series_to_rows(series, "f1")
    assert list(rows[0]) == ["point_id", "datetime", "item_id", "red", "ndvi", "valid"]
    assert rows[0]["datetime"] == "2023-03-05T09:20:29Z" and rows[0]["point_id"] == "f1"
    assert [r["valid"] for r in rows] == [int(o.valid) for o in series.observations]
    path = write_csv(tmp_path / "ts.csv", {"f1": series})
    lines = path.read_text().splitlines()
    assert lines[0] == "point_id,datetime,item_id,red,ndvi,valid" and len(lines) == 38


# ---- the same series over HTTP, from a STAC API, from Zarr ----------------------------------------

def _rows(series) -> list[dict]:
    return series_to_rows(series, "p")


def test_the_series_over_http_and_from_the_stac_api_equals_the_local_one(cog_reader, truth, demo_cube, nginx_server,
                                                                         stac_api_light):
    p = truth["points"]["forest_overlap"]
    rule = rule_for(cog_reader.items()[0])
    local = _rows(read_series(cog_reader, p["lon"], p["lat"], [*ALL_BANDS, "ndvi"], rule))
    static = search_demo(Source("nginx", SourceKind.STATIC, f"{nginx_server.url}/stac/catalog.json"))
    assert all(i["assets"]["red"]["href"].startswith(nginx_server.url) for i in static)
    bbox = (p["lon"] - 0.001, p["lat"] - 0.001, p["lon"] + 0.001, p["lat"] + 0.001)
    api = search_demo(Source("api", SourceKind.STAC_API, stac_api_light.url), bbox=bbox)
    assert len(api) == 74 and all(i["assets"]["red"]["href"].startswith("http://") for i in api)
    for found in (static, api):
        with CogStackReader(found) as remote:
            first = _rows(read_series(remote, p["lon"], p["lat"], [*ALL_BANDS, "ndvi"], rule))
            assert first == local
            assert remote.open_handles() > 0, "opened files are kept for the next click"
            q = truth["points"]["grassland_overlap"]
            second = _rows(read_series(remote, q["lon"], q["lat"], [*ALL_BANDS, "ndvi"], rule))
            assert second == _rows(read_series(cog_reader, q["lon"], q["lat"], [*ALL_BANDS, "ndvi"], rule))


def test_the_zarr_series_equals_xarray_and_the_cog_series_of_its_tile(catalog_items, truth, demo_cube, nginx_server):
    import xarray

    tile_items = [i for i in catalog_items if tile_of(i["id"]) == "34TGR"]
    dataset = xarray.open_zarr(demo_cube.root / ZARR_NAME)
    for url in (str(demo_cube.root / ZARR_NAME), f"{nginx_server.url}/{ZARR_NAME}"):
        with ZarrReader(url) as zarr, CogStackReader(tile_items) as cogs:
            rule = rule_for_bands(zarr.variable_attrs())
            assert rule is not None and rule.band == "scl"
            for point in ("forest_a", "clear_cut_a", "water_a", "forest_overlap"):
                p = truth["points"][point]
                series = read_series(zarr, p["lon"], p["lat"], ["red", "nir", "scl", "ndvi"], rule)
                x, y = zarr.cube_xy(p["lon"], p["lat"])
                column = dataset.sel(x=x, y=y, method="nearest")
                for band in ("red", "nir", "scl"):
                    np.testing.assert_array_equal(series.values(band), column[band].values)
                assert series.times() == [datetime.fromisoformat(t.replace("Z", "+00:00"))
                                          for t in truth["s2"]["datetimes"]]
                cog = read_series(cogs, p["lon"], p["lat"], ["red", "nir", "scl", "ndvi"], rule)
                for a, b in zip(series.observations, cog.observations):
                    assert a.datetime == b.datetime and a.valid == b.valid and a.quality == b.quality
                    np.testing.assert_array_equal([a.values[k] for k in ("red", "nir", "ndvi")],
                                                  [b.values[k] for k in ("red", "nir", "ndvi")])


# ---- real-world data ------------------------------------------------------------------------------

def _modis_items(folder: Path) -> list[dict]:
    """STAC-like items for the BDC MODIS NDVI files (one per date), as a user's file stack."""
    out = []
    for path in sorted(folder.glob("TERRA_MODIS_012010_NDVI_*.jp2")):
        when = path.stem.rsplit("_", 1)[1]
        out.append({"type": "Feature", "id": path.stem, "geometry": None,
                    "properties": {"datetime": f"{when}T00:00:00Z"},
                    "assets": {"NDVI": {"href": str(path), "type": "image/jp2", "roles": ["data"]}}})
    return out


def test_the_real_modis_cube_equals_a_plain_rasterio_read(shared_data):
    import csv

    from rasterio.warp import transform

    folder = shared_data / "real" / "bdc-modis-ndvi"
    items = _modis_items(folder)
    assert len(items) == 12
    with (folder / "samples_sinop_crop.csv").open() as handle:
        samples = list(csv.DictReader(handle))
    assert len(samples) == 18
    with CogStackReader(items) as modis:
        for sample in samples:
            lon, lat = float(sample["longitude"]), float(sample["latitude"])
            series = read_series(modis, lon, lat, ["NDVI"])
            assert series.warnings == [] and len(series.observations) == 12
            expected = []
            for item in items:
                with rasterio.open(item["assets"]["NDVI"]["href"]) as dataset:
                    xs, ys = transform("EPSG:4326", dataset.crs, [lon], [lat])
                    row, col = dataset.index(xs[0], ys[0])
                    raw = float(dataset.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])
                    expected.append(math.nan if dataset.nodata is not None and raw == dataset.nodata else raw)
            np.testing.assert_array_equal(series.values("NDVI"), expected)
            assert len(set(expected)) > 3, "a real NDVI series varies through the year"


def test_the_real_xcube_zarr_equals_xarray(shared_data):
    import xarray

    url = shared_data / "real" / "xcube-cube-5-100-200.zarr"
    dataset = xarray.open_zarr(url)
    with ZarrReader(str(url)) as zarr:
        assert zarr.bands() == ["c2rcc_flags", "conc_chl", "conc_tsm", "kd489", "quality_flags"]
        finite = 0
        for lon, lat in ((2.5, 51.3), (0.7, 52.1), (4.2, 50.4), (3.33, 51.77)):
            series = read_series(zarr, lon, lat, ["conc_chl", "kd489"])
            column = dataset.sel(lon=lon, lat=lat, method="nearest")
            for band in ("conc_chl", "kd489"):
                np.testing.assert_array_equal(series.values(band), column[band].values)
            finite += sum(math.isfinite(v) for v in series.values("conc_chl"))
        assert finite > 0
        assert [o.datetime for o in series.observations] == [
            datetime.fromisoformat(str(t)[:26]).replace(tzinfo=timezone.utc) for t in dataset.time.values]


# ---- deduplication, as a property -----------------------------------------------------------------

_candidate = st.tuples(st.integers(0, 4), st.sampled_from(["34TGR", "35TKL"]),
                       st.sampled_from([True, False, None]), st.booleans(), st.booleans())


def _observations(specs) -> list[Observation]:
    ordered = sorted(enumerate(specs), key=lambda e: (e[1][0], e[1][1], e[0]))
    out = []
    for order, (n, (day, tile, clear, has_data, failed)) in enumerate(ordered):
        when = datetime(2023, 5, 1 + day, 9, 20, tzinfo=timezone.utc)
        out.append(Observation(datetime=when, item_id=f"item-{n}", tile=tile,
                               values={"red": 0.1 if has_data else math.nan}, clear=clear,
                               group=when.date().isoformat(), order=order, failed=failed))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(_candidate, min_size=1, max_size=12), st.randoms())
def test_dedupe_keeps_one_observation_per_day_preferring_clear_then_data_then_order(specs, rng):
    observations = _observations(specs)
    shuffled = list(observations)
    rng.shuffle(shuffled)
    kept = dedupe(shuffled)
    days = sorted({o.group for o in observations})
    assert [o.group for o in kept] == days
    assert kept == dedupe(observations), "the result does not depend on the order observations arrive in"
    for chosen in kept:
        group = [o for o in observations if o.group == chosen.group]
        readable = [o for o in group if not o.failed]
        if readable:
            assert not chosen.failed
        if any(o.clear is True for o in readable):
            assert chosen.clear is True, "a clear observation beats the others"
        same_rank = [o for o in group if (o.failed, o.clear is not True, not o.has_data)
                     == (chosen.failed, chosen.clear is not True, not chosen.has_data)]
        assert chosen.order == min(o.order for o in same_rank), "ties go to the first tile and item in order"
        better = [o for o in group if (o.failed, o.clear is not True, not o.has_data)
                  < (chosen.failed, chosen.clear is not True, not chosen.has_data)]
        assert better == []
    assert choose(observations[:1]) is observations[0]


def test_a_reader_is_a_pixel_reader(cog_reader, demo_cube):
    assert isinstance(cog_reader, PixelReader)
    with ZarrReader(str(demo_cube.root / ZARR_NAME)) as zarr:
        assert isinstance(zarr, PixelReader)
