"""Paging that always ends: a server handing out `next` tokens forever is stopped by a page with no
new item, by the page cap or by the time limit; each stop says why, and the items received are kept.

Through the catalog client, the dock and `qgis_process`, against a real scripted server on loopback.
"""

from __future__ import annotations

import time

import pytest
from conftest import settle_tasks
from qgis.core import QgsProject, QgsVectorLayer
from qgis_desktop import qgis_process
from stac_fault_server import FaultServer, Recorded, Reply
from test_browse_failures import COLLECTION, CORE, WAIT_MS
from test_stac_failures import api, collection_page, item, landing

from cubescope.plugin import settings
from cubescope.plugin.gui.dock import CubescopeDock
from cubescope.plugin.stac.catalog_client import CatalogClient, PagingLimits, SearchQuery
from cubescope.plugin.stac.paging import NO_NEW_ITEM, PAGE_LIMIT, REPEATED_LINK, TIME_LIMIT
from cubescope.plugin.stac.sources import Source, SourceKind


def endless(server: FaultServer, items_of_page, delay_s: float = 0.0) -> None:
    """POST /search answers page n (its token) with `items_of_page(n)` and a next link to page n + 1, forever."""

    def search(request: Recorded) -> Reply:
        number = int(request.body.get("token", 1))
        return Reply(body=collection_page(items_of_page(number), {
            "rel": "next", "href": f"{server.url}/search", "method": "POST",
            "body": {**request.body, "token": number + 1}}), delay_s=delay_s)

    server.route("POST", "/search", search)


def same_two(_number: int) -> list[dict]:
    return [item("a", 1), item("b", 2)]


def ever_new(number: int) -> list[dict]:
    return [item(f"p{number}-1", number % 28 + 1), item(f"p{number}-2", number % 28 + 1)]


def searches(server: FaultServer) -> list[Recorded]:
    return [r for r in server.requests if r.path == "/search"]


def query(**paging) -> SearchQuery:
    return SearchQuery(("c",), None, None, None, None, page_size=2, paging=PagingLimits(**paging))


def ids(pages) -> list[str]:
    return [i["id"] for page in pages for i in page.items]


def test_endless_tokens_with_the_same_items_stop_at_the_first_page_without_a_new_one(server, fetch) -> None:
    client = api(server, fetch)
    endless(server, same_two)
    pages = list(client.search(query()))
    assert ids(pages) == ["a", "b"]
    assert len(searches(server)) == 2
    assert [p.stop for p in pages[:-1]] == [None]
    stop = pages[-1].stop
    assert stop.reason == NO_NEW_ITEM and stop.pages == 2 and stop.kept == 2
    assert stop.message() == ("The server sent page 2 with no new item and yet another next link: "
                              "paging stopped, 2 items kept.")


@pytest.mark.parametrize(("first", "kept", "stopped_at"), [(same_two, 2, 2), (lambda _n: [], 0, 1)])
def test_endless_tokens_with_empty_pages_stop(server, fetch, first, kept, stopped_at) -> None:
    client = api(server, fetch)
    endless(server, lambda number: first(number) if number == 1 else [])
    pages = list(client.search(query()))
    assert len(ids(pages)) == kept
    assert len(searches(server)) == stopped_at
    assert pages[-1].stop.reason == NO_NEW_ITEM and pages[-1].stop.pages == stopped_at
    assert f"page {stopped_at} with no new item" in pages[-1].stop.message()
    assert f"{kept} items kept" in pages[-1].stop.message()


def test_ever_new_items_with_endless_tokens_stop_at_the_page_cap(server, fetch) -> None:
    client = api(server, fetch)
    endless(server, ever_new)
    pages = list(client.search(query(max_pages=5)))
    assert ids(pages) == [f"p{n}-{k}" for n in range(1, 6) for k in (1, 2)]
    assert len(searches(server)) == 5
    stop = pages[-1].stop
    assert stop.reason == PAGE_LIMIT and stop.pages == 5 and stop.kept == 10
    assert stop.message("the test's settings") == (
        "Paging stopped after 5 pages (the page limit): 10 items kept, the catalog has more; "
        "raise it in the test's settings.")


def test_a_slow_endless_server_stops_at_the_time_limit(server, fetch) -> None:
    client = api(server, fetch)
    endless(server, ever_new, delay_s=0.3)
    started = time.monotonic()
    pages = list(client.search(query(time_limit_s=1.0)))
    took = time.monotonic() - started
    fetched = len(searches(server))
    # 0.3 s a page: the page that ends past 1 s is the last one asked for (4 at best, 5 on a busy machine).
    assert 3 <= fetched <= 5 and took < 3.0
    stop = pages[-1].stop
    assert stop.reason == TIME_LIMIT and stop.pages == fetched and stop.kept == 2 * fetched
    assert stop.elapsed_s >= 1.0
    assert "(the time limit of 1 s)" in stop.message() and f"{2 * fetched} items kept" in stop.message()
    assert len(ids(pages)) == 2 * fetched


