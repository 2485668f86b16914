"""The catalog client against the real servers and the demo's static catalog (local and over nginx).

The same searches run on rustac (core search only: cloud and CQL2 filtered here), pgstac (filter,
query, sortby on the server) and the static catalog (everything here); all must give the item ids
the catalog files on disk say, read independently in `stac_expected`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from stac_expected import child_collection_ids, disk_items, ids_where, in_box, when

from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery, sort_by_date
from cubescope.plugin.stac.cql2 import Cql2Error
from cubescope.plugin.stac.http import HttpError
from cubescope.plugin.stac.sources import Source, SourceKind

S2, S1 = "demo-s2-l2a", "demo-s1-rtc"
BACKENDS = ("light", "full", "static", "static-http")
# Around 24.0 E, where the two demo tiles (UTM 34 and 35) overlap: both tiles' items intersect it.
OVERLAP = (23.998, 45.498, 24.002, 45.502)
# Inside the western tile only.
WEST = (23.978, 45.495, 23.982, 45.499)
UTC = timezone.utc


@pytest.fixture(scope="module")
def s2_items(demo_cube) -> list[dict]:
    return disk_items(demo_cube.collections[S2])


@pytest.fixture(scope="module")
def s1_items(demo_cube) -> list[dict]:
    return disk_items(demo_cube.collections[S1])


def client_for(request: pytest.FixtureRequest, backend: str, fetch) -> CatalogClient:
    """A client on one backend; servers start only when a test asks for them."""
    if backend == "light":
        source = Source("rustac", SourceKind.STAC_API, request.getfixturevalue("stac_api_light").url)
    elif backend == "full":
        source = Source("pgstac", SourceKind.STAC_API, request.getfixturevalue("stac_api_full").url)
    elif backend == "static":
        source = Source("demo", SourceKind.STATIC, str(request.getfixturevalue("demo_cube").catalog))
    else:
        source = Source("demo over http", SourceKind.STATIC,
                        f"{request.getfixturevalue('nginx_server').url}/stac/catalog.json")
    return CatalogClient(source, fetch, timeout_s=20)


def search_ids(client: CatalogClient, query: SearchQuery) -> list[str]:
    ids = [item["id"] for page in client.search(query) for item in page.items]
    assert len(ids) == len(set(ids)), "an item came twice"
    return sorted(ids)


# ---- collections ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_collections_are_listed_on_every_backend(request, backend, fetch, demo_cube) -> None:
    client = client_for(request, backend, fetch)
    pages = list(client.collections())
    ids = sorted(c.id for page in pages for c in page)
    assert ids == sorted(child_collection_ids(demo_cube.catalog))
    s2 = next(c for page in pages for c in page if c.id == S2)
    assert s2.title == json.loads(demo_cube.collections[S2].read_text())["title"]
    assert {"red", "nir", "scl"} <= {band.asset_key for band in s2.bands}
    assert client.collection(S2)["id"] == S2


def test_pgstac_collections_come_in_pages_following_next_links(request, fetch, demo_cube) -> None:
    client = client_for(request, "full", fetch)
    pages = list(client.collections(page_size=1))
    assert [len(page) for page in pages] == [1] * len(child_collection_ids(demo_cube.catalog))
    assert {c.id for page in pages for c in page} == child_collection_ids(demo_cube.catalog)


def test_nested_static_catalog_is_walked_and_items_get_absolute_hrefs(tmp_path, fetch, demo_cube, s2_items) -> None:
    """root catalog -> a regional sub-catalog -> a collection whose item links point back into the demo."""
    collection = json.loads(demo_cube.collections[S2].read_text())
    item_dir = demo_cube.collections[S2].parent
    picked = sorted(s2_items, key=lambda i: i["id"])[:3]
    collection["links"] = [{"rel": "item", "href": str(item_dir / i["id"] / f"{i['id']}.json")} for i in picked]
    (tmp_path / "europe" / "s2").mkdir(parents=True)
    (tmp_path / "europe" / "s2" / "collection.json").write_text(json.dumps(collection))
    (tmp_path / "europe" / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "id": "europe", "description": "d",
         "links": [{"rel": "child", "href": "./s2/collection.json"}]}))
    (tmp_path / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "id": "root", "title": "Nested", "description": "d",
         "links": [{"rel": "child", "href": "europe/catalog.json"}]}))
    client = CatalogClient(Source("nested", SourceKind.STATIC, str(tmp_path)), fetch)  # a directory is enough
    assert client.test() == "Connected: Nested, static catalog"
    assert [c.id for page in client.collections() for c in page] == [S2]
    items = [i for page in client.search(SearchQuery((S2,), None, None, None, None)) for i in page.items]
    assert sorted(i["id"] for i in items) == [i["id"] for i in picked]
    red = items[0]["assets"]["red"]["href"]
    assert Path(red).is_absolute() and Path(red).is_file()
    assert Path(red) == (item_dir / items[0]["id"] / "red.tif").resolve()


def test_real_nested_static_catalog(shared_data, fetch) -> None:
    catalog = shared_data / "stac" / "static-catalog-cbers-partial" / "catalog.json"
    client = CatalogClient(Source("cbers", SourceKind.STATIC, f"file://{catalog}"), fetch)
    pages = list(client.collections())
    ids = sorted(c.id for page in pages for c in page)
    assert ids == sorted(child_collection_ids(catalog))
    assert len(ids) == 4
    mux = next(c for page in pages for c in page if c.id == "CBERS4MUX")
    assert mux.href == str(catalog.parent / "CBERS4MUX" / "collection.json")
    assert {b.common_name for b in mux.bands} >= {"blue", "green", "red", "nir"}


# ---- search --------------------------------------------------------------------------------------


def middle_dates(items: list[dict]) -> tuple[datetime, datetime]:
    """A range whose bounds fall between acquisitions, covering the middle half of the series."""
    times = sorted({when(i) for i in items})
    lo, hi = len(times) // 4, 3 * len(times) // 4
    return times[lo - 1] + (times[lo] - times[lo - 1]) / 2, times[hi] + (times[hi + 1] - times[hi]) / 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_by_bbox_and_dates_gives_the_same_items_everywhere(request, backend, fetch, s2_items) -> None:
    start, end = middle_dates(s2_items)
    expected = ids_where(s2_items, lambda i: in_box(WEST)(i) and start <= when(i) <= end)
    assert 5 < len(expected) < len(s2_items) / 2, "the west box should hold one tile's middle dates"
    client = client_for(request, backend, fetch)
    assert search_ids(client, SearchQuery((S2,), WEST, start, end, None, page_size=7)) == sorted(expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_date_range_bounds_are_inclusive(request, backend, fetch, s2_items) -> None:
    times = sorted({when(i) for i in s2_items})
    start, end = times[3], times[6]  # exactly on acquisitions
    expected = ids_where(s2_items, lambda i: start <= when(i) <= end)
    assert len(expected) == 2 * 4  # four dates, two tiles
    client = client_for(request, backend, fetch)
    assert search_ids(client, SearchQuery((S2,), OVERLAP, start, end, None)) == sorted(expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_cloud_gives_the_same_items_on_server_or_client(request, backend, fetch, s2_items) -> None:
    expected = ids_where(s2_items, lambda i: i["properties"]["eo:cloud_cover"] <= 20)
    assert 0 < len(expected) < len(s2_items)
    client = client_for(request, backend, fetch)
    query = SearchQuery((S2,), None, None, None, 20.0, page_size=10)
    plan = client.plan(query)
    # pgstac filters server-side (CQL2 JSON); rustac does not advertise filtering, so it happens here
    assert ("cloud cover" in plan.server_side) == (backend == "full")
    assert ("cloud cover" in plan.client_side) == (backend != "full")
    if backend == "full":
        assert plan.body["filter"] == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20.0]}
    elif backend == "light":
        assert "filter" not in plan.body and "query" not in plan.body and "sortby" not in plan.body
    assert search_ids(client, query) == sorted(expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cloud_filter_excludes_items_without_cloud_cover_unless_100(request, backend, fetch, s1_items) -> None:
    client = client_for(request, backend, fetch)
    assert search_ids(client, SearchQuery((S1,), None, None, None, 50.0)) == []
    assert search_ids(client, SearchQuery((S1,), None, None, None, 100.0)) == sorted(i["id"] for i in s1_items)


CQL2_CASES = {
    "between-and-equals": ("\"eo:cloud_cover\" BETWEEN 5 AND 40 AND platform = 'sentinel-2b'",
                           lambda p, i: 5 <= p["eo:cloud_cover"] <= 40 and p["platform"] == "sentinel-2b"),
    "like-and-timestamp": ("id LIKE '%T35TKL' AND datetime >= TIMESTAMP('2024-01-01T00:00:00Z')",
                           lambda p, i: i["id"].endswith("T35TKL") and when(i) >= datetime(2024, 1, 1, tzinfo=UTC)),
    "in-or-not": ("platform IN ('sentinel-2a') OR NOT eo:cloud_cover > 2",
                  lambda p, i: p["platform"] == "sentinel-2a" or not p["eo:cloud_cover"] > 2),
    "swath-edge": ("\"s2:nodata_pixel_percentage\" > 0", lambda p, i: p["s2:nodata_pixel_percentage"] > 0),
}


@pytest.mark.parametrize("case", sorted(CQL2_CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_cql2_text_gives_the_same_items_on_server_or_client(request, backend, case, fetch, s2_items) -> None:
    text, keep = CQL2_CASES[case]
    expected = ids_where(s2_items, lambda i: keep(i["properties"], i))
    assert 0 < len(expected) < len(s2_items), "the case should select some items, not all"
    client = client_for(request, backend, fetch)
    query = SearchQuery((S2,), None, None, None, None, cql2=text, page_size=20)
    assert ("CQL2" in client.plan(query).server_side) == (backend == "full")
    assert search_ids(client, query) == sorted(expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cql2_is_null_finds_the_radar_items(request, backend, fetch, s1_items) -> None:
    client = client_for(request, backend, fetch)
    query = SearchQuery((S1, S2), OVERLAP, None, None, None, cql2='"eo:cloud_cover" IS NULL')
    assert search_ids(client, query) == sorted(i["id"] for i in s1_items if in_box(OVERLAP)(i))


@pytest.mark.parametrize("backend", ("light", "static"))
def test_cql2_the_client_cannot_evaluate_fails_before_any_request(request, backend, fetch) -> None:
    client = client_for(request, backend, fetch)
    query = SearchQuery((S2,), None, None, None, None, cql2="S_INTERSECTS(geometry, POINT(24 45.5))")
    with pytest.raises(Cql2Error, match="S_INTERSECTS"):
        next(client.search(query))


@pytest.mark.parametrize("backend", ("light", "full"))
def test_paging_with_page_size_5(request, backend, fetch, s2_items) -> None:
    client = client_for(request, backend, fetch)
    pages = list(client.search(SearchQuery((S2,), OVERLAP, None, None, None, page_size=5)))
    sizes = [len(p.items) for p in pages]
    expected = ids_where(s2_items, in_box(OVERLAP))
    assert len(expected) == len(s2_items) > 10
    assert all(size <= 5 for size in sizes)
    assert len([s for s in sizes if s]) == math.ceil(len(expected) / 5)
    assert [p.received for p in pages] == [sum(sizes[: n + 1]) for n in range(len(sizes))]
    assert sorted(i["id"] for p in pages for i in p.items) == sorted(expected)
    assert all(p.skipped == [] and p.warnings == [] for p in pages)


def test_pgstac_sorts_by_date_and_every_result_sorts_locally(request, fetch, s2_items) -> None:
    full = client_for(request, "full", fetch)
    query = SearchQuery((S2,), None, None, None, None, page_size=6)
    assert full.plan(query).body["sortby"] == [{"field": "properties.datetime", "direction": "asc"},
                                               {"field": "id", "direction": "asc"}]
    times = [when(i) for page in full.search(query) for i in page.items]
    assert len(times) == len(s2_items)
    assert times == sorted(times) and times[0] < times[-1]
    light = client_for(request, "light", fetch)
    items = [i for page in light.search(query) for i in page.items]
    ordered = sort_by_date(items)
    assert [when(i) for i in ordered] == sorted(when(i) for i in s2_items)


@pytest.mark.parametrize("backend", ("light", "full", "static"))
def test_cancel_after_the_first_page_stops(request, backend, fetch) -> None:
    client = client_for(request, backend, fetch)
    seen: list[int] = []
    pages = []
    for page in client.search(SearchQuery((S2,), None, None, None, None, page_size=5), lambda: bool(seen)):
        pages.append(page)
        seen.append(len(page.items))
    assert len(pages) == 1 and pages[0].received == 5


@pytest.mark.parametrize("backend", ("light", "full", "static"))
def test_max_items_stops_the_search(request, backend, fetch) -> None:
    client = client_for(request, backend, fetch)
    pages = list(client.search(SearchQuery((S2,), None, None, None, 50.0, page_size=4, max_items=9)))
    assert sum(len(p.items) for p in pages) == 9 and pages[-1].received == 9


@pytest.mark.parametrize("backend", ("light", "full"))
def test_connection_test_and_capabilities(request, backend, fetch) -> None:
    client = client_for(request, backend, fetch)
    caps = client.capabilities()
    assert client.test().startswith("Connected: ")
    assert client.test().endswith(f"{len(caps.conformance)} conformance classes")
    assert caps.item_search
    if backend == "full":
        assert caps.filter_cql2_json and caps.filter_cql2_text and caps.query and caps.sort and caps.collections_paging
    else:
        assert not (caps.filter_cql2_json or caps.filter_cql2_text or caps.query or caps.sort)


@pytest.mark.parametrize(("backend", "message"), [("full", "Collection nope does not exist"),
                                                  ("light", "no collection with id='nope'")])
def test_unknown_collection_names_the_url_status_and_server_words(request, backend, message, fetch) -> None:
    client = client_for(request, backend, fetch)
    with pytest.raises(HttpError) as caught:
        client.collection("nope")
    assert caught.value.status == 404
    assert str(caught.value).startswith(f"GET {client.source.url}/collections/nope -> HTTP 404 Not Found: ")
    assert message in caught.value.server_message


def test_open_ended_date_ranges(request, fetch, s2_items) -> None:
    start = max(when(i) for i in s2_items) - timedelta(days=1)
    expected = ids_where(s2_items, lambda i: when(i) >= start)
    assert 0 < len(expected) < 4
    for backend in ("light", "static"):
        client = client_for(request, backend, fetch)
        assert search_ids(client, SearchQuery((S2,), None, start, None, None)) == sorted(expected)
