"""Paging through STAC API answers: `next` links (method, body, merge, headers) and per-page bookkeeping.

Shared by API and static-catalog searches: each page drops items that cannot be used (reported in
`skipped`), duplicates that offset-based paging can repeat, and what client-side filters reject.
`PagingGuard` makes every search end: a server can hand out new `next` tokens forever (with the same
items, or none), so paging stops on a page without a new item, on a page cap and on a time budget,
and says why (`PagingStop`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from .items import fatal_problems, item_name, validate_item


@dataclass(frozen=True)
class SearchPage:
    """One page of results, after client-side filtering."""

    items: list[dict]
    matched: int | None
    """The server's numberMatched / context.matched, when it gives one (before client-side filtering)."""
    url: str
    received: int
    """Items kept so far, this page included."""
    skipped: list[str]
    """Why items of this page were dropped (no geometry, no datetime, broken link)."""
    warnings: list[str] = field(default_factory=list)
    """Problems of kept items (no projection metadata, assets without media type)."""
    stop: PagingStop | None = None
    """On the last page, when paging stopped although the catalog offered more (see `PagingGuard`)."""


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: dict | None = None
    headers: dict | None = None


@dataclass(frozen=True)
class BrokenLink:
    problem: str


#: Pages followed at most unless the user sets otherwise: 50,000 items at the usual 100 a page.
DEFAULT_MAX_PAGES = 500
#: Seconds of paging at most unless the user sets otherwise.
DEFAULT_TIME_LIMIT_S = 300.0

NO_NEW_ITEM = "no new item"
REPEATED_LINK = "repeated link"
PAGE_LIMIT = "page limit"
TIME_LIMIT = "time limit"


@dataclass(frozen=True)
class PagingLimits:
    """When a search stops asking for more pages although the catalog offers them."""

    max_pages: int = DEFAULT_MAX_PAGES
    """Pages fetched at most (STAC APIs; a static catalog has no pages to cap)."""
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    """Seconds of paging, after which no further page or item file is asked for (one under way ends)."""

    def __post_init__(self) -> None:
        if isinstance(self.max_pages, bool) or not isinstance(self.max_pages, int) or self.max_pages < 1:
            raise ValueError(f"max_pages must be a positive integer, got {self.max_pages!r}")
        if isinstance(self.time_limit_s, bool) or not isinstance(self.time_limit_s, (int, float)) \
                or not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be a positive number of seconds, got {self.time_limit_s!r}")


#: What a search uses unless told otherwise.
DEFAULT_LIMITS = PagingLimits()


def _items(n: int, what: str = "item") -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


@dataclass(frozen=True)
class PagingStop:
    """Why paging stopped before the catalog's last page, and what was kept."""

    reason: str
    """NO_NEW_ITEM, REPEATED_LINK, PAGE_LIMIT or TIME_LIMIT."""
    pages: int
    """Pages fetched, the last one included."""
    kept: int
    """Items kept from them."""
    elapsed_s: float
    limits: PagingLimits

    @property
    def adjustable(self) -> bool:
        """A limit the user set stopped paging: raising it gets more items."""
        return self.reason in (PAGE_LIMIT, TIME_LIMIT)

    def message(self, where: str = "", what: str = "item") -> str:
        """What the user reads; `where` names the setting that raises the limit (dock or Processing),
        `what` what was paged ("item", "collection")."""
        kept = _items(self.kept, what)
        if self.reason == NO_NEW_ITEM:
            return (f"The server sent page {self.pages} with no new {what} and yet another next link: "
                    f"paging stopped, {kept} kept.")
        if self.reason == REPEATED_LINK:
            return (f"The server sent page {self.pages} with a next link already followed: "
                    f"paging stopped, {kept} kept.")
        if self.reason == PAGE_LIMIT:
            text = f"Paging stopped after {self.pages} pages (the page limit): {kept} kept, the catalog has more"
        else:
            text = (f"Paging stopped after {self.elapsed_s:.0f} s (the time limit of {self.limits.time_limit_s:g} s),"
                    f" at page {self.pages}: {kept} kept, the catalog has more")
        return f"{text}; raise it in {where}." if where else f"{text}."


