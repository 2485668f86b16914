"""Bad servers seen from the dock, through QGIS's own network stack: the message names the URL, the
status and the server's words; what was received stays; the GUI thread keeps running."""

from __future__ import annotations

import time

import pytest
from conftest import settle_tasks
from qgis.core import QgsApplication, QgsNetworkAccessManager, QgsProject
from qgis.PyQt.QtCore import QTimer, QUrl
from qgis.PyQt.QtNetwork import QNetworkRequest
from stac_fault_server import Recorded, Reply
from test_stac_failures import collection_page, item, landing

from cubescope.plugin.gui.dock import CubescopeDock
from cubescope.plugin.network import qgis_fetcher
from cubescope.plugin.stac.http import HttpError
from cubescope.plugin.stac.retries import DEFAULT_POLICY, RETRY_STATUSES
from cubescope.plugin.stac.sources import Source, SourceKind

WAIT_MS = 30_000
CORE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.0.0/collections"]
COLLECTION = {"type": "Collection", "id": "c", "title": "Scripted collection", "description": "d",
              "license": "proprietary", "stac_version": "1.0.0", "links": [],
              "extent": {"spatial": {"bbox": [[10, 40, 11, 41]]},
                         "temporal": {"interval": [["2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z"]]}}}


@pytest.fixture()
def dock(qgis_app, qgis_canvas, qtbot, tmp_path):
    widget = CubescopeDock(None, qgis_canvas)
    widget.browse.workdir = tmp_path
    qtbot.addWidget(widget)
    yield widget
    widget.cancel_tasks()
    settle_tasks(qtbot)
    QgsProject.instance().removeAllMapLayers()


def open_api(dock, qtbot, server, expect_failure: bool):
    signal = dock.browse.source_failed if expect_failure else dock.browse.collections_listed
    with qtbot.waitSignal(signal, timeout=WAIT_MS) as blocker:
        dock.open_source(Source(name="scripted", kind=SourceKind.STAC_API, url=f"{server.url}/"))
    return blocker.args[0]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(404, {"code": "NotFound", "description": "No catalog here"}), "HTTP 404 Not Found: No catalog here"),
        (Reply(401, {"detail": "Missing API key"}), "HTTP 401 Unauthorized: Missing API key"),
        (Reply(500, "<html><title>Internal failure</title><body>x</body></html>", "text/html"),
         "HTTP 500 Internal Server Error: Internal failure"),
        (Reply(200, "this is not json", "text/plain"), "not JSON"),
        (Reply(200, '{"type": "Catalog", "id": ', "application/json"), "not valid JSON"),
    ],
)
def test_a_failing_landing_page_is_reported_with_url_status_and_message(dock, qtbot, server, reply, expected):
    server.route("GET", "/", reply)
    message = open_api(dock, qtbot, server, expect_failure=True)
    assert f"{server.url}/" in message and expected in message
    assert expected in dock.form.sourceStatus.text()
    assert dock.collection_ids() == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(Reply(500, "<html><title>Internal failure</title><body>x</body></html>", "text/html"),
      "HTTP 500 Internal Server Error: Internal failure"),
     (Reply(503, {"code": "Maintenance", "description": "Back at noon"}), "HTTP 503 Service Unavailable: Back at noon"),
     (Reply(502, "", "text/html"), "HTTP 502 Bad Gateway")],
)
def test_a_server_error_after_an_earlier_answer_reads_as_the_error(qgis_app, server, failure, expected):
    """QGIS's network cache keeps answers; for a 5xx at a URL it holds, Qt hands over the cached
    copy's status (200) and body with the error. Cubescope's requests keep no answer there and
    ignore one kept before."""
    url, cache = f"{server.url}/collections", QgsNetworkAccessManager.instance().cache()
    server.route("GET", "/collections", Reply(200, {"collections": [], "links": []}))
    QgsNetworkAccessManager.blockingGet(QNetworkRequest(QUrl(url)), "", True, None)  # as QGIS itself would
    assert cache.metaData(QUrl(url)).isValid()
    fetch = qgis_fetcher()
    server.route("GET", "/collections", failure)
    with pytest.raises(HttpError) as raised:
        fetch("GET", url)
    assert raised.value.status == failure.status
    assert str(raised.value) == f"GET {url} -> {expected}"  # the server's words only, nothing of the 200

    server.route("GET", "/collections", Reply(200, {"collections": [], "links": []}))
    server.route("GET", "/moved", Reply(302, "", "text/plain", headers={"Location": url}))
    assert fetch("GET", f"{server.url}/moved").json() == {"collections": [], "links": []}
    tries = DEFAULT_POLICY.attempts if failure.status in RETRY_STATUSES else 1  # 502/503 are asked again
    assert [r.path for r in server.requests] == ["/collections"] * (1 + tries) + ["/moved", "/collections"]
    assert not cache.metaData(QUrl(url)).isValid() and not cache.metaData(QUrl(f"{server.url}/moved")).isValid()


