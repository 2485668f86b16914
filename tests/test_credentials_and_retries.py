"""Hostile catalogs, through both network stacks (QGIS's and requests): a connection's credentials
stay on its own site whatever `next` links and redirects say, and 429/502/503/504 are tried again
within bounds, honouring Retry-After, in waits a cancel cuts short.

Two real servers: one on 127.0.0.1 (the catalog) and one on 127.0.0.2, another site for the rule
(an IP address covers only itself); a second server on 127.0.0.1 is the same site on another port.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from qgis_auth import store_auth_config
from stac_fault_server import FaultServer, Recorded, Reply
from test_stac_failures import collection_page, item

from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.http import MAX_REDIRECTS, Fetcher, HttpError, requests_fetcher
from cubescope.plugin.stac.retries import DEFAULT_POLICY, RetryPolicy, next_wait_s, retry_after_s
from cubescope.plugin.stac.sites import within_auth_scope
from cubescope.plugin.stac.sources import Source, SourceKind

TOKEN = "s3cr3t-token-of-the-catalog"
BASIC = "Basic " + base64.b64encode(f"cubescope:{TOKEN}".encode()).decode()
CORE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]
QUERY = SearchQuery(("c",), None, None, None, None, page_size=2)


def carries_credentials(request: Recorded) -> bool:
    values = " ".join(request.headers.values())
    return TOKEN in values or BASIC.split()[1] in values or "authorization" in request.headers


@dataclass
class Stack:
    """One network stack with the catalog's credentials: a Fetcher factory and what it logged."""

    name: str
    make: Callable[..., Fetcher]
    logs: list[str] = field(default_factory=list)
    cancel: Callable[[], None] = lambda: None


@pytest.fixture
def home() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def other() -> Iterator[FaultServer]:
    server = FaultServer("127.0.0.2").start()
    yield server
    server.stop()


@pytest.fixture
def neighbour() -> Iterator[FaultServer]:
    server = FaultServer().start()  # 127.0.0.1 on another port: the same site
    yield server
    server.stop()


def _requests_stack() -> Iterator[Stack]:
    canceled = threading.Event()
    stack = Stack("requests", lambda scope: None, cancel=canceled.set)
    opened = []

    def make(scope: str) -> Fetcher:
        fetcher = requests_fetcher({"Authorization": BASIC, "X-API-Key": TOKEN}, scope=scope, log=stack.logs.append,
                                   is_canceled=canceled.is_set)
        opened.append(fetcher)
        return fetcher

    stack.make = make
    yield stack
    for fetcher in opened:
        fetcher.close()


def _qgis_stack(request, method: str) -> Iterator[Stack]:
    request.getfixturevalue("qgis_app")
    from qgis.core import QgsApplication, QgsFeedback

    from cubescope.plugin import LOG_TAG
    from cubescope.plugin.network import qgis_fetcher

    values = {"Basic": {"username": "cubescope", "password": TOKEN}, "EsriToken": {"token": TOKEN}}[method]
    authcfg = store_auth_config(method, f"hostile catalog ({method})", values)
    feedback = QgsFeedback()
    stack = Stack(f"qgis-{method}", lambda scope: qgis_fetcher(authcfg, feedback, scope=scope),
                  cancel=feedback.cancel)

    def received(message: str, tag: str, _level) -> None:
        if tag == LOG_TAG:
            stack.logs.append(message)

    log = QgsApplication.messageLog()
    log.messageReceived.connect(received)
    yield stack
    log.messageReceived.disconnect(received)
    QgsApplication.authManager().removeAuthenticationConfig(authcfg)


@pytest.fixture(params=["requests", "qgis-Basic", "qgis-EsriToken"])
def stack(request) -> Iterator[Stack]:
    if request.param == "requests":
        yield from _requests_stack()
    else:
        yield from _qgis_stack(request, request.param.split("-", 1)[1])


