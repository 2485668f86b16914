"""`cubescope:searchitems`: search a STAC API or static catalog, footprints as a vector layer."""

from __future__ import annotations

from datetime import datetime

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..gui.footprints import footprint_attributes, footprint_geometry, footprints_layer
from ..network import qgis_fetcher, qgis_gdal_http_config
from ..qt_dates import utc_day
from ..stac.catalog_client import CatalogClient, PagingLimits, SearchQuery
from ..stac.http import HttpError
from ..stac.items import sort_by_date
from ..stac.object_store import ObjectStoreFetcher
from ..stac.paging import DEFAULT_MAX_PAGES, DEFAULT_TIME_LIMIT_S, PAGE_LIMIT, TIME_LIMIT, PagingStop
from ..stac.sources import Source, guess_kind
from ..stac.tiles import group_by_tile
from ..tasks.thread_state import keep_thread_state

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")



class SearchItemsAlgorithm(QgsProcessingAlgorithm):
    SOURCE, COLLECTION, EXTENT = "SOURCE", "COLLECTION", "EXTENT"
    START, END, MAX_CLOUD, LIMIT, OUTPUT = "START", "END", "MAX_CLOUD", "LIMIT", "OUTPUT"
    MAX_PAGES, TIME_LIMIT = "MAX_PAGES", "TIME_LIMIT"

    def name(self) -> str:
        return "searchitems"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Search STAC items"

    def group(self) -> str:
        return "Catalogs"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "catalogs"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "Searches a STAC API or a static STAC catalog (URL or local path) for the items of a collection "
            "in an extent and a date range, with at most MAX_CLOUD % cloud cover (sent to the server when it "
            "supports filtering, applied here otherwise). Writes the items' footprints with their id, "
            "collection, datetime, cloud cover and grid tile, sorted by date. LIMIT 0 returns all items.\n"
            f"Paging stops after MAX_PAGES pages (default {DEFAULT_MAX_PAGES}), after TIME_LIMIT seconds "
            f"(default {DEFAULT_TIME_LIMIT_S:g}) and on a page that brings no new item; the items received "
            "are written and a warning says why paging stopped.\n"
            "A static catalog in a bucket (s3://bucket/path/catalog.json) is read through GDAL with its usual "
            "settings: AWS_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws, "
            "and unsigned requests when there are no keys."
        )

    def createInstance(self) -> SearchItemsAlgorithm:  # noqa: N802 (QGIS name)
        return SearchItemsAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        self.addParameter(QgsProcessingParameterString(self.SOURCE, "STAC API URL, static catalog URL or path"))
        self.addParameter(QgsProcessingParameterString(self.COLLECTION, "Collection id"))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.START, "Start date", Qgis.ProcessingDateTimeParameterDataType.Date, optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.END, "End date", Qgis.ProcessingDateTimeParameterDataType.Date, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_CLOUD, "Maximum cloud cover (%)", Qgis.ProcessingNumberParameterType.Double, 100,
            minValue=0, maxValue=100))
        self.addParameter(QgsProcessingParameterNumber(
            self.LIMIT, "Maximum number of items (0 = all)", Qgis.ProcessingNumberParameterType.Integer, 0, minValue=0))
        for limit in (
            QgsProcessingParameterNumber(self.MAX_PAGES, "Maximum number of pages",
                                         Qgis.ProcessingNumberParameterType.Integer, DEFAULT_MAX_PAGES, minValue=1),
            QgsProcessingParameterNumber(self.TIME_LIMIT, "Time limit for paging (seconds)",
                                         Qgis.ProcessingNumberParameterType.Double, DEFAULT_TIME_LIMIT_S, minValue=1),
        ):
            limit.setFlags(limit.flags() | Qgis.ProcessingParameterFlag.Advanced)
            self.addParameter(limit)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Footprints", Qgis.ProcessingSourceType.VectorPolygon))

    def _date(self, parameters, name: str, context, end_of_day: bool = False) -> datetime | None:
        if not parameters.get(name):
            return None
        return utc_day(self.parameterAsDateTime(parameters, name, context), end_of_day)

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        url = self.parameterAsString(parameters, self.SOURCE, context).strip()
        collection = self.parameterAsString(parameters, self.COLLECTION, context).strip()
        if not url or not collection:
            raise QgsProcessingException("SOURCE and COLLECTION are required")
        bbox = None
        if parameters.get(self.EXTENT):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, WGS84)
            bbox = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        max_cloud = self.parameterAsDouble(parameters, self.MAX_CLOUD, context)
        limit = self.parameterAsInt(parameters, self.LIMIT, context)
        try:
            paging = PagingLimits(self.parameterAsInt(parameters, self.MAX_PAGES, context),
                                  self.parameterAsDouble(parameters, self.TIME_LIMIT, context))
        except ValueError as error:
            raise QgsProcessingException(str(error)) from error
        query = SearchQuery(
            collections=(collection,), bbox=bbox,
            start=self._date(parameters, self.START, context),
            end=self._date(parameters, self.END, context, end_of_day=True),
            max_cloud=None if max_cloud >= 100 else max_cloud, max_items=limit, paging=paging,
        )
        source = Source(name=url, kind=guess_kind(url), url=url)
        # No connection here, so no S3 options or keys: a bucket is read with GDAL's own AWS settings.
        fetch = ObjectStoreFetcher(qgis_fetcher(feedback=feedback), options=qgis_gdal_http_config())
        client = CatalogClient(source, fetch)
        items: list[dict] = []
        stop: PagingStop | None = None
        try:
            for page in client.search(query, is_canceled=feedback.isCanceled):
                items.extend(page.items)
                stop = page.stop or stop
                for problem in page.skipped:
                    feedback.reportError(problem)
                feedback.pushInfo(f"{len(items)} items" + (f" of {page.matched}" if page.matched else ""))
                if page.matched:
                    feedback.setProgress(min(100.0, 100.0 * len(items) / page.matched))
        except HttpError as error:
            if not items:
                raise QgsProcessingException(str(error)) from error
            feedback.reportError(f"The search stopped after {len(items)} items: {error}")
        if stop is not None:
            where = {PAGE_LIMIT: self.MAX_PAGES, TIME_LIMIT: self.TIME_LIMIT}.get(stop.reason)
            feedback.pushWarning(stop.message(f"the {where} parameter" if where else ""))
        items = sort_by_date(items)[: limit or None]

        fields: QgsFields = footprints_layer([], "fields").fields()
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, Qgis.WkbType.MultiPolygon, WGS84)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        # Items without a tile get their footprint cluster's name ("near 45.12N 25.34E"), as in the dock.
        group_of = {id(item): group.tile for group in group_by_tile(items) for item in group.items}
        for item in items:
            feature = QgsFeature(fields)
            feature.setGeometry(footprint_geometry(item))
            feature.setAttributes(footprint_attributes(item, group_of.get(id(item))))
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        feedback.pushInfo(f"Wrote {len(items)} footprints")
        return {self.OUTPUT: dest_id}
