"""What the Browse tab runs in the background: pure STAC/Zarr calls with QGIS's network stack.

Each function takes the running CallTask first (for cancel, progress and partial results) and
only plain values after it, copied on the main thread. That includes `credentials`, the S3 keys of
the source: the caller reads them from the auth manager on the main thread (QGIS 3.22's can deadlock
when asked from a worker while the GUI thread uses it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qgis.core import QgsFeedback

from ..cube.zarr_cube import describe_zarr
from ..network import qgis_fetcher, s3_credentials
from ..stac.catalog_client import CatalogClient, SearchQuery
from ..stac.http import Fetcher, HttpError
from ..stac.items import sort_by_date
from ..stac.object_store import ObjectStoreFetcher
from ..stac.paging import PagingStop
from ..stac.sources import Source, SourceKind
from ..stac.static_catalog import CollectionSummary
from .service_tasks import service_collections, test_service


def _feedback(task) -> QgsFeedback:
    """The task's QgsFeedback: cancelled with the task, so a request in flight is aborted too."""
    return task.feedback


def http_authcfg(source: Source) -> str:
    """The auth configuration for the catalog's HTTP requests: an S3 source's holds object-store
    keys, which must never be sent as HTTP credentials."""
    return "" if source.s3 is not None else source.authcfg


def catalog_fetcher(task, source: Source, credentials: Mapping[str, str] | None = None) -> Fetcher:
    """QGIS's network stack for http(s) documents; GDAL, with the source's S3 options and `credentials`,
    for documents in a bucket (a static catalog at s3://...). The user's proxy reaches GDAL through
    the process-wide options the plugin set at start (`apply_gdal_http_settings`): no QgsSettings
    object is made in this worker thread."""
    http = qgis_fetcher(http_authcfg(source), _feedback(task), scope=source.url)
    return ObjectStoreFetcher(http, source.s3, credentials)


def client_for(task, source: Source, credentials: Mapping[str, str] | None = None) -> CatalogClient:
    return CatalogClient(source, catalog_fetcher(task, source, credentials))


def _zarr_keys(source: Source, credentials: Mapping[str, str] | None) -> Mapping[str, str]:
    # Callers that did not read the keys on the main thread get them here, as before.
    return credentials if credentials is not None else s3_credentials(source.authcfg)


def _describe_zarr(source: Source, credentials: Mapping[str, str] | None, headers: Mapping[str, str] | None):
    # `headers`: the auth config's HTTP headers, read on the main thread, for a protected store on http(s)
    return describe_zarr(source.url, source.s3, _zarr_keys(source, credentials), auth_headers=headers or None)


def test_source(task, source: Source, credentials: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> str:
    if source.kind in (SourceKind.WTSS, SourceKind.WLTS):
        return test_service(task, source)
    if source.kind == SourceKind.ZARR:
        description = _describe_zarr(source, credentials, headers)
        return f"Connected: Zarr cube with {len(description.variables)} variables, {len(description.times)} dates"
    return client_for(task, source, credentials).test()


def zarr_collection(description) -> CollectionSummary:
    """A Zarr cube shown like a collection: its variables are its bands."""
    times = description.times
    variables = ", ".join(f"{v.name} {tuple(v.dims)}" for v in description.variables)
    text = (description.description or "") + f"\n\nVariables: {variables}"
    return CollectionSummary(
        id=description.url.rstrip("/").rsplit("/", 1)[-1],
        title=description.title or description.url.rstrip("/").rsplit("/", 1)[-1],
        description=text.strip(),
        license="",
        bbox=description.bbox_lonlat,
        interval=(times[0].isoformat() if times else None, times[-1].isoformat() if times else None),
        href=description.url,
    )


def list_collections(task, source: Source, credentials: Mapping[str, str] | None = None,
                     headers: Mapping[str, str] | None = None) -> list[CollectionSummary]:
    """All collections, page after page; each page is also streamed to the dock as it arrives."""
    if source.kind in (SourceKind.WTSS, SourceKind.WLTS):  # coverages, or land-use collections
        return service_collections(task, source)
    if source.kind == SourceKind.ZARR:
        description = _describe_zarr(source, credentials, headers)
        task.partial.emit(("zarr", description))
        return [zarr_collection(description)]
    collections: list[CollectionSummary] = []
    for page in client_for(task, source, credentials).collections():
        collections.extend(page)
        task.partial.emit(("collections", list(page)))
        if getattr(page, "skipped", None):  # malformed collections left out, named with their URL
            task.partial.emit(("skipped", list(page.skipped)))
        if task.isCanceled():
            break
    return collections


@dataclass
class SearchOutcome:
    """Items received (kept even when the search failed midway), problems, and the error if any."""

    items: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    matched: int | None = None
    error: str = ""
    stop: PagingStop | None = None
    """Why paging stopped although the catalog offered more (page cap, time limit, a server repeating itself)."""
    prepared: Any = None
    """What ``prepare.last`` made of all the items, in the task's thread (None without ``prepare``)."""


def run_search(task, source: Source, query: SearchQuery,
               credentials: Mapping[str, str] | None = None, prepare: Any = None) -> SearchOutcome:
    """The search's pages, each streamed as (items so far, matched, ``prepare.page(page items)``) while
    it arrives. ``prepare`` (the dock's) does in this thread what the main thread should not: whatever
    it makes of a page, and of all the items at the end (``prepare.last``, in the outcome)."""
    outcome = SearchOutcome()
    try:
        for page in client_for(task, source, credentials).search(query, is_canceled=task.isCanceled):
            outcome.items.extend(page.items)
            outcome.skipped.extend(page.skipped)
            outcome.matched = page.matched if page.matched is not None else outcome.matched
            outcome.stop = page.stop or outcome.stop
            prepared = prepare.page(page.items) if prepare is not None else None
            task.partial.emit((len(outcome.items), outcome.matched, prepared))
            if outcome.matched:
                task.setProgress(min(100.0, 100.0 * len(outcome.items) / outcome.matched))
    except (HttpError, ValueError) as error:  # ValueError: CQL2 that cannot be parsed or evaluated here
        outcome.error = str(error)
    outcome.items = sort_by_date(outcome.items)
    if prepare is not None and not task.isCanceled():
        outcome.prepared = prepare.last(outcome.items)
    return outcome


THUMBNAIL_PX = 40


def thumbnail_href(item: dict) -> str | None:
    assets = item.get("assets", {})
    for key, asset in assets.items():
        if key == "thumbnail" or "thumbnail" in (asset.get("roles") or []):
            return asset.get("href")
    return None


def fetch_thumbnails(task, source: Source, items: list[dict],
                     credentials: Mapping[str, str] | None = None) -> int:
    """Thumbnails streamed as (item id, QImage) while they arrive; a missing one is just skipped.
    Over http(s), from local files, and from the source's bucket (with its keys)."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage

    fetch = catalog_fetcher(task, source, credentials)
    done = 0
    for number, item in enumerate(items, start=1):
        if task.isCanceled():
            break
        href = thumbnail_href(item)
        if not href:
            continue
        try:
            content = fetch("GET", href).content
        except HttpError:
            continue
        image = QImage.fromData(content)
        if not image.isNull():
            thumbnail = image.scaled(THUMBNAIL_PX, THUMBNAIL_PX, Qt.AspectRatioMode.KeepAspectRatio)
            task.partial.emit((item.get("id", ""), thumbnail))
            done += 1
        task.setProgress(100.0 * number / len(items))
    return done