def catalog(home: FaultServer, stack: Stack) -> CatalogClient:
    home.route("GET", "/", Reply(body={"type": "Catalog", "id": "hostile", "description": "d", "conformsTo": CORE,
                                       "links": [{"rel": "search", "href": f"{home.url}/search", "method": "POST"}]}))
    return CatalogClient(Source("hostile", SourceKind.STAC_API, f"{home.url}/"), stack.make(f"{home.url}/"))


def named_both(logs: list[str], one: FaultServer, two: FaultServer) -> bool:
    hosts = [server.url.split("//")[1].split(":")[0] for server in (one, two)]
    return any(all(host in line for host in hosts) and "without the connection's credentials" in line
               for line in logs)


# ---- one rule for credentials ----

@pytest.mark.parametrize(("elsewhere", "sent"), [("other", False), ("neighbour", True)])
def test_a_next_link_carries_the_credentials_only_on_the_catalogs_site(request, home, stack, elsewhere, sent):
    there = request.getfixturevalue(elsewhere)
    client = catalog(home, stack)
    home.route("POST", "/search", Reply(body=collection_page([item("a", 1), item("b", 2)], {
        "rel": "next", "href": f"{there.url}/page2", "method": "GET"})))
    there.route("GET", "/page2", Reply(body=collection_page([item("c", 3)])))
    pages = list(client.search(QUERY))
    assert [i["id"] for p in pages for i in p.items] == ["a", "b", "c"]
    assert all(carries_credentials(r) for r in home.requests)
    assert [carries_credentials(r) for r in there.requests] == [sent]
    assert named_both(stack.logs, home, there) is not sent


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize(("elsewhere", "sent"), [("other", False), ("neighbour", True)])
def test_a_redirect_carries_the_credentials_only_on_the_catalogs_site(request, home, stack, status, elsewhere, sent):
    there = request.getfixturevalue(elsewhere)
    fetch = stack.make(f"{home.url}/")
    home.route("GET", "/moved", Reply(status, "", "text/plain", headers={"Location": f"{there.url}/landed"}))
    there.route("GET", "/landed", Reply(body={"landed": True}))
    answer = fetch("GET", f"{home.url}/moved")
    assert answer.json() == {"landed": True} and answer.url == f"{there.url}/landed"
    assert [carries_credentials(r) for r in home.requests] == [True]
    assert [carries_credentials(r) for r in there.requests] == [sent]
    assert named_both(stack.logs, home, there) is not sent


def test_a_redirect_loop_ends_with_a_clear_error(home, other, stack):
    home.route("GET", "/a", Reply(302, "", "text/plain", headers={"Location": f"{other.url}/b"}))
    other.route("GET", "/b", Reply(302, "", "text/plain", headers={"Location": f"{home.url}/a"}))
    with pytest.raises(HttpError, match=f"more than {MAX_REDIRECTS} redirects"):
        stack.make(f"{home.url}/")("GET", f"{home.url}/a")
    assert len(home.requests) + len(other.requests) == MAX_REDIRECTS + 1
    assert [carries_credentials(r) for r in home.requests] == [True] + [False] * (len(home.requests) - 1)


def test_a_post_redirected_with_307_keeps_its_body_and_loses_the_credentials(home, other):
    with requests_fetcher({"X-API-Key": TOKEN}, scope=home.url) as fetch:
        home.route("POST", "/search", Reply(307, "", "text/plain", headers={"Location": f"{other.url}/search"}))
        other.route("POST", "/search", Reply(body=collection_page([item("a")])))
        fetch("POST", f"{home.url}/search", json_body={"limit": 1})
    assert other.requests[0].body == {"limit": 1} and not carries_credentials(other.requests[0])


