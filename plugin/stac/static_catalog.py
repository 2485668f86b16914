"""Reading a static STAC catalog from disk: the collections it links to, following child catalogs.

The dock's demo cube goes through here (plain file reads, no HTTP stack); any other static catalog,
on disk or over HTTP, is read by `static_search.StaticCatalog` through a fetcher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .bands import BandInfo, list_bands


class CatalogError(Exception):
    """A catalog file that cannot be read or is not STAC; the message names the file."""


@dataclass(frozen=True)
class CollectionSummary:
    """What the dock shows of a collection before any search."""

    id: str
    title: str
    description: str
    license: str
    bbox: tuple[float, float, float, float] | None
    """Spatial extent in lon/lat (first bbox of the collection)."""
    interval: tuple[str | None, str | None]
    """Temporal extent as ISO strings; None for an open end."""
    href: str
    """Where the collection JSON was read from."""
    bands: tuple[BandInfo, ...] = ()
    """Its bands, from item_assets (eo:bands, raster:bands) or, failing that, its summaries."""
    keywords: tuple[str, ...] = ()


def _read_json(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as stream:
            document = json.load(stream)
    except OSError as error:
        raise CatalogError(f"Cannot read {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise CatalogError(f"{path} is not valid JSON (line {error.lineno}: {error.msg})") from error
    if not isinstance(document, dict) or "type" not in document:
        raise CatalogError(f"{path} is not a STAC document (no 'type')")
    return document


class CollectionError(ValueError):
    """A collection whose metadata cannot be summarised; the message names its id and URL."""


class CollectionPage(list):
    """A page of collection summaries, with the collections left out of it and why (`skipped`)."""

    def __init__(self, summaries: list[CollectionSummary] | None = None, skipped: list[str] | None = None):
        super().__init__(summaries or [])
        self.skipped: list[str] = list(skipped or [])


def summarize_page(documents: list[tuple[dict, str]]) -> CollectionPage:
    """Summaries of (document, href) pairs; a malformed collection is left out and named in `skipped`,
    so one bad collection never hides the good ones."""
    page = CollectionPage()
    for document, href in documents:
        try:
            page.append(summarize_collection(document, href))
        except CollectionError as error:
            page.skipped.append(str(error))
    return page


def summarize_collection(document: dict, href: str) -> CollectionSummary:
    """The summary of a Collection document read from `href` (an API URL, a file URL or a path)."""
    try:
        return _summarize(document, href)
    except (TypeError, ValueError, AttributeError, IndexError) as error:
        name = document.get("id") if isinstance(document, dict) else None
        raise CollectionError(f"collection '{name}' from {href} has malformed metadata ({error}); "
                              "it is left out") from None


def _summarize(document: dict, href: str) -> CollectionSummary:
    extent = document.get("extent") or {}
    bboxes = (extent.get("spatial") or {}).get("bbox") or [None]
    intervals = (extent.get("temporal") or {}).get("interval") or [[None, None]]
    first = bboxes[0] if isinstance(bboxes[0], list) else None
    bbox = None
    if first and len(first) in (4, 6):
        corners = first if len(first) == 4 else [first[0], first[1], first[3], first[4]]
        bbox = tuple(float(v) for v in corners)
    start, end = [*(intervals[0] or []), None, None][:2]
    return CollectionSummary(
        id=str(document.get("id", "")),
        title=str(document.get("title") or document.get("id", "")),
        description=str(document.get("description", "")),
        license=str(document.get("license", "")),
        bbox=bbox,  # type: ignore[arg-type]
        interval=(start, end),
        href=href,
        bands=tuple(list_bands(document)),
        keywords=tuple(str(k) for k in document.get("keywords") or [] if isinstance(k, (str, int, float))),
    )


def read_collections(catalog: Path, max_depth: int = 8) -> list[CollectionSummary]:
    """Collections reachable from ``catalog`` through ``child`` links, sorted by id."""
    found: dict[str, CollectionSummary] = {}
    pending = [(catalog.resolve(), 0)]
    seen: set[Path] = set()
    while pending:
        path, depth = pending.pop()
        if path in seen or depth > max_depth:
            continue
        seen.add(path)
        document = _read_json(path)
        if document["type"] == "Collection":
            found.setdefault(document.get("id", str(path)), summarize_collection(document, str(path)))
        for link in document.get("links", []):
            if link.get("rel") == "child" and "href" in link and "://" not in link["href"]:
                pending.append(((path.parent / link["href"]).resolve(), depth + 1))
    return sorted(found.values(), key=lambda c: c.id)