def test_a_slow_server_times_out_and_the_gui_thread_keeps_running(dock, qtbot, server):
    server.route("GET", "/", Reply(body=landing(server, CORE), delay_s=6))
    previous = QgsNetworkAccessManager.timeout()
    QgsNetworkAccessManager.setTimeout(1500)  # what a user sets in Settings › Network
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    try:
        message = open_api(dock, qtbot, server, expect_failure=True)
    finally:
        timer.stop()
        QgsNetworkAccessManager.setTimeout(previous)
    assert "timed out" in message and server.url in message
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) > 20 and max(gaps) < 0.5, f"the GUI thread stalled for {max(gaps):.2f} s"


def test_a_search_failing_midway_keeps_the_items_received(dock, qtbot, server):
    server.route("GET", "/", Reply(body=landing(server, CORE)))
    server.route("GET", "/collections", Reply(body={"collections": [COLLECTION], "links": []}))

    def search(request: Recorded) -> Reply:
        if "token" not in request.body:
            return Reply(body=collection_page([item("a", 1), item("b", 2)], {
                "rel": "next", "href": f"{server.url}/search", "method": "POST",
                "body": {**request.body, "token": "page2"}}))
        return Reply(500, {"code": "Timeout", "description": "statement timeout"})

    server.route("POST", "/search", search)
    open_api(dock, qtbot, server, expect_failure=False)
    dock.form.cloudSpin.setValue(100)
    dock.form.extentBox.setOutputExtentFromOriginal()
    with qtbot.waitSignal(dock.browse.search_finished, timeout=WAIT_MS) as blocker:
        dock.form.searchButton.click()
    outcome = blocker.args[0]
    assert [i["id"] for i in outcome.items] == ["a", "b"]
    assert "HTTP 500" in outcome.error and "statement timeout" in outcome.error
    assert dock.browse.footprints_layer.featureCount() == 2
    assert dock.form.searchButton.isEnabled()


def test_items_without_geometry_are_left_out_and_named(dock, qtbot, server):
    server.route("GET", "/", Reply(body=landing(server, CORE)))
    server.route("GET", "/collections", Reply(body={"collections": [COLLECTION], "links": []}))
    server.route("POST", "/search", Reply(body=collection_page([item("good", 1), item("bad", 2, geometry=None)])))
    open_api(dock, qtbot, server, expect_failure=False)
    dock.form.extentBox.setOutputExtentFromOriginal()
    with qtbot.waitSignal(dock.browse.search_finished, timeout=WAIT_MS) as blocker:
        dock.form.searchButton.click()
    outcome = blocker.args[0]
    assert [i["id"] for i in outcome.items] == ["good"]
    assert any("bad" in problem and "geometry" in problem for problem in outcome.skipped)


def test_a_malformed_collection_is_left_out_with_a_warning_and_the_good_one_listed(dock, qtbot, server):
    bad = {**COLLECTION, "id": "bad", "extent": {"spatial": {"bbox": [["a", "b", "c", "d"]]}}}
    server.route("GET", "/", Reply(body=landing(server, CORE)))
    server.route("GET", "/collections", Reply(body={"collections": [bad, COLLECTION], "links": []}))
    messages: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, *_: messages.append(text))
    listed = open_api(dock, qtbot, server, expect_failure=False)
    assert [c.id for c in listed] == ["c"]
    assert dock.browse.collections.rowCount() == 1
    assert any("collection 'bad'" in m and f"{server.url}/collections/bad" in m for m in messages), messages


def test_a_missing_s3_bucket_is_reported(dock, qtbot, s3_server):
    from cubescope.plugin.stac.s3_options import S3Options

    s3 = S3Options(endpoint=s3_server.endpoint, region="us-east-1", https=False, virtual_hosting=False)
    source = Source(name="no bucket", kind=SourceKind.ZARR, url="s3://no-such-bucket-here/cube.zarr", s3=s3)
    with qtbot.waitSignal(dock.browse.source_failed, timeout=WAIT_MS) as blocker:
        dock.open_source(source)
    assert "no-such-bucket-here" in blocker.args[0]
