"""WTSS and WLTS as sources: the pure clients against real local servers serving the demo cube.

The servers (``servers/bdc_services.py``) implement the published specifications and read the demo's
own COGs with GDAL; the clients are the plugin's (`cube/wtss_reader.py`, `cube/wlts_client.py`), through
the same `requests` fetcher Processing uses.
"""

from __future__ import annotations

import math

import pytest

from cubescope.plugin.analysis.ops.quality import rule_for, rule_for_bands
from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.reader import PixelReader
from cubescope.plugin.cube.wlts_client import WltsClient, WltsError, class_colour
from cubescope.plugin.cube.wtss_reader import WtssClient, WtssError, WtssReader
from cubescope.plugin.demo.other_products import LANDCOVER_YEAR, WORLDCOVER_CLASSES
from cubescope.plugin.stac.bands import BandNotFound
from cubescope.plugin.stac.http import HttpError
from cubescope.plugin.stac.sources import Source, SourceKind

COVERAGE = "demo-s2-l2a"
#: Demo points inside one tile only: the STAC series has one item per date there, as a WTSS pixel does.
ONE_TILE_POINTS = ("forest_a", "clear_cut_a", "forest_b", "grassland_b")


@pytest.fixture(scope="module")
def wtss_reader(wtss_server, fetch):
    with WtssReader(wtss_server.url, COVERAGE, fetch) as reader:
        yield reader


def test_the_coverage_is_listed_and_described_as_the_spec_says(wtss_server, fetch, catalog_items):
    client = WtssClient(wtss_server.url, fetch)
    assert client.list_coverages() == [COVERAGE]
    coverage = client.describe_coverage(COVERAGE)
    assert [a.name for a in coverage.attributes] == ["blue", "green", "red", "nir", "swir16", "scl"]
    red = coverage.attribute("red")
    assert (red.common_name, red.scale, red.offset, red.nodata) == ("red", 0.0001, -0.1, 0)
    dates = sorted({item["properties"]["datetime"] for item in catalog_items})
    assert [d.isoformat().replace("+00:00", "Z") for d in coverage.timeline] == dates
    assert coverage.contains(23.99, 45.50) and not coverage.contains(10.0, 50.0)


def test_the_reader_is_a_pixel_reader_with_the_coverage_quality_band(wtss_reader):
    assert isinstance(wtss_reader, PixelReader)
    assert wtss_reader.common_names()["nir"] == "nir"
    rule = rule_for_bands(wtss_reader.band_attrs())
    assert rule is not None and rule.band == "scl" and rule.clear_values == (4, 5, 6, 7, 11)


@pytest.mark.parametrize("name", ONE_TILE_POINTS)
def test_a_wtss_series_equals_the_stac_series_of_the_same_pixel(name, wtss_reader, wtss_server, cog_reader,
                                                                 catalog_items, truth):
    point = truth["points"][name]
    bands = ["red", "nir", "swir16", "ndvi"]
    stac = read_series(cog_reader, point["lon"], point["lat"], bands, rule_for(catalog_items[0]))
    wtss = read_series(wtss_reader, point["lon"], point["lat"], bands, rule_for_bands(wtss_reader.band_attrs()))
    assert len(stac.observations) == 37 and not wtss.warnings
    assert [o.datetime for o in wtss.observations] == [o.datetime for o in stac.observations]
    for mine, theirs in zip(wtss.observations, stac.observations):
        for band in bands:
            a, b = mine.values[band], theirs.values[band]
            assert (math.isnan(a) and math.isnan(b)) or a == b, (name, mine.datetime, band, a, b)
        assert (mine.quality, mine.clear, mine.valid) == (theirs.quality, theirs.clear, theirs.valid)
    assert any(not o.valid for o in wtss.observations), "cloudy dates are masked by the coverage's scl"
    method, path, _query, body = wtss_server.requests[-1]
    assert (method, path) == ("POST", f"/{COVERAGE}/timeseries")
    assert body["geom"] == {"type": "Point", "coordinates": [point["lon"], point["lat"]]}
    assert body["applyAttributeScale"] is False and set(body["attributes"]) == {"red", "nir", "swir16", "scl"}


def test_the_timeline_is_limited_by_start_and_end(wtss_server, fetch, truth):
    from datetime import datetime, timezone

    start, end = datetime(2023, 6, 1, tzinfo=timezone.utc), datetime(2023, 8, 31, tzinfo=timezone.utc)
    reader = WtssReader(wtss_server.url, COVERAGE, fetch, start=start, end=end)
    point = truth["points"]["forest_a"]
    series = read_series(reader, point["lon"], point["lat"], ["red"])
    assert series.observations and all(start <= o.datetime <= end for o in series.observations)
    assert len(series.observations) == len(reader.timeline()) < 37
    body = wtss_server.requests[-1][3]
    assert body["start_datetime"] >= "2023-06-01" and body["end_datetime"] <= "2023-08-31T23"


def test_a_point_outside_the_coverage_is_an_empty_series_that_says_so(wtss_reader, wtss_server):
    asked = len(wtss_server.requests)
    series = read_series(wtss_reader, 10.0, 50.0, ["red"])
    assert series.outside and series.observations == []
    assert "outside" in series.warnings[0] and "lon 23.97" in series.warnings[0]
    assert len(wtss_server.requests) == asked, "the extent answers it: no request"


