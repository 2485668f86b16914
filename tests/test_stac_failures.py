"""What users see when a catalog misbehaves: each failure names the URL, the status and the server's words.

The misbehaving catalog is a real HTTP server on loopback (`stac_fault_server`), scripted per path;
the unreachable one is a port nothing listens on.
"""

from __future__ import annotations

import time

import pytest
from servers.ports import free_port
from stac_fault_server import FaultServer, Recorded, Reply

from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.http import HttpError
from cubescope.plugin.stac.sources import Source, SourceKind

CORE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]


def landing(server: FaultServer, conforms_to: list[str] | None = None) -> dict:
    document = {"type": "Catalog", "id": "faulty", "title": "Faulty API", "description": "scripted",
                "links": [{"rel": "search", "href": f"{server.url}/search", "method": "POST"},
                          {"rel": "data", "href": f"{server.url}/collections"}]}
    if conforms_to is not None:
        document["conformsTo"] = conforms_to
    return document


def api(server: FaultServer, fetch, conforms_to: list[str] | None = CORE, timeout_s: float = 10) -> CatalogClient:
    server.route("GET", "/", Reply(body=landing(server, conforms_to)))
    return CatalogClient(Source("faulty", SourceKind.STAC_API, f"{server.url}/"), fetch, timeout_s=timeout_s)


def item(item_id: str, day: int = 1, **changes) -> dict:
    feature = {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "c",
        "geometry": {"type": "Polygon", "coordinates": [[[10, 40], [11, 40], [11, 41], [10, 41], [10, 40]]]},
        "bbox": [10, 40, 11, 41],
        "properties": {"datetime": f"2024-05-{day:02d}T10:00:00Z", "proj:epsg": 32632, "eo:cloud_cover": 5.0},
        "assets": {"red": {"href": f"https://example.org/{item_id}/red.tif", "type": "image/tiff"}},
        "links": [],
    }
    feature.update(changes)
    return feature


def collection_page(features: list[dict], next_link: dict | None = None) -> dict:
    return {"type": "FeatureCollection", "features": features, "links": [next_link] if next_link else []}


QUERY = SearchQuery(("c",), None, None, None, None, page_size=2)


def test_unreachable_host_says_connection_refused(fetch) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    client = CatalogClient(Source("nobody", SourceKind.STAC_API, url), fetch, timeout_s=5)
    with pytest.raises(HttpError) as caught:
        client.test()
    assert caught.value.status is None
    assert str(caught.value) == f"GET {url}: connection refused"
    assert "network" in caught.value.hint


@pytest.mark.parametrize(("status", "body", "content_type", "words"), [
    (404, {"code": "NotFoundError", "description": "Collection foo does not exist."}, "application/json",
     "Collection foo does not exist."),
    (401, {"detail": "Not authenticated"}, "application/json", "Not authenticated"),
    (403, {"message": "Forbidden: token expired"}, "application/json", "Forbidden: token expired"),
    (500, {"code": "InternalError", "description": "database connection lost"}, "application/json",
     "database connection lost"),
    (500, "<html><head><title>Upstream database down</title></head><body><h1>500</h1><p>x</p></body></html>",
     "text/html", "Upstream database down"),
    (502, "<html><body><h1>Bad gateway</h1><script>alert(1)</script><p>nginx</p></body></html>", "text/html",
     "Bad gateway nginx"),
    (503, "try again later\n", "text/plain", "try again later"),
])
def test_http_errors_name_the_url_status_and_server_words(server, fetch, status, body, content_type, words) -> None:
    client = api(server, fetch)
    server.route("GET", "/collections/foo", Reply(status, body, content_type))
    with pytest.raises(HttpError) as caught:
        client.collection("foo")
    error = caught.value
    assert (error.method, error.url, error.status, error.server_message) == (
        "GET", f"{server.url}/collections/foo", status, words)
    assert str(error) == f"GET {server.url}/collections/foo -> HTTP {status} {error.reason}: {words}"
    assert error.reason  # "Not Found", "Unauthorized", ...
    if status in (401, 403):
        assert "authentication" in error.hint


