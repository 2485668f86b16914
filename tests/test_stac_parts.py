"""The small pure parts of the STAC layer: CQL2 text, sources and presets, item helpers, query checks."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from cubescope.plugin.stac.catalog_client import SearchQuery
from cubescope.plugin.stac.cql2 import Cql2Error, evaluate, parse_cql2_text
from cubescope.plugin.stac.filters import item_matcher
from cubescope.plugin.stac.http import HttpError, error_from_response
from cubescope.plugin.stac.items import (
    ItemError,
    item_cloud_cover,
    item_datetime,
    item_epsg,
    sort_by_date,
    validate_item,
)
from cubescope.plugin.stac.s3_options import S3Options
from cubescope.plugin.stac.sources import PRESETS, Source, SourceKind, guess_kind

UTC = timezone.utc
CLOUD = {"property": "eo:cloud_cover"}


# ---- CQL2 text -> JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("eo:cloud_cover < 10", {"op": "<", "args": [CLOUD, 10]}),
    ('"eo:cloud_cover" <= 10.5', {"op": "<=", "args": [CLOUD, 10.5]}),
    ("platform = 'sentinel-2a' AND NOT eo:cloud_cover >= -1",
     {"op": "and", "args": [{"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]},
                            {"op": "not", "args": [{"op": ">=", "args": [CLOUD, -1]}]}]}),
    ("a = 1 OR b = 2 AND c = 3",  # AND binds tighter than OR
     {"op": "or", "args": [{"op": "=", "args": [{"property": "a"}, 1]},
                           {"op": "and", "args": [{"op": "=", "args": [{"property": "b"}, 2]},
                                                  {"op": "=", "args": [{"property": "c"}, 3]}]}]}),
    ("(a = 1 OR b = 2) AND c <> 'it''s'",
     {"op": "and", "args": [{"op": "or", "args": [{"op": "=", "args": [{"property": "a"}, 1]},
                                                  {"op": "=", "args": [{"property": "b"}, 2]}]},
                            {"op": "<>", "args": [{"property": "c"}, "it's"]}]}),
    ("eo:cloud_cover BETWEEN 1 AND 5", {"op": "between", "args": [CLOUD, 1, 5]}),
    ("id NOT LIKE 'S2B%'", {"op": "not", "args": [{"op": "like", "args": [{"property": "id"}, "S2B%"]}]}),
    ("platform in ('a', 'b')", {"op": "in", "args": [{"property": "platform"}, ["a", "b"]]}),
    ("x IS NOT NULL", {"op": "not", "args": [{"op": "isNull", "args": [{"property": "x"}]}]}),
    ("datetime > TIMESTAMP('2024-01-01T00:00:00Z')",
     {"op": ">", "args": [{"property": "datetime"}, {"timestamp": "2024-01-01T00:00:00Z"}]}),
    ("CASEI(platform) = casei('Sentinel-2A')",
     {"op": "=", "args": [{"op": "casei", "args": [{"property": "platform"}]},
                          {"op": "casei", "args": ["Sentinel-2A"]}]}),
])
def test_cql2_text_becomes_cql2_json(text, expected) -> None:
    assert parse_cql2_text(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "the expression is empty"),
    ("eo:cloud_cover <", "ends too early"),
    ("eo:cloud_cover < 10 AND", "ends too early"),
    ("eo:cloud_cover ~ 10", "unexpected character '~' at position 16"),
    ("a = 1 b = 2", "expected AND, OR or the end at position 7"),
    ("S_INTERSECTS(geometry, POINT(1 2))", "S_INTERSECTS() is not supported"),
    ("T_AFTER(datetime, TIMESTAMP('2024-01-01T00:00:00Z'))", "T_AFTER() is not supported"),
    ("datetime > TIMESTAMP('yesterday')", "is not a valid timestamp"),
    ("a = (1 + 2)", "arithmetic"),
    ("a + 1 = 2", "arithmetic is not supported at position 3"),
    ("(a = 1", "expected ')'"),
])
def test_cql2_errors_say_what_and_where(text, message) -> None:
    with pytest.raises(Cql2Error) as caught:
        parse_cql2_text(text)
    assert message in str(caught.value)


def test_cql2_evaluation_uses_three_valued_logic() -> None:
    item = {"id": "S2B_x", "collection": "c",
            "properties": {"eo:cloud_cover": 12.5, "platform": "Sentinel-2B", "datetime": "2024-03-01T10:00:00Z"}}

    def check(text: str) -> bool | None:
        return evaluate(parse_cql2_text(text), item)

    assert check("eo:cloud_cover BETWEEN 10 AND 20 AND id LIKE 'S2_\\_%'") is True
    assert check("casei(platform) = 'sentinel-2b' AND collection IN ('a', 'c')") is True
    assert check("datetime >= TIMESTAMP('2024-03-01T10:00:00Z') AND datetime < DATE('2024-03-02')") is True
    assert check("missing = 1") is None  # unknown, not false ...
    assert check("NOT missing = 1") is None  # ... so NOT does not turn it true
    assert check("missing = 1 OR eo:cloud_cover > 10") is True
    assert check("missing = 1 AND eo:cloud_cover > 50") is False
    assert check("missing IS NULL AND properties.platform IS NOT NULL") is True
    assert check("platform = 5") is None  # text vs number: not comparable, like NULL


def test_client_side_bbox_handles_the_antimeridian() -> None:
    def at(lon: float) -> dict:
        ring = [[lon - 0.1, 0], [lon + 0.1, 0], [lon + 0.1, 0.2], [lon - 0.1, 0.2], [lon - 0.1, 0]]
        return {"id": str(lon), "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"datetime": "2024-01-01T00:00:00Z"}}

    matches = item_matcher(bbox=(179.0, -1.0, -179.0, 1.0))
    assert [matches(at(lon)) for lon in (179.5, -179.5, 0.0, 178.0)] == [True, True, False, False]


# ---- errors -------------------------------------------------------------------------------------


def test_http_errors_word_themselves_and_survive_pickling() -> None:
    assert str(HttpError("GET", "https://h/x", None, "cancelled")) == "GET https://h/x: cancelled"
    error = error_from_response("POST", "https://h/search", 429, "", b'{"message": "slow down"}')
    assert str(error) == "POST https://h/search -> HTTP 429 Too Many Requests: slow down"
    assert "wait" in error.hint
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.status, copy.server_message, copy.reason) == (
        str(error), 429, "slow down", "Too Many Requests")


# ---- sources ------------------------------------------------------------------------------------


def test_sources_round_trip_through_plain_dicts() -> None:
    source = Source("MinIO cubes", SourceKind.ZARR, "s3://cubes/s2.zarr", authcfg="abc1234",
                    s3=S3Options(endpoint="minio.local:9000", region="eu-1", requester_pays=True, https=False,
                                 virtual_hosting=False))
    data = source.to_dict()
    assert json.loads(json.dumps(data)) == data, "settings store plain JSON types"
    assert data["kind"] == "zarr" and data["s3"]["endpoint"] == "minio.local:9000"
    assert Source.from_dict(data) == source
    plain = Source("x", SourceKind.STAC_API, "https://x")
    assert "s3" not in plain.to_dict() and Source.from_dict(plain.to_dict()) == plain


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "x", "kind": "wms", "url": "u"},
     "kind must be one of 'stac-api', 'static', 'zarr', 'wtss', 'wlts', got 'wms'"),
    ({"name": "", "kind": "static", "url": "u"}, "name must be a non-empty text"),
    ({"name": "x", "kind": "static"}, "source field 'url' is missing"),
    ({"name": "x", "kind": "static", "url": "u", "signing": "aws"}, "signing must be one of"),
    ({"name": "x", "kind": "static", "url": "u", "authcfg": "user:password"}, "authcfg must be a QGIS"),
    ({"name": "x", "kind": "zarr", "url": "u", "s3": {"endpoint": "http://minio:9000"}},
     "s3.endpoint must be host or host:port without http://"),
    ({"name": "x", "kind": "zarr", "url": "u", "s3": {"https": "yes"}}, "s3.https must be true or false"),
    ({"name": "x", "kind": "zarr", "url": "u", "password": "p"}, "unknown source field(s): password"),
])
def test_bad_source_settings_name_the_field(data, message) -> None:
    with pytest.raises(ValueError) as caught:
        Source.from_dict(data)
    assert message in str(caught.value)


def test_presets_are_the_catalogs_users_expect() -> None:
    by_name = {p.name: p for p in PRESETS}
    assert by_name["Element 84 Earth Search"].url == "https://earth-search.aws.element84.com/v1"
    assert by_name["Microsoft Planetary Computer"].signing == "planetary-computer"
    assert by_name["Brazil Data Cube"].signing == "bdc"
    assert by_name["Digital Earth Africa"].url == "https://explorer.digitalearth.africa/stac"
    assert all(p.preset and p.kind == SourceKind.STAC_API for p in PRESETS)


def test_guess_kind(tmp_path, demo_cube) -> None:
    assert guess_kind("https://earth-search.aws.element84.com/v1") == SourceKind.STAC_API
    assert guess_kind("https://example.org/cube.zarr/") == SourceKind.ZARR
    assert guess_kind("s3://bucket/cubes/s2.zarr") == SourceKind.ZARR
    assert guess_kind("https://example.org/stac/catalog.json") == SourceKind.STATIC
    assert guess_kind(str(demo_cube.catalog)) == SourceKind.STATIC
    assert guess_kind(str(demo_cube.catalog.parent)) == SourceKind.STATIC
    assert guess_kind(str(demo_cube.zarr)) == SourceKind.ZARR
    assert guess_kind(f"file://{tmp_path}") == SourceKind.STATIC


# ---- items --------------------------------------------------------------------------------------


def test_item_helpers_read_dates_clouds_and_projections() -> None:
    item = {"id": "a", "properties": {"datetime": "2024-05-01T10:00:00.123456789Z", "eo:cloud_cover": "7.5",
                                      "proj:code": "EPSG:32633"}}
    assert item_datetime(item) == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert item_cloud_cover(item) == 7.5 and item_epsg(item) == 32633
    ranged = {"id": "b", "properties": {"datetime": None, "start_datetime": "2024-05-01T00:00:00+02:00"}}
    assert item_datetime(ranged) == datetime(2024, 4, 30, 22, tzinfo=UTC)
    assert item_epsg({"properties": {"proj:epsg": 4326}}) == 4326 and item_epsg({"properties": {}}) is None
    with pytest.raises(ItemError, match="item c has no datetime"):
        item_datetime({"id": "c", "properties": {}})
    undated = {"id": "c", "properties": {}}
    assert sort_by_date([undated, ranged, item]) == [ranged, item, undated]


def test_validate_item_speaks_users_words() -> None:
    assert validate_item({"id": "x", "properties": {}}) == [
        "item x has no geometry", "item x has no datetime (nor start_datetime)",
        "item x has no projection metadata (proj:epsg / proj:code)", "item x has no assets"]


# ---- search query -------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"bbox": (10, 50, 11)}, "bbox must be (west, south, east, north)"),
    ({"bbox": (10, 50, 11, 40)}, "south <= north"),
    ({"start": datetime(2024, 2, 1), "end": datetime(2024, 1, 1)}, "is after end"),
    ({"max_cloud": 120}, "max_cloud must be between 0 and 100"),
    ({"page_size": 0}, "page_size must be a positive integer"),
    ({"collections": "demo-s2-l2a"}, "collections must be a sequence"),
])
def test_search_query_rejects_bad_values(changes, message) -> None:
    values = {"collections": ("c",), "bbox": None, "start": None, "end": None, "max_cloud": None, **changes}
    with pytest.raises(ValueError) as caught:
        SearchQuery(**values)
    assert message in str(caught.value)


def test_search_query_normalises() -> None:
    query = SearchQuery(["c"], [1, 2, 3, 4], datetime(2024, 1, 1), None, 100.0, cql2="  ")
    assert query.collections == ("c",) and query.bbox == (1.0, 2.0, 3.0, 4.0)
    assert query.start.utcoffset() == timedelta(0) and query.cql2 is None
    assert query.cloud_limit is None  # 100 % excludes nothing, and keeps items that have no cloud cover