@pytest.mark.parametrize(("scope", "url", "sent"), [
    ("http://127.0.0.1:8000/", "http://127.0.0.1:9000/x", True),
    ("http://127.0.0.1:8000/", "http://127.0.0.2:8000/x", False),
    ("http://127.0.0.1:8000/", "http://localhost:8000/x", False),
    ("https://stac.example.org/v1", "https://data.example.org/a.tif", True),
    ("https://stac.example.org/v1", "https://cdn.example.net/a.tif", False),
])
def test_one_rule_decides_for_catalog_requests_and_assets(scope, url, sent):
    from cubescope.plugin.stac.hrefs import gdal_source

    assert within_auth_scope(scope, url) is sent
    asset = gdal_source(url, auth_headers={"X-API-Key": TOKEN}, auth_scope=scope)
    assert ("GDAL_HTTP_HEADERS" in asset.config) is sent


# ---- retries ----

def test_a_429_with_retry_after_is_asked_again_after_the_wait(home, stack):
    answers = iter([Reply(429, {"detail": "slow down"}, headers={"Retry-After": "1"}), Reply(body={"ok": 1})])
    home.route("GET", "/limited", lambda r: next(answers))
    started = time.monotonic()
    answer = stack.make(f"{home.url}/")("GET", f"{home.url}/limited")
    elapsed = time.monotonic() - started
    assert answer.json() == {"ok": 1}
    assert len(home.requests) == 2 and 1.0 <= elapsed < 5, f"{elapsed:.2f} s"
    assert all(carries_credentials(r) for r in home.requests)


def test_a_server_unavailable_for_ever_is_given_up_with_its_status_and_words(home, stack):
    home.route("GET", "/down", Reply(503, "back at noon", "text/plain"))
    started = time.monotonic()
    with pytest.raises(HttpError) as raised:
        stack.make(f"{home.url}/")("GET", f"{home.url}/down")
    elapsed = time.monotonic() - started
    assert len(home.requests) == DEFAULT_POLICY.attempts
    assert str(raised.value) == f"GET {home.url}/down -> HTTP 503 Service Unavailable: back at noon"
    expected = sum(DEFAULT_POLICY.first_delay_s * 2 ** n for n in range(DEFAULT_POLICY.attempts - 1))
    assert expected <= elapsed < expected + 3, f"{elapsed:.2f} s"


def test_cancel_during_a_retry_after_wait_returns_promptly(home, stack):
    def limited(_request: Recorded) -> Reply:
        stack.cancel()  # the user presses Cancel while the server asks to wait half a minute
        return Reply(429, {"detail": "slow down"}, headers={"Retry-After": "30"})

    home.route("GET", "/limited", limited)
    started = time.monotonic()
    with pytest.raises(HttpError, match="cancelled"):
        stack.make(f"{home.url}/")("GET", f"{home.url}/limited")
    assert time.monotonic() - started < 1.0 and len(home.requests) == 1


def test_retry_after_reads_seconds_and_dates_and_every_wait_is_bounded():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_s("7") == 7.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=12), usegmt=True), now.timestamp()) == 12.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None
    policy = RetryPolicy(attempts=3, first_delay_s=0.5, max_wait_s=30, budget_s=40)
    assert next_wait_s(policy, 429, {"Retry-After": "3600"}, 1, 0) == 30  # capped per wait
    assert next_wait_s(policy, 503, {}, 2, 0) == 1.0  # doubled without Retry-After
    assert next_wait_s(policy, 503, {}, 3, 0) is None  # attempts spent
    assert next_wait_s(policy, 429, {"retry-after": "20"}, 1, 30) is None  # over the total budget
    assert next_wait_s(policy, 500, {}, 1, 0) is None and next_wait_s(policy, 404, {}, 1, 0) is None


def test_asset_reads_get_gdals_retries_from_the_http_defaults(home):
    """GDAL 3.6 retries a 429 after GDAL_HTTP_RETRY_DELAY (it reads no Retry-After: 0.5 s here)."""
    from osgeo import gdal

    from cubescope.plugin.stac.hrefs import HTTP_DEFAULTS

    limited = Reply(429, "slow down", "text/plain", headers={"Retry-After": "1"})
    home.route("GET", "/red.tif", lambda r: limited if len(home.requests) == 1 else Reply(200, "pixels", "image/tiff"))
    for key in ("GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY"):
        gdal.SetThreadLocalConfigOption(key, HTTP_DEFAULTS[key])
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # GDAL warns of each retry
    try:
        handle = gdal.VSIFOpenL(f"/vsicurl?use_head=no&list_dir=no&url={home.url}/red.tif", "rb")
        data = bytes(gdal.VSIFReadL(1, 6, handle))
        gdal.VSIFCloseL(handle)
    finally:
        gdal.PopErrorHandler()
        for key in ("GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY"):
            gdal.SetThreadLocalConfigOption(key, None)
    assert data == b"pixels" and len(home.requests) >= 2