def test_validation_errors_from_fastapi_are_readable(server, fetch) -> None:
    client = api(server, fetch)
    detail = [{"type": "dict_type", "loc": ["body", "filter"], "msg": "Input should be a valid dictionary"}]
    server.route("POST", "/search", Reply(400, {"detail": detail}))
    with pytest.raises(HttpError, match=r"-> HTTP 400 Bad Request: filter: Input should be a valid dictionary$"):
        next(client.search(QUERY))


def test_a_non_json_answer_is_quoted(server, fetch) -> None:
    client = api(server, fetch)
    server.route("GET", "/", Reply(200, "<html><body>Welcome to our portal</body></html>", "text/html"))
    with pytest.raises(HttpError) as caught:
        client.test()
    assert str(caught.value) == (f"GET {server.url}/: the answer is not JSON (text/html): "
                                 "<html><body>Welcome to our portal</body></html>")


def test_invalid_json_is_reported_with_its_position(server, fetch) -> None:
    client = api(server, fetch)
    server.route("GET", "/collections", Reply(200, '{"collections": [{"id": "a",}]}'))
    with pytest.raises(HttpError) as caught:
        list(client.collections())
    text = str(caught.value)
    assert text.startswith(f"GET {server.url}/collections: the answer is not valid JSON (")
    assert "line 1 column" in text and text.endswith('{"collections": [{"id": "a",}]}')


def test_a_slow_server_times_out_within_the_limit(server, fetch) -> None:
    client = api(server, fetch, timeout_s=0.5)
    server.route("POST", "/search", Reply(body=collection_page([item("late")]), delay_s=10))
    started = time.monotonic()
    with pytest.raises(HttpError) as caught:
        next(client.search(QUERY))
    assert time.monotonic() - started < 3
    assert str(caught.value) == f"POST {server.url}/search: timed out after 0.5 s"
    assert caught.value.status is None and "slow" in caught.value.hint


def test_a_failure_midway_keeps_the_pages_already_received(server, fetch) -> None:
    client = api(server, fetch)

    def search(request: Recorded) -> Reply:
        if "token" not in request.body:
            return Reply(body=collection_page([item("a", 1), item("b", 2)], {
                "rel": "next", "href": f"{server.url}/search", "method": "POST",
                "body": {**request.body, "token": "page2"}}))
        return Reply(500, {"code": "Timeout", "description": "statement timeout"})

    server.route("POST", "/search", search)
    kept = []
    with pytest.raises(HttpError) as caught:
        for page in client.search(QUERY):
            kept.extend(page.items)
    assert [i["id"] for i in kept] == ["a", "b"]
    assert caught.value.status == 500 and caught.value.server_message == "statement timeout"
    assert "try again later" in caught.value.hint


def test_next_links_follow_method_body_merge_headers_and_relative_get(server, fetch) -> None:
    client = api(server, fetch)

    def search(request: Recorded) -> Reply:
        if request.body.get("token") is None:
            return Reply(body=collection_page([item("a", 1), item("b", 2)], {
                "rel": "next", "href": "/search", "method": "POST", "merge": True,
                "body": {"token": "t2"}, "headers": {"X-Page": "2"}}))
        assert request.headers.get("x-page") == "2"
        return Reply(body=collection_page([item("c", 3)], {"rel": "next", "href": "search?page=3"}))

    server.route("POST", "/search", search)
    server.route("GET", "/search", Reply(body=collection_page([item("d", 4)])))
    pages = list(client.search(QUERY))
    assert [[i["id"] for i in p.items] for p in pages] == [["a", "b"], ["c"], ["d"]]
    assert [p.received for p in pages] == [2, 3, 4]
    first, second, third = server.requests[1:]
    assert second.body == {**first.body, "token": "t2"}, "merge keeps the original search"
    assert first.body["collections"] == ["c"] and first.body["limit"] == 2
    assert (third.method, third.path, third.query) == ("GET", "/search", {"page": ["3"]})


def test_a_server_repeating_its_next_link_does_not_page_forever(server, fetch) -> None:
    client = api(server, fetch)
    server.route("GET", "/search", Reply(body=collection_page([item("x")], {"rel": "next", "href": "/search?p=1"})))
    server.route("POST", "/search", Reply(body=collection_page([item("a")], {"rel": "next", "href": "/search?p=1"})))
    pages = list(client.search(QUERY))
    assert [[i["id"] for i in p.items] for p in pages] == [["a"], ["x"]]
    assert len(server.requests) == 3  # landing, POST, one GET


