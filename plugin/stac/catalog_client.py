"""One client for STAC APIs and static catalogs: capabilities, collections, item search with paging.

What goes to the server is decided by the API's conformance classes, never by trying: a light API
(rustac) answers `filter`/`query`/`sortby` with zero items instead of an error. Whatever the server
cannot do is done here on each page, so the user gets the same items either way. The dock's task,
the Processing algorithm and the tests all search through this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode, urljoin

from .cql2 import Cql2Error, parse_cql2_text
from .filters import cloud_filter, combine, item_matcher
from .http import Fetcher, HttpError, parse_json
from .items import format_datetime, sort_by_date
from .paging import (
    TIME_LIMIT,
    BrokenLink,
    PageCollector,
    PagingGuard,
    PagingLimits,
    Request,
    SearchPage,
    get_params,
    next_request,
)
from .search_query import STATIC_CAPABILITIES, Capabilities, SearchPlan, SearchQuery
from .sources import Source, SourceKind, static_catalog_url
from .static_catalog import CollectionSummary, summarize_page
from .static_search import StaticCatalog, is_broken_link

# What a search needs, importable with the client that runs it (the dock, Processing and the tests do).
__all__ = [
    "Capabilities",
    "CatalogClient",
    "Cql2Error",
    "PagingLimits",
    "SearchPage",
    "SearchPlan",
    "SearchQuery",
    "sort_by_date",
]

# The id tie-breaker is not decoration: pgstac's token paging sorted on datetime alone skips and
# repeats items that share a datetime (all tiles of one satellite pass), as the tests show.
_SORT_BY_DATE = [{"field": "properties.datetime", "direction": "asc"}, {"field": "id", "direction": "asc"}]


class CatalogClient:
    """Talks to one source; every request goes through `fetch`, so QGIS can route it through its network stack."""

    def __init__(self, source: Source, fetch: Fetcher, timeout_s: float = 30.0) -> None:
        if source.kind == SourceKind.ZARR:
            raise ValueError(f"{source.name} ({source.url}) is a Zarr cube, not a STAC catalog")
        self.source = source
        self._fetch = fetch
        self._timeout_s = timeout_s
        self._landing: dict | None = None
        self._capabilities: Capabilities | None = None
        self._static = (StaticCatalog(static_catalog_url(source.url), fetch, timeout_s)
                        if source.kind == SourceKind.STATIC else None)

    # ---- landing page and capabilities ----

    def _get_json(self, url: str, method: str = "GET", body: Any = None, headers: dict | None = None) -> Any:
        response = self._fetch(method, url, json_body=body, headers=headers, timeout_s=self._timeout_s)
        return parse_json(response, method)

    def landing(self) -> dict:
        if self._static is not None:
            return self._static.root()
        if self._landing is None:
            document = self._get_json(self.source.url)
            if not isinstance(document, dict) or not ("links" in document or "conformsTo" in document):
                raise HttpError("GET", self.source.url, 200, problem="not a STAC API landing page (no links)")
            self._landing = document
        return self._landing

    def _link(self, rel: str, method: str | None = None) -> str | None:
        for link in self.landing().get("links") or []:
            if isinstance(link, dict) and link.get("rel") == rel and link.get("href"):
                if method is None or str(link.get("method", "GET")).upper() == method:
                    return urljoin(self.source.url, link["href"])
        return None

    def _endpoint(self, rel: str, path: str, method: str | None = None) -> str:
        return self._link(rel, method) or f"{self.source.url.rstrip('/')}/{path}"

    def capabilities(self) -> Capabilities:
        if self._static is not None:
            return STATIC_CAPABILITIES
        if self._capabilities is None:
            landing = self.landing()
            classes = landing.get("conformsTo")
            if not isinstance(classes, list):
                conformance = self._get_json(self._endpoint("conformance", "conformance"))
                classes = conformance.get("conformsTo", []) if isinstance(conformance, dict) else []
            self._capabilities = Capabilities.from_conformance(
                [str(c) for c in classes], search_link=self._link("search") is not None)
        return self._capabilities

    def test(self) -> str:
        """A one-line answer for the "Test connection" button; raises HttpError when it fails."""
        landing = self.landing()
        title = landing.get("title") or landing.get("id") or self.source.url
        if self._static is not None:
            return f"Connected: {title}, static catalog"
        return f"Connected: {title}, {len(self.capabilities().conformance)} conformance classes"

    # ---- collections ----

    def collections(self, page_size: int | None = None) -> Iterator[list[CollectionSummary]]:
        """Collections page by page, following `next` links (`page_size` asks the server for `limit`)."""
        if self._static is not None:
            yield from self._static.collections(page_size or 50)
            return
        base = self._endpoint("data", "collections")
        request = Request("GET", f"{base}?{urlencode({'limit': page_size})}" if page_size else base)
        # The same guard as searches: a server handing out next links forever (new tokens, the same
        # collections) is stopped, and the last page says why among its notes.
        guard, kept, listed_ids = PagingGuard(PagingLimits()), 0, set()
        while request is not None:
            guard.sent(request)
            document = self._get_json(request.url, request.method, request.body, request.headers)
            if not isinstance(document, dict) or not isinstance(document.get("collections"), list):
                raise HttpError(request.method, request.url, 200, problem="not a STAC collections list")
            listed = [c for c in document["collections"] if isinstance(c, dict)]
            page = summarize_page([(c, _self_href(c) or f"{base.rstrip('/')}/{quote(str(c.get('id')))}")
                                   for c in listed])
            page[:] = [c for c in page if c.id not in listed_ids]  # a server repeating itself lists each once
            listed_ids.update(c.id for c in page)
            kept += len(page)
            following = next_request(document, request)
            stop = guard.after_page(listed, following, kept)
            if stop is not None:
                page.skipped.append(stop.message(what="collection"))
            if not page and not page.skipped:
                return
            yield page
            request = None if stop is not None else following

    def collection(self, collection_id: str) -> dict:
        if self._static is not None:
            return self._static.collection(collection_id)
        url = f"{self._endpoint('data', 'collections').rstrip('/')}/{quote(collection_id, safe='')}"
        document = self._get_json(url)
        if not isinstance(document, dict) or document.get("type") != "Collection":
            raise HttpError("GET", url, 200, problem="not a STAC Collection")
        return document

    # ---- search ----

    def plan(self, query: SearchQuery) -> SearchPlan:
        """Decide what the server filters and what is filtered here; Cql2Error if the CQL2 cannot run."""
        if self._static is not None:
            local = ["collections", "bbox", "datetime", "cloud cover", "CQL2"]
            wanted = [bool(query.collections), query.bbox is not None,
                      query.start is not None or query.end is not None, query.cloud_limit is not None,
                      query.cql2 is not None]
            return SearchPlan("static", self._static.url, None, (),
                              tuple(name for name, on in zip(local, wanted) if on),
                              query.cloud_limit, parse_cql2_text(query.cql2) if query.cql2 else None)
        caps = self.capabilities()
        cloud = query.cloud_limit
        body: dict[str, Any] = {"limit": query.page_size}
        server = []
        if query.collections:
            body["collections"] = list(query.collections)
            server.append("collections")
        if query.bbox is not None:
            body["bbox"] = list(query.bbox)
            server.append("bbox")
        if query.start is not None or query.end is not None:
            start = format_datetime(query.start) if query.start else ".."
            end = format_datetime(query.end) if query.end else ".."
            body["datetime"] = f"{start}/{end}"
            server.append("datetime")
        if caps.sort:
            body["sortby"] = _SORT_BY_DATE
            server.append("sort by date")
        filters = (["cloud cover"] if cloud is not None else []) + (["CQL2"] if query.cql2 else [])
        parsed, parse_error = None, None
        if query.cql2:
            try:
                parsed = parse_cql2_text(query.cql2)
            except Cql2Error as error:
                parse_error = error
        if filters and caps.filter_cql2_json and parse_error is None:
            body["filter"] = combine(cloud_filter(cloud) if cloud is not None else None, parsed)
            body["filter-lang"] = "cql2-json"
            return self._post_plan(query, body, server + filters, ())
        if filters and caps.filter_cql2_text:
            # A server that takes CQL2 only as text takes it as GET parameters.
            texts = ([f'"eo:cloud_cover" <= {cloud}'] if cloud is not None else []) + (
                [f"({query.cql2})"] if query.cql2 else [])
            params = get_params({**body, "limit": _limit(query, ())})
            params.update({"filter": " AND ".join(texts), "filter-lang": "cql2-text"})
            return SearchPlan("GET", self._endpoint("search", "search", "GET"), params, tuple(server + filters), ())
        if parse_error is not None:
            raise parse_error
        client = []
        if cloud is not None and caps.query:
            body["query"] = {"eo:cloud_cover": {"lte": cloud}}
            server.append("cloud cover")
        elif cloud is not None:
            client.append("cloud cover")
        if parsed is not None:
            client.append("CQL2")
        return self._post_plan(query, body, server, tuple(client),
                               cloud if "cloud cover" in client else None, parsed)

    def _post_plan(self, query: SearchQuery, body: dict, server: list[str], client: tuple[str, ...],
                   client_cloud: float | None = None, client_cql2: Any = None) -> SearchPlan:
        body = {**body, "limit": _limit(query, client)}
        return SearchPlan("POST", self._endpoint("search", "search", "POST"), body, tuple(server), client,
                          client_cloud, client_cql2)

    def search(self, query: SearchQuery, is_canceled: Callable[[], bool] = lambda: False) -> Iterator[SearchPage]:
        """Pages of items as they arrive. Stops quietly when `is_canceled()` turns true; a failure
        raises HttpError after the pages already yielded, which the caller keeps. When paging stops
        although the server offers more (`query.paging`), the last page says why (`SearchPage.stop`)."""
        plan = self.plan(query)
        if self._static is not None:
            yield from _search_static(self._static, query, plan, is_canceled)
            return
        matcher = item_matcher(max_cloud=plan.client_cloud, cql2=plan.client_cql2) if plan.client_side else None
        if plan.method == "GET":
            request: Request | None = Request("GET", f"{plan.url}?{urlencode(plan.body or {})}")
        else:
            request = Request("POST", plan.url, plan.body)
        pages = PageCollector(query.max_items)
        guard = PagingGuard(query.paging)
        while request is not None and not is_canceled():
            guard.sent(request)
            document = self._get_json(request.url, request.method, request.body, request.headers)
            features = document.get("features") if isinstance(document, dict) else None
            if not isinstance(features, list):
                raise HttpError(request.method, request.url, 200,
                                problem="not a STAC ItemCollection (no 'features' list)")
            context = document.get("context") if isinstance(document.get("context"), dict) else {}
            matched = document.get("numberMatched", context.get("matched"))
            page = pages.page(features, matcher, request.url, matched if isinstance(matched, int) else None)
            following = None if pages.full else next_request(document, request)
            stop = guard.after_page(features, following, pages.received)
            yield replace(page, stop=stop) if stop else page
            if stop:
                return
            request = following


def _limit(query: SearchQuery, client_side: tuple[str, ...]) -> int:
    """Items per page to ask for: no more than wanted, unless filtering here drops some."""
    if query.max_items and not client_side:
        return min(query.page_size, query.max_items)
    return query.page_size


def _search_static(catalog: StaticCatalog, query: SearchQuery, plan: SearchPlan,
                   is_canceled: Callable[[], bool]) -> Iterator[SearchPage]:
    """Read every item of the wanted collections and filter here, a page per `page_size` items read.
    A tree of files has no next tokens to cap, but a slow or endless one runs into the time limit."""
    matcher = item_matcher(query.bbox, query.start, query.end, plan.client_cloud, plan.client_cql2)
    pages = PageCollector(query.max_items)
    guard = PagingGuard(query.paging)
    batch: list[Any] = []
    for link in catalog.item_links(query.collections, lambda: is_canceled() or guard.out_of_time()):
        if is_canceled() or guard.out_of_time():
            break
        try:
            batch.append(catalog.read_item(link))
        except HttpError as error:
            if not is_broken_link(error):
                raise
            batch.append(BrokenLink(f"broken item link: {error}"))
        if len(batch) >= query.page_size:
            yield pages.page(batch, matcher, catalog.url, None)
            guard.after_page(batch, None, pages.received)
            batch = []
            if pages.full:
                return
    if is_canceled():
        return
    page = pages.page(batch, matcher, catalog.url, None)
    guard.after_page(batch, None, pages.received)
    if guard.out_of_time():
        yield replace(page, stop=guard.stop(TIME_LIMIT, pages.received))
    elif batch or pages.received == 0:
        yield page


def _self_href(document: dict) -> str | None:
    for link in document.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None
