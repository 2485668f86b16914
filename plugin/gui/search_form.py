"""The Browse tab's search inputs: extent, dates, cloud cover, CQL2 and paging limits.

Set up once (the last year, the saved paging limits), filled in from the chosen collection, and read
into the SearchQuery that a search task runs.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QDateTime

from .. import settings
from ..qt_dates import utc_day
from ..stac.catalog_client import PagingLimits, SearchQuery
from ..stac.static_catalog import CollectionSummary

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
"""The extent box's output CRS: STAC searches take lon/lat."""


def set_up_search_form(form: Any, canvas: Any) -> None:
    """The last year, the extent box on ``canvas``, and the saved paging limits, saved again when changed."""
    form.extentBox.setOutputCrs(WGS84)
    if canvas is not None:
        form.extentBox.setMapCanvas(canvas)
    for edit in (form.startEdit, form.endEdit):
        edit.setAllowNull(False)
    today = QDateTime.currentDateTimeUtc()
    form.startEdit.setDateTime(today.addYears(-1))
    form.endEdit.setDateTime(today)
    limits = settings.paging_limits()
    form.maxPagesSpin.setValue(limits.max_pages)
    form.timeLimitSpin.setValue(int(limits.time_limit_s))
    form.maxPagesSpin.valueChanged.connect(lambda _v: settings.set_paging_limits(read_paging_limits(form)))
    form.timeLimitSpin.valueChanged.connect(lambda _v: settings.set_paging_limits(read_paging_limits(form)))


def follow_collection(form: Any, collection: CollectionSummary) -> None:
    """The collection's extent and interval as the search's, and its bands in the asset list."""
    if collection.bbox:
        west, south, east, north = collection.bbox
        form.extentBox.setOriginalExtent(QgsRectangle(west, south, east, north), WGS84)
        form.extentBox.setOutputExtentFromOriginal()
    start, end = collection.interval
    if start:
        form.startEdit.setDateTime(QDateTime.fromString(start[:10], "yyyy-MM-dd"))
    if end:
        form.endEdit.setDateTime(QDateTime.fromString(end[:10], "yyyy-MM-dd"))
    form.assetCombo.clear()
    for band in collection.bands:
        label = band.asset_key if not band.common_name or band.common_name == band.asset_key else \
            f"{band.asset_key} ({band.common_name})"
        form.assetCombo.addItem(label, band.asset_key)


def read_query(form: Any, collection: CollectionSummary | None) -> SearchQuery:
    """The search the form describes, in ``collection`` (none: every collection)."""
    extent = form.extentBox.outputExtent()
    bbox = None if extent.isEmpty() else \
        (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    cloud = form.cloudSpin.value()
    return SearchQuery(
        collections=(collection.id,) if collection else (),
        bbox=bbox,
        start=utc_day(form.startEdit.dateTime()),
        end=utc_day(form.endEdit.dateTime(), end_of_day=True),
        max_cloud=None if cloud >= 100 else float(cloud),
        cql2=form.cqlEdit.text().strip() or None,
        paging=read_paging_limits(form),
    )


def read_paging_limits(form: Any) -> PagingLimits:
    return PagingLimits(form.maxPagesSpin.value(), float(form.timeLimitSpin.value()))
