"""Paging through STAC API answers: `next` links (method, body, merge, headers) and per-page bookkeeping.

Shared by API and static-catalog searches: each page drops items that cannot be used (reported in
`skipped`), duplicates that offset-based paging can repeat, and what client-side filters reject.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: dict | None = None
    headers: dict | None = None


@dataclass(frozen=True)
class BrokenLink:
    problem: str


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
                skipped.append("; ".join(fatal))
                continue
            if matcher is not None and not matcher(feature):
                continue
            key = (str(feature.get("collection", "")), item_name(feature))
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