def page_notes(page: SearchPage, where: str = "") -> list[str]:
    """What a search that is not the dock's must still tell its user about a page: the items left out
    (no geometry, unreadable dates, broken links) and why paging stopped early, if it did."""
    notes = [f"item left out: {reason}" for reason in page.skipped]
    if page.stop is not None:
        notes.append(page.stop.message(where))
    return notes


def item_key(feature: Any) -> tuple[str, str]:
    """What tells items apart across pages: collection and id."""
    collection = feature.get("collection", "") if isinstance(feature, dict) else ""
    return str(collection), item_name(feature)


class PagingGuard:
    """Asked after each page whether to follow the next link: every search loop ends through it."""

    def __init__(self, limits: PagingLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.pages = 0
        self._clock = clock
        self._started = clock()
        self._ids: set[tuple[str, str]] = set()
        self._requests: set[str] = set()

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def out_of_time(self) -> bool:
        return self.elapsed_s >= self.limits.time_limit_s

    def sent(self, request: Request) -> None:
        self._requests.add(request_key(request))

    def after_page(self, features: list[Any], following: Request | None, kept: int) -> PagingStop | None:
        """Why not to ask for `following` (the page's next request), or None to go on.

        Ids count as received whether or not the item is kept, so a page that a local filter empties
        is no reason to stop; the server's repeats are."""
        self.pages += 1
        keys = {item_key(f) for f in features if isinstance(f, dict)}
        new = bool(keys - self._ids)
        self._ids |= keys
        if following is None:
            return None
        if not new:
            return self.stop(NO_NEW_ITEM, kept)
        if request_key(following) in self._requests:
            return self.stop(REPEATED_LINK, kept)
        if self.pages >= self.limits.max_pages:
            return self.stop(PAGE_LIMIT, kept)
        if self.out_of_time():
            return self.stop(TIME_LIMIT, kept)
        return None

    def stop(self, reason: str, kept: int) -> PagingStop:
        return PagingStop(reason, self.pages, kept, self.elapsed_s, self.limits)


class PageCollector:
    """Running state of a search: drops invalid and duplicate items, applies client filters, counts."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.received = 0
        self.seen: set[tuple[str, str]] = set()

    @property
    def full(self) -> bool:
        return bool(self.max_items) and self.received >= self.max_items

    def page(self, features: list[Any], matcher: Callable[[dict], bool] | None, url: str,
             matched: int | None) -> SearchPage:
        kept, skipped, warnings = [], [], []
        for feature in features:
            if isinstance(feature, BrokenLink):
                skipped.append(feature.problem)
                continue
            fatal = fatal_problems(feature)
            if fatal:
                skipped.append(f"{'; '.join(fatal)} (from {url})")
                continue
            if matcher is not None and not matcher(feature):
                continue
            key = item_key(feature)
            if key in self.seen:
                continue
            if self.max_items and self.received + len(kept) >= self.max_items:
                break
            self.seen.add(key)
            kept.append(feature)
            warnings.extend(validate_item(feature))
        self.received += len(kept)
        return SearchPage(kept, matched, url, self.received, skipped, warnings)


def request_key(request: Request) -> str:
    return json.dumps([request.method, request.url, request.body], sort_keys=True, default=str)


def get_params(body: dict) -> dict[str, str]:
    """A POST search body as GET query parameters."""
    params = {}
    for key, value in body.items():
        if key == "sortby":
            params[key] = ",".join(("+" if s["direction"] == "asc" else "-") + s["field"] for s in value)
        elif isinstance(value, list):
            params[key] = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            params[key] = json.dumps(value)
        else:
            params[key] = str(value)
    return params


def next_request(document: dict, current: Request) -> Request | None:
    """The request for the next page, per the STAC API paging rules (method, body, merge, headers)."""
    link = next((lk for lk in document.get("links") or []
                 if isinstance(lk, dict) and lk.get("rel") == "next" and lk.get("href")), None)
    if link is None:
        return None
    method = str(link.get("method") or "GET").upper()
    url = urljoin(current.url, str(link["href"]))
    headers = link.get("headers") if isinstance(link.get("headers"), dict) else None
    if method != "POST":
        return Request(method, url, None, headers)
    body = link.get("body")
    if not isinstance(body, dict):
        body = current.body
    elif link.get("merge"):
        body = {**(current.body or {}), **body}
    return Request("POST", url, body, headers)