def test_a_page_that_a_local_filter_empties_is_no_reason_to_stop(server, fetch) -> None:
    """New items that the cloud filter applied here drops still count as new: paging goes on."""
    client = api(server, fetch)
    cloudy = {"datetime": "2024-05-03T10:00:00Z", "proj:epsg": 32632, "eo:cloud_cover": 90.0}

    def search(request: Recorded) -> Reply:
        number = int(request.body.get("token", 1))
        features = {1: [item("a", 1)], 2: [item("cloudy", 3, properties=cloudy)], 3: [item("c", 4)]}[number]
        following = {"rel": "next", "href": f"{server.url}/search", "method": "POST",
                     "body": {**request.body, "token": number + 1}} if number < 3 else None
        return Reply(body=collection_page(features, following))

    server.route("POST", "/search", search)
    pages = list(client.search(SearchQuery(("c",), None, None, None, 20.0, page_size=1)))
    assert ids(pages) == ["a", "c"]
    assert len(searches(server)) == 3 and all(p.stop is None for p in pages)


def test_a_repeated_next_link_says_so(server, fetch) -> None:
    client = api(server, fetch)
    server.route("POST", "/search", Reply(body=collection_page([item("a")], {"rel": "next", "href": "/search?p=1"})))
    server.route("GET", "/search", Reply(body=collection_page([item("x")], {"rel": "next", "href": "/search?p=1"})))
    pages = list(client.search(query()))
    assert ids(pages) == ["a", "x"] and pages[-1].stop.reason == REPEATED_LINK
    assert "page 2 with a next link already followed" in pages[-1].stop.message()


def test_a_slow_static_catalog_stops_at_the_time_limit(server, fetch) -> None:
    links = [{"rel": "item", "href": f"./items/i{n}.json"} for n in range(12)]
    server.route("GET", "/catalog.json", Reply(body={
        "type": "Catalog", "id": "slow", "description": "d", "stac_version": "1.0.0", "links": links}))
    for n in range(12):
        server.route("GET", f"/items/i{n}.json", Reply(body=item(f"i{n}", n + 1), delay_s=0.3))
    client = CatalogClient(Source("slow", SourceKind.STATIC, f"{server.url}/catalog.json"), fetch, timeout_s=5)
    pages = list(client.search(SearchQuery((), None, None, None, None, page_size=2,
                                           paging=PagingLimits(time_limit_s=1.0))))
    read = len([r for r in server.requests if r.path.startswith("/items/")])
    assert 3 <= read <= 5, "about 1 s of 0.3 s item files, not all 12"
    assert len(ids(pages)) == read
    assert pages[-1].stop.reason == TIME_LIMIT and f"{read} items kept" in pages[-1].stop.message()


@pytest.mark.parametrize("limits", [{"max_pages": 0}, {"max_pages": 2.5}, {"time_limit_s": 0}, {"time_limit_s": "1"}])
def test_unusable_limits_are_refused_with_the_value(limits) -> None:
    with pytest.raises(ValueError, match=repr(next(iter(limits.values())))):
        PagingLimits(**limits)


# ---- through the dock ----

@pytest.fixture()
def dock(qgis_app, qgis_canvas, qtbot, tmp_path):
    saved = settings.paging_limits()
    widget = CubescopeDock(None, qgis_canvas)
    widget.browse.workdir = tmp_path
    qtbot.addWidget(widget)
    yield widget
    widget.cancel_tasks()
    settle_tasks(qtbot)
    QgsProject.instance().removeAllMapLayers()
    settings.set_paging_limits(saved)


def dock_search(dock, qtbot, server):
    server.route("GET", "/", Reply(body=landing(server, CORE)))
    server.route("GET", "/collections", Reply(body={"collections": [COLLECTION], "links": []}))
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="endless", kind=SourceKind.STAC_API, url=f"{server.url}/"))
    dock.form.extentBox.setOutputExtentFromOriginal()
    with qtbot.waitSignal(dock.browse.search_finished, timeout=WAIT_MS) as blocker:
        dock.form.searchButton.click()
    return blocker.args[0]


def bar_texts(dock) -> list[str]:
    return [entry.text() for entry in dock.message_bar.items()]