def test_errors_name_the_url_and_the_status(wtss_server, wtss_reader, fetch):
    with pytest.raises(WtssError) as raised:
        WtssReader(wtss_server.url, "no-such-coverage", fetch)
    assert f"{wtss_server.url}/no-such-coverage" in str(raised.value) and "404" in str(raised.value)
    assert "Coverage no-such-coverage not found" in str(raised.value)
    with pytest.raises(BandNotFound) as missing:
        wtss_reader.check_bands(["B04"])
    assert "red" in str(missing.value) and "B04" in str(missing.value)


def test_a_service_that_is_not_wtss_says_what_it_answered(wlts_server, fetch):
    with pytest.raises(WtssError) as raised:
        WtssClient(wlts_server.url, fetch).list_coverages()
    assert wlts_server.url in str(raised.value) and "wlts_version" in str(raised.value)


def test_a_query_in_the_service_url_goes_with_every_request(wtss_server, wlts_server, fetch, truth):
    point = truth["points"]["forest_b"]
    asked = len(wtss_server.requests)
    reader = WtssReader(f"{wtss_server.url}/?access_token=t0ken", COVERAGE, fetch)
    assert read_series(reader, point["lon"], point["lat"], ["nir"]).observations
    sent = wtss_server.requests[asked:]
    assert [(method, path) for method, path, _, _ in sent] == [("GET", f"/{COVERAGE}"),
                                                               ("POST", f"/{COVERAGE}/timeseries")]
    assert all(query == {"access_token": "t0ken"} for _, _, query, _ in sent)
    WltsClient(f"{wlts_server.url}?access_token=t0ken", fetch).trajectory(point["lon"], point["lat"],
                                                                         ["demo-landcover"])
    assert wlts_server.requests[-1][2]["access_token"] == "t0ken"


# ---- WLTS ----

def _worldcover_title(truth: dict, code: int) -> str:
    worldcover = next(c["worldcover"] for c in truth["classes"] if c["code"] == code)
    return next(c["description"] for c in WORLDCOVER_CLASSES if c["value"] == worldcover)


def test_the_land_cover_collection_is_listed_and_described(wlts_server, fetch):
    client = WltsClient(wlts_server.url, fetch)
    assert client.version() and client.list_collections() == ["demo-landcover"]
    described = client.describe_collection("demo-landcover")
    assert (described.resolution_unit, described.resolution_value) == ("Y", 1.0)
    assert described.period == (f"{LANDCOVER_YEAR}-01-01", f"{LANDCOVER_YEAR}-12-31")
    assert described.classification_system == "ESA WorldCover"


@pytest.mark.parametrize("name", ["forest_overlap", "clear_cut_a", "forest_b", "grassland_overlap", "grassland_b"])
def test_a_wlts_trajectory_equals_the_demo_land_cover_truth(name, wlts_server, fetch, truth):
    point = truth["points"][name]
    trajectory = WltsClient(wlts_server.url, fetch).trajectory(point["lon"], point["lat"], ["demo-landcover"])
    expected = _worldcover_title(truth, point["class"])
    assert [(s.date.year, s.class_name, s.collection) for s in trajectory.steps] == [
        (LANDCOVER_YEAR, expected, "demo-landcover")]
    step = trajectory.steps[0]
    assert (step.date.month, step.date.day) == (1, 1) and step.end.year == LANDCOVER_YEAR + 1
    assert trajectory.classes() == [expected]
    assert trajectory.rows("P1") == [{"point_id": "P1", "datetime": f"{LANDCOVER_YEAR}-01-01T00:00:00Z",
                                      "collection": "demo-landcover", "class": expected}]
    _method, _path, query, _body = next(r for r in reversed(wlts_server.requests) if r[1] == "/trajectory")
    assert query["collections"] == "demo-landcover"
    assert float(query["longitude"]) == point["lon"] and float(query["latitude"]) == point["lat"]


def test_class_colours_are_stable_and_say_what_the_class_is():
    assert class_colour("Tree cover") == class_colour("tree cover") == "#006400"
    assert class_colour("Permanent water bodies") == "#0064c8"
    assert class_colour("Floresta") == class_colour("Floresta")  # no keyword: a fixed palette colour
    assert class_colour("Vegetação Natural") != class_colour("Permanent water bodies")


def test_an_unknown_collection_names_the_url_and_the_status(wlts_server, fetch):
    with pytest.raises(HttpError) as raised:
        WltsClient(wlts_server.url, fetch).trajectory(24.0, 45.5, ["prodes"])
    assert f"{wlts_server.url}/trajectory" in str(raised.value) and "404" in str(raised.value)
    assert "Collection prodes not found" in str(raised.value)


def test_a_wtss_url_in_a_wlts_connection_names_the_url(wtss_server, fetch):
    with pytest.raises((HttpError, WltsError)) as raised:
        WltsClient(wtss_server.url, fetch).list_collections()
    assert f"{wtss_server.url}/list_collections" in str(raised.value) and "404" in str(raised.value)


# ---- connections ----

@pytest.mark.parametrize("kind", [SourceKind.WTSS, SourceKind.WLTS])
def test_wtss_and_wlts_connections_persist_like_the_others(kind):
    source = Source("BDC", kind, "https://data.inpe.br/bdc/wtss/v4/", authcfg="abc123")
    again = Source.from_dict(source.to_dict())
    assert again == source and again.kind is kind
    assert source.to_dict()["kind"] == kind.value
