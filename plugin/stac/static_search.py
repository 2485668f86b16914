"""Walking a static STAC catalog (http(s), file://, a local path or s3://) through the injected fetcher.

A static catalog is a tree of JSON files joined by `child` and `item` links, usually relative. Items
read here get absolute asset hrefs (URLs, s3:// URLs or local paths), so whatever loads them next needs
no idea of where the catalog lives. Catalogs in buckets need an `object_store.ObjectStoreFetcher`.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse, urlsplit, urlunsplit

from .hrefs import resolve_href
from .http import Fetcher, HttpError, local_path, parse_json
from .object_store import is_object_store_url
from .static_catalog import CollectionSummary, summarize_page

#: Deepest nesting of child catalogs followed; guards against link cycles through differing hrefs.
MAX_DEPTH = 16


def join_href(base: str, href: str) -> str:
    """`href` (as written in the document at `base`) as an absolute URL or local path."""
    scheme = urlparse(href).scheme
    if scheme and len(scheme) > 1:
        return href
    if is_object_store_url(base):
        # urljoin knows nothing of s3:// and would return `href` unchanged, leaving "./x.json" to be
        # read as a local file. A leading "/" is the bucket's root, as on a web server.
        if href.startswith("/"):
            parts = urlsplit(base)
            return urlunsplit((parts.scheme, parts.netloc, posixpath.normpath(href), "", ""))
        return resolve_href(href, base)
    base_path = local_path(base)
    if base_path is None or urlparse(base).scheme == "file":
        return urljoin(base, href)
    if os.path.isabs(href):
        return href
    return os.path.normpath(os.path.join(os.path.dirname(str(base_path)), href))


def _links(document: dict, rel: str) -> list[dict]:
    return [link for link in document.get("links") or []
            if isinstance(link, dict) and link.get("rel") == rel and link.get("href")]


def absolutize(item: dict, item_url: str) -> dict:
    """A copy of `item` whose asset and link hrefs are absolute, with a self link to where it was read."""
    out = dict(item)
    assets = {}
    for key, asset in (item.get("assets") or {}).items():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset = {**asset, "href": join_href(item_url, asset["href"])}
        assets[key] = asset
    if "assets" in item:
        out["assets"] = assets
    links = [{**link, "href": join_href(item_url, link["href"])} if isinstance(link, dict)
             and isinstance(link.get("href"), str) else link for link in item.get("links") or []
             if not (isinstance(link, dict) and link.get("rel") == "self")]
    out["links"] = [*links, {"rel": "self", "href": item_url, "type": "application/geo+json"}]
    return out


@dataclass(frozen=True)
class ItemLink:
    """An item link found in the catalog, with the collection it belongs to."""

    url: str
    collection: str | None


class StaticCatalog:
    """A static catalog read lazily, document by document; documents are cached per URL."""

    def __init__(self, url: str, fetch: Fetcher, timeout_s: float = 30.0) -> None:
        path = local_path(url)  # file:// URLs become plain paths: asset hrefs on disk stay paths
        self.url = str(path.resolve()) if path is not None else url
        self._fetch = fetch
        self._timeout_s = timeout_s
        self._cache: dict[str, dict] = {}
        self._final: dict[str, str] = {}

    def document(self, url: str, expected: tuple[str, ...] = ("Catalog", "Collection")) -> dict:
        if url in self._cache:
            return self._cache[url]
        response = self._fetch("GET", url, timeout_s=self._timeout_s)
        document = parse_json(response, "GET")
        if response.url and response.url != url and local_path(url) is None:
            self._final[url] = response.url  # relative links resolve against where a redirect led
        kind = document.get("type") if isinstance(document, dict) else None
        if kind not in expected:
            found = f"type {kind!r}" if kind else "no STAC 'type'"
            raise HttpError("GET", url, response.status,
                            problem=f"not a STAC {' or '.join(expected)} ({found})")
        if kind != "Feature":
            self._cache[url] = document
        return document

    def root(self) -> dict:
        return self.document(self.url)

    def nodes(self, is_canceled: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, dict, str | None]]:
        """(url, document, collection id it belongs to) for every catalog and collection, breadth first."""
        pending: list[tuple[str, int, str | None]] = [(self.url, 0, None)]
        seen: set[str] = set()
        while pending and not is_canceled():
            url, depth, parent_collection = pending.pop(0)
            if url in seen or depth > MAX_DEPTH:
                continue
            seen.add(url)
            document = self.document(url)
            collection = str(document.get("id")) if document.get("type") == "Collection" else parent_collection
            yield url, document, collection
            base = self._final.get(url, url)
            pending.extend((join_href(base, link["href"]), depth + 1, collection) for link in _links(document, "child"))

    def collections(self, page_size: int = 50) -> Iterator[list[CollectionSummary]]:
        """Collections in pages (`CollectionPage`: a malformed one is left out and named in `skipped`)."""
        page: list[tuple[dict, str]] = []
        seen: set[str] = set()
        for url, document, _ in self.nodes():
            if document.get("type") == "Collection" and str(document.get("id")) not in seen:
                seen.add(str(document.get("id")))
                page.append((document, url))
                if len(page) >= page_size:
                    yield summarize_page(page)
                    page = []
        if page:
            yield summarize_page(page)

    def collection(self, collection_id: str) -> dict:
        for _, document, _ in self.nodes():
            if document.get("type") == "Collection" and document.get("id") == collection_id:
                return document
        raise HttpError("GET", self.url, problem=f"the catalog has no collection '{collection_id}'")

    def item_links(self, collections: tuple[str, ...], is_canceled: Callable[[], bool]) -> Iterator[ItemLink]:
        """Item links of the wanted collections (all items when `collections` is empty)."""
        for url, document, collection in self.nodes(is_canceled):
            if collections and collection not in collections:
                continue
            base = self._final.get(url, url)
            for link in _links(document, "item"):
                yield ItemLink(join_href(base, link["href"]), collection)

    def read_item(self, link: ItemLink) -> dict:
        item = self.document(link.url, expected=("Feature",))
        item = absolutize(item, self._final.pop(link.url, link.url))
        if link.collection and not item.get("collection"):
            item["collection"] = link.collection
        return item


def is_broken_link(error: HttpError) -> bool:
    """A missing or malformed file in a catalog (skipped and reported), as opposed to a dead server."""
    return error.status == 404 or error.problem in ("no such file", "is a directory, not a JSON file") or (
        error.status is not None and 200 <= error.status < 300)

