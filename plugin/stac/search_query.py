"""A search as the user sets it, what a STAC API says it can do, and how a search will run.

The plain values `catalog_client.CatalogClient` works with: `SearchQuery` (checked on creation),
`Capabilities` (from the API's conformance classes) and `SearchPlan` (what the server does, what is
applied here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .items import Bbox
from .paging import DEFAULT_LIMITS, PagingLimits


@dataclass(frozen=True)
class SearchQuery:
    """A search as the user sets it in the dock or the Processing dialog."""

    collections: tuple[str, ...]
    bbox: Bbox | None
    """west, south, east, north in lon/lat; west > east crosses the antimeridian."""
    start: datetime | None
    end: datetime | None
    """Inclusive; naive datetimes are taken as UTC."""
    max_cloud: float | None
    """Percent, inclusive; None or >= 100 means no cloud filter (items without eo:cloud_cover stay)."""
    cql2: str | None = None
    """CQL2 text, ANDed with the rest."""
    page_size: int = 100
    max_items: int = 0
    """Stop after this many items; 0 for all."""
    paging: PagingLimits = DEFAULT_LIMITS
    """Page cap and time budget: paging ends even on a server that offers pages forever."""

    def __post_init__(self) -> None:
        if isinstance(self.collections, str) or not all(isinstance(c, str) and c for c in self.collections):
            raise ValueError(f"collections must be a sequence of collection ids, got {self.collections!r}")
        object.__setattr__(self, "collections", tuple(self.collections))
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ValueError(f"bbox must be (west, south, east, north), got {self.bbox!r}")
            west, south, east, north = (float(v) for v in self.bbox)
            if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
                raise ValueError(f"bbox must be in lon/lat degrees with south <= north, got {self.bbox!r}")
            object.__setattr__(self, "bbox", (west, south, east, north))
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise ValueError(f"{name} must be a datetime, got {value!r}")
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start.isoformat()} is after end {self.end.isoformat()}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise ValueError(f"max_cloud must be between 0 and 100 %, got {self.max_cloud!r}")
        if self.cql2 is not None and not self.cql2.strip():
            object.__setattr__(self, "cql2", None)
        if not isinstance(self.page_size, int) or self.page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {self.page_size!r}")
        if not isinstance(self.max_items, int) or self.max_items < 0:
            raise ValueError(f"max_items must be 0 (all) or a positive integer, got {self.max_items!r}")
        if not isinstance(self.paging, PagingLimits):
            raise ValueError(f"paging must be PagingLimits, got {self.paging!r}")

    @property
    def cloud_limit(self) -> float | None:
        """The cloud filter actually applied (None when it would not exclude anything)."""
        return self.max_cloud if self.max_cloud is not None and self.max_cloud < 100 else None


@dataclass(frozen=True)
class Capabilities:
    """What a STAC API says it can do (its conformance classes); all False for a static catalog."""

    item_search: bool
    filter_cql2_text: bool
    filter_cql2_json: bool
    query: bool
    sort: bool
    collections_paging: bool
    conformance: tuple[str, ...] = ()

    @classmethod
    def from_conformance(cls, classes: list[str], search_link: bool = False) -> Capabilities:
        # Loose matching on purpose: versions differ (v1.0.0, v1.0.0-rc.2, v1.1.0 for sort).
        def has(pattern: str) -> bool:
            return any(re.search(pattern, c) for c in classes)

        filter_ = has(r"/item-search#filter")
        text = has(r"/cql2/[^/]+/conf/cql2-text")
        json_ = has(r"/cql2/[^/]+/conf/cql2-json")
        return cls(
            item_search=has(r"/item-search/?$") or search_link,
            filter_cql2_text=filter_ and text,
            filter_cql2_json=filter_ and (json_ or not text),
            query=has(r"/item-search#query"),
            sort=has(r"/item-search#sort"),
            collections_paging=has(r"/collection-search"),
            conformance=tuple(classes),
        )


STATIC_CAPABILITIES = Capabilities(False, False, False, False, False, False)


@dataclass(frozen=True)
class SearchPlan:
    """How a query will run: what the server does and what is applied here."""

    method: str
    """"POST", "GET" (CQL2 text servers) or "static"."""
    url: str
    body: dict | None
    """POST body, or the query parameters of a GET."""
    server_side: tuple[str, ...]
    client_side: tuple[str, ...]
    client_cloud: float | None = None
    client_cql2: Any = None

    def describe(self) -> str:
        done_here = ", ".join(self.client_side) if self.client_side else "nothing"
        return f"server: {', '.join(self.server_side) or 'nothing'}; applied locally: {done_here}"