def test_the_dock_stops_at_its_page_cap_keeps_the_items_and_says_why(dock, qtbot, server):
    endless(server, ever_new)
    dock.form.maxPagesSpin.setValue(3)
    assert settings.paging_limits().max_pages == 3, "the cap is kept with the plugin's settings"
    outcome = dock_search(dock, qtbot, server)
    assert len(searches(server)) == 3
    assert sorted(i["id"] for i in outcome.items) == [f"p{n}-{k}" for n in range(1, 4) for k in (1, 2)]
    assert dock.browse.footprints_layer.featureCount() == 6
    assert dock.form.searchCount.text() == "6 items (stopped: page limit)"
    message = ("Paging stopped after 3 pages (the page limit): 6 items kept, the catalog has more; "
               "raise it in the search's “Pages ≤” box.")
    assert dock.form.searchCount.toolTip() == message
    assert message in bar_texts(dock)
    assert dock.form.searchButton.isEnabled() and not dock.form.cancelSearchButton.isEnabled()


def test_the_dock_stops_a_server_repeating_its_items(dock, qtbot, server):
    endless(server, same_two)
    outcome = dock_search(dock, qtbot, server)
    assert len(searches(server)) == 2
    assert sorted(i["id"] for i in outcome.items) == ["a", "b"]
    assert dock.form.searchCount.text() == "2 items (stopped: no new item)"
    assert any("page 2 with no new item" in text and "2 items kept" in text for text in bar_texts(dock))
    assert dock.form.searchButton.isEnabled()


def test_a_new_dock_shows_the_saved_limits(dock, qgis_canvas, qtbot):
    settings.set_paging_limits(PagingLimits(42, 90.0))
    other = CubescopeDock(None, qgis_canvas)
    qtbot.addWidget(other)
    assert (other.form.maxPagesSpin.value(), other.form.timeLimitSpin.value()) == (42, 90)
    assert other.browse.query().paging == PagingLimits(42, 90.0)


# ---- through qgis_process ----

def test_searchitems_writes_the_kept_items_and_warns_at_the_page_cap(tmp_path, server):
    server.route("GET", "/", Reply(body=landing(server, CORE)))
    endless(server, ever_new)
    home = tmp_path / "home"
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    out = tmp_path / "footprints.gpkg"
    run = qgis_process(home, "run", "cubescope:searchitems", "--", f"SOURCE={server.url}/", "COLLECTION=c",
                       "MAX_PAGES=4", f"OUTPUT={out}", timeout_s=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len(searches(server)) == 4
    layer = QgsVectorLayer(str(out), "out", "ogr")
    assert layer.isValid()
    assert sorted(f["id"] for f in layer.getFeatures()) == [f"p{n}-{k}" for n in range(1, 5) for k in (1, 2)]
    assert ("Paging stopped after 4 pages (the page limit): 8 items kept, the catalog has more; "
            "raise it in the MAX_PAGES parameter.") in run.stdout + run.stderr


def test_the_engines_and_the_minicubes_searches_warn_why_paging_stopped_and_keep_the_items(server, fetch):
    """Composites, cubes, minicubes and chips search the catalog themselves: a server repeating its items
    with endless tokens is stopped there too, and the run's log says why (not a silently short list)."""
    from datetime import datetime

    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
    from cubescope.plugin.analysis.engine.pipeline import search_items
    from cubescope.plugin.products.minicubes.build import search

    api(server, fetch)
    endless(server, same_two)
    period = Period(datetime(2024, 5, 1), datetime(2024, 5, 31))
    request = AnalysisRequest(source=f"{server.url}/", collection="c", operation="composite", bands=("red",),
                              periods=(period,), output="unused.tif")
    said: list[str] = []
    found = search_items(request, period, fetch, say=said.append)
    assert [i["id"] for i in found] == ["a", "b"]
    assert said == ["Warning: The server sent page 2 with no new item and yet another next link: "
                    "paging stopped, 2 items kept."]
    said.clear()
    found = search(f"{server.url}/", "c", (10, 40, 11, 41), period.start, period.end, fetch, say=said.append)
    assert [i["id"] for i in found] == ["a", "b"]
    assert said == [f"Warning: {server.url}/: The server sent page 2 with no new item and yet another next link: "
                    "paging stopped, 2 items kept."]


def test_a_collections_list_with_endless_next_links_ends_and_says_why(server, fetch):
    """/collections answered forever with the same collection and a new token: the list ends at the
    first page without a new collection, with a note saying so, and the collection is listed once."""
    from test_stac_failures import collection

    client = api(server, fetch)

    def collections(request: Recorded) -> Reply:
        number = int(request.query.get("token", ["1"])[0])
        return Reply(body={"collections": [collection("c", [10, 40, 11, 41])], "links": [
            {"rel": "next", "href": f"{server.url}/collections?token={number + 1}"}]})

    server.route("GET", "/collections", collections)
    pages = list(client.collections())
    assert [c.id for page in pages for c in page] == ["c"]
    assert len([r for r in server.requests if r.path == "/collections"]) == 2
    assert pages[-1].skipped == ["The server sent page 2 with no new collection and yet another next link: "
                                 "paging stopped, 1 collection kept."]