def test_cancel_between_pages_sends_no_further_request(server, fetch) -> None:
    client = api(server, fetch)
    server.route("POST", "/search", Reply(body=collection_page([item("a"), item("b")], {
        "rel": "next", "href": f"{server.url}/search", "method": "POST", "body": {"token": "2"}})))
    pages = list(client.search(QUERY, is_canceled=lambda: len(server.requests) >= 2))
    assert len(pages) == 1 and [r.method for r in server.requests] == ["GET", "POST"]


def test_invalid_items_are_skipped_and_reported_valid_ones_kept(server, fetch) -> None:
    client = api(server, fetch)
    no_geometry = item("no-geometry", geometry=None)
    del no_geometry["bbox"]
    no_datetime = item("no-datetime", properties={"proj:epsg": 32632})
    no_projection = item("no-projection", properties={"datetime": "2024-05-03T10:00:00Z"})
    no_media_type = item("no-media-type", assets={"red": {"href": "https://example.org/r.tif"}})
    interval_only = item("interval-only", properties={"datetime": None, "start_datetime": "2024-05-01T00:00:00Z",
                                                      "end_datetime": "2024-05-31T00:00:00Z", "proj:epsg": 4326})
    server.route("POST", "/search", Reply(body=collection_page(
        [no_geometry, no_datetime, no_projection, no_media_type, interval_only, "garbage"])))
    pages = list(client.search(SearchQuery((), None, None, None, None)))
    assert [i["id"] for i in pages[0].items] == ["no-projection", "no-media-type", "interval-only"]
    source = f"(from {server.url}/search)"
    assert pages[0].skipped == [f"item no-geometry has no geometry {source}",
                                f"item no-datetime has no datetime (nor start_datetime) {source}",
                                f"a search result is not a STAC item (got str) {source}"]
    assert pages[0].warnings == ["item no-projection has no projection metadata (proj:epsg / proj:code)",
                                 "item no-media-type: asset 'red' has no media type"]


def test_an_item_with_garbage_coordinates_is_skipped_and_named_with_its_url(server, fetch) -> None:
    client = api(server, fetch)
    garbage = item("garbage-coordinates", geometry={"type": "Polygon", "coordinates": [[["a", "b"], ["c", "d"]]]})
    server.route("POST", "/search", Reply(body=collection_page([garbage, item("good")])))
    pages = list(client.search(SearchQuery((), None, None, None, None)))
    assert [i["id"] for i in pages[0].items] == ["good"]
    assert pages[0].skipped == [f"item garbage-coordinates has unusable geometry coordinates (no footprint) "
                                f"(from {server.url}/search)"]


