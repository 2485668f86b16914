"""What the dock runs in the background for the Brazil Data Cube's point services, WTSS and WLTS.

As in `source_tasks`: each function takes the running CallTask first and plain values after it; every
request goes through QGIS's network stack (proxy, SSL exceptions, the connection's authcfg within its
own site), and cancelling the task aborts the request in flight.
"""

from __future__ import annotations

from ..cube.wlts_client import Trajectory, WltsClient
from ..cube.wtss_reader import WtssClient, WtssCoverage, WtssReader
from ..network import qgis_fetcher
from ..stac.bands import BandInfo
from ..stac.http import Fetcher
from ..stac.sources import Source, SourceKind
from ..stac.static_catalog import CollectionSummary


def service_fetcher(task, source: Source) -> Fetcher:
    return qgis_fetcher(source.authcfg, task.feedback if task is not None else None, scope=source.url)


def coverage_summary(coverage: WtssCoverage) -> CollectionSummary:
    """A WTSS coverage shown like a collection: its attributes are its bands."""
    attributes = ", ".join(a.name + (f" ({a.common_name})" if a.common_name and a.common_name != a.name else "")
                           for a in coverage.attributes)
    dates = coverage.timeline
    bands = tuple(BandInfo(name=a.name, asset_key=a.name, common_name=a.common_name or None, scale=a.scale,
                           offset=a.offset, nodata=a.nodata, data_type=a.data_type or None, scaling="bands")
                  for a in coverage.attributes)
    text = f"{coverage.description}\n\nAttributes: {attributes}\n\n{len(dates)} dates (WTSS coverage)"
    return CollectionSummary(id=coverage.name, title=coverage.title or coverage.name, description=text.strip(),
                             license="", bbox=coverage.bbox(),
                             interval=(dates[0].isoformat() if dates else None,
                                       dates[-1].isoformat() if dates else None),
                             href=coverage.url, bands=bands)


def service_collections(task, source: Source) -> list[CollectionSummary]:
    """A WTSS service's coverages (described, with their attributes) or a WLTS service's collections,
    each streamed to the dock as ("collections", [summary]) as it is described."""
    fetch = service_fetcher(task, source)
    found: list[CollectionSummary] = []
    if source.kind == SourceKind.WTSS:
        client = WtssClient(source.url, fetch)
        for name in client.list_coverages():
            if task.isCanceled():
                break
            summary = coverage_summary(client.describe_coverage(name))
            found.append(summary)
            task.partial.emit(("collections", [summary]))
        return found
    client = WltsClient(source.url, fetch)
    for name in client.list_collections():
        if task.isCanceled():
            break
        described = client.describe_collection(name)
        text = "\n\n".join(part for part in (
            described.description, f"Classification system: {described.classification_system}"
            if described.classification_system else "", "WLTS collection: a click shows its classes at the point")
            if part)
        summary = CollectionSummary(id=name, title=name, description=text, license="", bbox=None,
                                    interval=(described.period[0] or None, described.period[1] or None),
                                    href=f"{client.url}/describe_collection?collection_id={name}")
        found.append(summary)
        task.partial.emit(("collections", [summary]))
    return found


def test_service(task, source: Source) -> str:
    fetch = service_fetcher(task, source)
    if source.kind == SourceKind.WTSS:
        names = WtssClient(source.url, fetch).list_coverages()
        return f"Connected: WTSS with {len(names)} coverages ({', '.join(names[:5])})"
    names = WltsClient(source.url, fetch).list_collections()
    return f"Connected: WLTS with {len(names)} collections ({', '.join(names[:5])})"


def open_wtss_reader(task, source: Source, coverage: str) -> WtssReader:
    """A reader of one coverage, its requests cancelled with ``task`` (the click that opened it)."""
    return WtssReader(source.url, coverage, service_fetcher(task, source))


def read_trajectory(task, source: Source, lon: float, lat: float, collections: list[str]) -> Trajectory:
    return WltsClient(source.url, service_fetcher(task, source)).trajectory(lon, lat, collections)