def test_cancel_aborts_a_request_in_flight_on_qgis_network_stack(qgis_app, home):
    """A catalog that takes its time: Cancel does not wait for its answer (nor QGIS's timeout)."""
    from qgis.core import QgsFeedback

    from cubescope.plugin.network import qgis_fetcher

    feedback = QgsFeedback()

    def slow(_request: Recorded) -> Reply:
        feedback.cancel()  # pressed while the server is still thinking
        return Reply(body={"late": True}, delay_s=10)

    home.route("GET", "/slow", slow)
    started = time.monotonic()
    with pytest.raises(HttpError, match="cancelled"):
        qgis_fetcher(feedback=feedback)("GET", f"{home.url}/slow")
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("network", ["requests", "qgis"])
@pytest.mark.parametrize(("elsewhere", "sent"), [("other", False), ("neighbour", True)])
def test_a_callers_own_auth_headers_stay_on_the_site_it_sent_them_to(request, home, network, elsewhere, sent):
    """A protected Zarr store's reads pass their auth headers per request: a redirect elsewhere drops them."""
    there = request.getfixturevalue(elsewhere)
    if network == "qgis":
        request.getfixturevalue("qgis_app")
        from cubescope.plugin.network import qgis_fetcher

        fetch = qgis_fetcher()
    else:
        fetch = request.getfixturevalue("plain_requests")
    home.route("GET", "/store/.zattrs", Reply(302, "", "text/plain", headers={"Location": f"{there.url}/z"}))
    there.route("GET", "/z", Reply(body={}))
    fetch("GET", f"{home.url}/store/.zattrs", headers={"Authorization": BASIC, "X-API-Key": TOKEN})
    assert carries_credentials(home.requests[0])
    assert [carries_credentials(r) for r in there.requests] == [sent]


@pytest.fixture
def plain_requests() -> Iterator[Fetcher]:
    with requests_fetcher() as fetch:
        yield fetch


def _fetch_in_python_thread(fetch, url: str) -> tuple[object, float]:
    """What zarr-python 3 does with its store: a read from a thread that Python started."""
    outcome: list = []

    def work() -> None:
        started = time.monotonic()
        try:
            outcome.append(fetch("GET", url))
        except HttpError as error:
            outcome.append(error)
        outcome.append(time.monotonic() - started)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the request never finished in a thread Python started"
    return outcome[0], outcome[1]


def test_qgis_requests_finish_and_time_out_in_threads_python_started(qgis_app, home):
    from qgis.core import QgsNetworkAccessManager

    from cubescope.plugin.network import qgis_fetcher

    home.route("GET", "/fast", Reply(body={"ok": True}))
    home.route("GET", "/slow", Reply(body={"ok": True}, delay_s=6))
    fetch = qgis_fetcher()
    answer, _ = _fetch_in_python_thread(fetch, f"{home.url}/fast")
    assert getattr(answer, "status", None) == 200 and b'"ok"' in answer.content
    previous = QgsNetworkAccessManager.timeout()
    QgsNetworkAccessManager.setTimeout(1500)
    try:
        failure, elapsed = _fetch_in_python_thread(fetch, f"{home.url}/slow")
    finally:
        QgsNetworkAccessManager.setTimeout(previous)
    assert isinstance(failure, HttpError) and "timed out" in str(failure), failure
    assert elapsed < 5.5, f"QGIS's timeout did not fire in that thread ({elapsed:.1f} s)"