def collection(collection_id: str, bbox: list) -> dict:
    return {"type": "Collection", "stac_version": "1.0.0", "id": collection_id, "description": "d",
            "license": "CC-BY-4.0", "links": [],
            "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [["2024-01-01T00:00:00Z", None]]}}}


def test_a_malformed_collection_is_left_out_and_named_the_good_ones_listed(server, fetch) -> None:
    client = api(server, fetch)
    server.route("GET", "/collections", Reply(body={"collections": [
        collection("good-a", [10, 40, 11, 41]), collection("bad", ["a", "b", "c", "d"]),
        collection("good-b", [0, 0, 1, 1])], "links": []}))
    pages = list(client.collections())
    assert [c.id for page in pages for c in page] == ["good-a", "good-b"]
    assert pages[0][0].bbox == (10.0, 40.0, 11.0, 41.0)
    skipped = [s for page in pages for s in page.skipped]
    assert len(skipped) == 1
    assert "collection 'bad'" in skipped[0] and f"{server.url}/collections/bad" in skipped[0]


def test_an_answer_without_features_is_not_taken_for_an_empty_result(server, fetch) -> None:
    client = api(server, fetch)
    server.route("POST", "/search", Reply(body={"type": "Catalog", "links": []}))
    with pytest.raises(HttpError, match=r"POST .*/search: not a STAC ItemCollection \(no 'features' list\)"):
        next(client.search(QUERY))


def test_conformance_from_its_own_endpoint_and_loose_version_matching(server, fetch) -> None:
    client = api(server, fetch, conforms_to=None)
    server.route("GET", "/conformance", Reply(body={"conformsTo": [
        *CORE, "https://api.stacspec.org/v1.1.0/item-search#sort", "https://api.stacspec.org/v1.0.0/item-search#query"]}))
    caps = client.capabilities()
    assert caps.sort and caps.query and not caps.filter_cql2_json and not caps.filter_cql2_text
    plan = client.plan(SearchQuery(("c",), None, None, None, 30.0))
    assert plan.body["query"] == {"eo:cloud_cover": {"lte": 30.0}} and "filter" not in plan.body
    assert plan.body["sortby"][0] == {"field": "properties.datetime", "direction": "asc"}


def test_a_cql2_text_only_server_gets_the_filter_as_get_parameters(server, fetch) -> None:
    client = api(server, fetch, conforms_to=[*CORE, "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
                                             "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text"])
    server.route("GET", "/search", Reply(body=collection_page([item("a")])))
    # An operator Cubescope cannot evaluate itself still reaches a server that parses CQL2 text.
    query = SearchQuery(("c",), (10, 40, 11, 41), None, None, 15.0, cql2="S_INTERSECTS(geometry, POINT(10.5 40.5))")
    assert [i["id"] for p in client.search(query) for i in p.items] == ["a"]
    sent = server.requests[-1]
    assert sent.query["filter"] == ['"eo:cloud_cover" <= 15.0 AND (S_INTERSECTS(geometry, POINT(10.5 40.5)))']
    assert sent.query["filter-lang"] == ["cql2-text"]
    assert sent.query["bbox"] == ["10.0,40.0,11.0,41.0"] and sent.query["collections"] == ["c"]


def test_static_catalog_with_a_broken_item_link_reports_it_and_keeps_the_rest(server, fetch) -> None:
    server.route("GET", "/catalog.json", Reply(body={
        "type": "Catalog", "id": "root", "description": "d", "links": [{"rel": "child", "href": "c/collection.json"}]}))
    server.route("GET", "/c/collection.json", Reply(body={
        "type": "Collection", "id": "c", "description": "d", "license": "x", "extent": {},
        "links": [{"rel": "item", "href": "a.json"}, {"rel": "item", "href": "missing.json"}]}))
    red = {"href": "./a/red.tif", "type": "image/tiff"}
    server.route("GET", "/c/a.json", Reply(body=item("a", assets={"red": red})))
    client = CatalogClient(Source("static", SourceKind.STATIC, f"{server.url}/catalog.json"), fetch)
    pages = list(client.search(SearchQuery(("c",), None, None, None, None)))
    assert [i["id"] for i in pages[0].items] == ["a"]
    assert pages[0].items[0]["assets"]["red"]["href"] == f"{server.url}/c/a/red.tif"
    assert pages[0].skipped == [f"broken item link: GET {server.url}/c/missing.json -> HTTP 404 Not Found: "
                                "nothing scripted for GET /c/missing.json"]


def test_static_catalog_server_down_midway_raises(server, fetch) -> None:
    server.route("GET", "/catalog.json", Reply(body={
        "type": "Catalog", "id": "root", "description": "d", "links": [{"rel": "item", "href": "a.json"}]}))
    server.route("GET", "/a.json", Reply(503, "maintenance", "text/plain"))
    client = CatalogClient(Source("static", SourceKind.STATIC, f"{server.url}/catalog.json"), fetch)
    with pytest.raises(HttpError, match=r"GET .*/a.json -> HTTP 503 Service Unavailable: maintenance"):
        list(client.search(SearchQuery((), None, None, None, None)))


def test_local_files_go_through_the_same_fetcher(tmp_path, fetch) -> None:
    (tmp_path / "catalog.json").write_text('{"type": "Catalog", "id": "x", "title": "Local", "links": []}')
    assert fetch("GET", f"file://{tmp_path}/catalog.json").json()["title"] == "Local"
    assert fetch("GET", str(tmp_path / "catalog.json")).json()["id"] == "x"
    with pytest.raises(HttpError) as caught:
        fetch("GET", str(tmp_path / "nope.json"))
    assert str(caught.value) == f"GET {tmp_path / 'nope.json'}: no such file"
    with pytest.raises(HttpError, match="cannot POST a local file"):
        fetch("POST", str(tmp_path / "catalog.json"), json_body={})
