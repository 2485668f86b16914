"""`cubescope:pointtimeseries`: the time series at points, from a STAC collection's COGs, a Zarr cube or a
WTSS coverage (SOURCE ``wtss:<service URL>``, COLLECTION the coverage).

The same engine as the dock's map tool (`analysis.timeseries.read_series`); one reader serves all the
points, so files opened for the first point are reused for the next.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QMetaType

from ..analysis.ops.indices import INDICES, MissingBand
from ..analysis.ops.quality import PRESETS, QualityRule, rule_for, rule_for_bands, rule_from_user
from ..analysis.timeseries import plan_read, read_series, row_fields, series_to_rows
from ..cube.cog_reader import CogStackReader
from ..cube.reader import PixelReader, ReaderError
from ..cube.wtss_reader import WtssReader
from ..cube.zarr_cube import ZarrError
from ..cube.zarr_reader import ZarrReader
from ..network import qgis_fetcher, qgis_gdal_http_config
from ..qt_dates import utc_day
from ..stac.bands import BandNotFound
from ..stac.catalog_client import CatalogClient, SearchQuery
from ..stac.http import HttpError
from ..stac.sources import Source, SourceKind, guess_kind
from ..stac.unreadable import SkippedInputs, StopAtFirstBadInputError
from ..tasks.thread_state import keep_thread_state

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
#: Half the side of the search box around a lone point, degrees (~100 m): footprints touching it.
_POINT_MARGIN = 0.001
#: SOURCE's prefix for a Web Time Series Service: "wtss:https://data.inpe.br/bdc/wtss/v4".
WTSS_PREFIX = "wtss:"
#: Skipped inputs listed one by one in the feedback at the end of a run (the rest are counted).
_LISTED_SKIPPED = 200


def _preset_for(band: str) -> QualityRule | None:
    for rule in PRESETS.values():
        if rule.band.casefold() == band.casefold():
            return rule
    return None


class PointTimeSeriesAlgorithm(QgsProcessingAlgorithm):
    SOURCE, COLLECTION, BANDS, POINTS, ID_FIELD = "SOURCE", "COLLECTION", "BANDS", "POINTS", "ID_FIELD"
    START, END, MAX_CLOUD, QUALITY_BAND, CLEAR_VALUES = "START", "END", "MAX_CLOUD", "QUALITY_BAND", "CLEAR_VALUES"
    OUTPUT = "OUTPUT"
    FAIL_ON_BAD_INPUT = "FAIL_ON_BAD_INPUT"
    SKIPPED_INPUTS, ROWS = "SKIPPED_INPUTS", "ROWS"

    def name(self) -> str:
        return "pointtimeseries"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Point time series"

    def group(self) -> str:
        return "Time series"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "timeseries"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "Reads the values of bands and spectral indices through time at each point of POINTS, from a STAC "
            "API or static catalog (SOURCE and COLLECTION; items searched around the points between START and "
            "END with at most MAX_CLOUD % cloud cover) or from a Zarr cube (SOURCE; COLLECTION and MAX_CLOUD "
            "are ignored), or from a Web Time Series Service (SOURCE wtss: followed by the service's URL, "
            "COLLECTION the coverage; MAX_CLOUD is ignored, the coverage's quality attribute masks).\n\n"
            "BANDS: comma-separated band names (asset keys such as B04 or common names such as "
            f"red) and/or indices ({', '.join(sorted(INDICES))}), computed from reflectance with each band's scale "
            "and offset applied.\n\nThe quality band (Sentinel-2 scl, Landsat QA_PIXEL, BDC CMASK/Fmask) is found "
            "from the metadata; QUALITY_BAND and CLEAR_VALUES (e.g. 4,5,6,7,11 or bits:1,3,4 for bits to mask) "
            "override it.\n\nOUTPUT has one row per point and date: point_id, datetime (ISO 8601), item_id, one "
            "column per band or index with the scaled values, and valid (1 clear, 0 masked or no data; 1 when "
            "there is no quality rule). Items of the same day (overlapping tiles) give one row, the clear one "
            "when only one is clear.\n\nA file that cannot be read (an HTTP error, not a GeoTIFF, truncated) "
            "leaves a gap: the run goes on and reports each such file by URL and cause; SKIPPED_INPUTS counts "
            "them (and a GeoPackage output records them in its layer metadata, CUBESCOPE_SKIPPED_INPUTS). "
            "FAIL_ON_BAD_INPUT (advanced) makes the run fail at the first one instead."
        )

    def createInstance(self) -> PointTimeSeriesAlgorithm:  # noqa: N802 (QGIS name)
        return PointTimeSeriesAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        self.addParameter(QgsProcessingParameterString(
            self.SOURCE, "STAC API URL, static catalog URL or path, Zarr cube URL or path, or wtss:<WTSS URL>"))
        self.addParameter(QgsProcessingParameterString(
            self.COLLECTION, "Collection id (STAC) or coverage (WTSS)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, "Bands and indices, comma-separated (e.g. red,nir,ndvi)"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POINTS, "Points", [Qgis.ProcessingSourceType.VectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.ID_FIELD, "Point id field (default: feature id)", parentLayerParameterName=self.POINTS,
            optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.START, "Start date", Qgis.ProcessingDateTimeParameterDataType.Date, optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.END, "End date", Qgis.ProcessingDateTimeParameterDataType.Date, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_CLOUD, "Maximum cloud cover of an item (%)", Qgis.ProcessingNumberParameterType.Double, 100,
            minValue=0, maxValue=100))
        self.addParameter(QgsProcessingParameterString(
            self.QUALITY_BAND, "Quality band (default: from the metadata)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.CLEAR_VALUES, "Clear values of the quality band, comma-separated (or bits:1,3 to mask bits)",
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Time series", Qgis.ProcessingSourceType.Vector))
        fail = QgsProcessingParameterBoolean(
            self.FAIL_ON_BAD_INPUT, "Fail at the first input that cannot be read (else leave it out and report it)",
            defaultValue=False)
        fail.setFlags(fail.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(fail)
        self.addOutput(QgsProcessingOutputNumber(self.SKIPPED_INPUTS, "Inputs that could not be read (left out)"))
        self.addOutput(QgsProcessingOutputNumber(self.ROWS, "Rows written"))

    # ---- inputs ----

    def _date(self, parameters, name: str, context, end_of_day: bool = False) -> datetime | None:
        if not parameters.get(name):
            return None
        return utc_day(self.parameterAsDateTime(parameters, name, context), end_of_day)

    def _points(self, parameters, context, feedback) -> list[tuple[str, float, float]]:
        source = self.parameterAsSource(parameters, self.POINTS, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.POINTS))
        id_field = self.parameterAsString(parameters, self.ID_FIELD, context)
        to_wgs84 = QgsCoordinateTransform(source.sourceCrs(), WGS84, context.transformContext())
        points = []
        for feature in source.getFeatures():
            geometry = feature.geometry()
            if geometry is None or geometry.isEmpty():
                feedback.pushWarning(f"Feature {feature.id()} has no geometry: skipped")
                continue
            geometry.transform(to_wgs84)
            if QgsWkbTypes.isMultiType(geometry.wkbType()):
                parts = geometry.asMultiPoint()
                if len(parts) > 1:
                    feedback.pushWarning(f"Feature {feature.id()} has {len(parts)} points: using the first")
                point = parts[0]
            else:
                point = geometry.asPoint()
            point_id = feature[id_field] if id_field else feature.id()
            points.append((str(point_id), point.x(), point.y()))
        if not points:
            raise QgsProcessingException("POINTS has no point to read")
        return points

    def _stac_reader(self, url: str, collection: str, points, parameters, context, feedback) -> CogStackReader:
        if not collection:
            raise QgsProcessingException("COLLECTION is required for a STAC source")
        lons, lats = [p[1] for p in points], [p[2] for p in points]
        bbox = (max(-180.0, min(lons) - _POINT_MARGIN), max(-90.0, min(lats) - _POINT_MARGIN),
                min(180.0, max(lons) + _POINT_MARGIN), min(90.0, max(lats) + _POINT_MARGIN))
        max_cloud = self.parameterAsDouble(parameters, self.MAX_CLOUD, context)
        query = SearchQuery(collections=(collection,), bbox=bbox,
                            start=self._date(parameters, self.START, context),
                            end=self._date(parameters, self.END, context, end_of_day=True),
                            max_cloud=None if max_cloud >= 100 else max_cloud)
        client = CatalogClient(Source(name=url, kind=guess_kind(url), url=url), qgis_fetcher(feedback=feedback))
        items: list[dict] = []
        try:
            for page in client.search(query, is_canceled=feedback.isCanceled):
                items.extend(page.items)
                for problem in page.skipped:
                    feedback.reportError(problem)
        except HttpError as error:
            if not items:
                raise QgsProcessingException(str(error)) from error
            feedback.reportError(f"The search stopped after {len(items)} items: {error}")
        if not items:
            raise QgsProcessingException(f"No items of '{collection}' at these points in {url} "
                                         "with these dates and cloud cover")
        feedback.pushInfo(f"{len(items)} items found")
        reader = CogStackReader(items, options=qgis_gdal_http_config(),  # the user's proxy and timeout
                                stop_at_first_bad_input=self.parameterAsBoolean(parameters, self.FAIL_ON_BAD_INPUT,
                                                                                context))
        for problem in reader.skipped:
            feedback.reportError(problem)
        return reader

    def _quality_rule(self, reader: PixelReader, parameters, context) -> QualityRule | None:
        band = self.parameterAsString(parameters, self.QUALITY_BAND, context).strip()
        values = self.parameterAsString(parameters, self.CLEAR_VALUES, context).strip()
        if isinstance(reader, ZarrReader):
            found = rule_for_bands(reader.variable_attrs())
        elif isinstance(reader, WtssReader):
            found = rule_for_bands(reader.band_attrs())
        else:
            items = reader.items()
            found = rule_for(items[0]) if items else None
        try:
            if band and values:
                return rule_from_user(band, values)
            if band:
                preset = _preset_for(band)
                if preset is None and found is not None and found.band.casefold() == band.casefold():
                    preset = found
                if preset is None:
                    raise QgsProcessingException(f"No known quality rule for the band '{band}': give CLEAR_VALUES "
                                                 "(e.g. 4,5,6 for clear classes, or bits:1,3,4 for bits to mask)")
                return replace(preset, band=band)
            if values:
                if found is None:
                    raise QgsProcessingException("CLEAR_VALUES needs QUALITY_BAND: no quality band was found in "
                                                 "the metadata")
                return rule_from_user(found.band, values)
        except ValueError as error:
            raise QgsProcessingException(str(error)) from error
        return found

    # ---- run ----

    def _reader(self, url: str, points, parameters, context, feedback) -> PixelReader:
        collection = self.parameterAsString(parameters, self.COLLECTION, context).strip()
        try:
            if url.lower().startswith(WTSS_PREFIX):
                if not collection:
                    raise QgsProcessingException("COLLECTION is required for a WTSS source: the coverage's name")
                return WtssReader(url[len(WTSS_PREFIX):].strip(), collection, qgis_fetcher(feedback=feedback),
                                  start=self._date(parameters, self.START, context),
                                  end=self._date(parameters, self.END, context, end_of_day=True))
            if guess_kind(url) == SourceKind.ZARR:
                return ZarrReader(url, start=self._date(parameters, self.START, context),
                                  end=self._date(parameters, self.END, context, end_of_day=True),
                                  fetch=qgis_fetcher(feedback=feedback))
            return self._stac_reader(url, collection, points, parameters, context, feedback)
        except (ZarrError, ReaderError, ValueError, HttpError) as error:
            raise QgsProcessingException(str(error)) from error

    @staticmethod
    def _fields(requested) -> QgsFields:
        fields = QgsFields()
        for name in row_fields(requested):
            if name == "valid":
                fields.append(QgsField(name, QMetaType.Type.Int))
            elif name in ("point_id", "datetime", "item_id"):
                fields.append(QgsField(name, QMetaType.Type.QString))
            else:
                fields.append(QgsField(name, QMetaType.Type.Double))
        return fields

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        url = self.parameterAsString(parameters, self.SOURCE, context).strip()
        names = [n.strip() for n in self.parameterAsString(parameters, self.BANDS, context).split(",") if n.strip()]
        if not url:
            raise QgsProcessingException("SOURCE is required")
        if not names:
            raise QgsProcessingException("BANDS is required (e.g. red,nir,ndvi)")
        points = self._points(parameters, context, feedback)
        reader = self._reader(url, points, parameters, context, feedback)
        skipped = SkippedInputs()
        try:
            rule = self._quality_rule(reader, parameters, context)
            if rule is not None:
                feedback.pushInfo(f"Quality rule: {rule.describe()}")
            try:
                plan = plan_read(reader, names, rule)
            except (BandNotFound, MissingBand, ValueError) as error:
                raise QgsProcessingException(str(error)) from error
            fields = self._fields(plan.requested)
            sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, Qgis.WkbType.NoGeometry,
                                                 QgsCoordinateReferenceSystem())
            if sink is None:
                raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
            try:
                written = self._write(sink, fields, reader, points, names, rule, plan, skipped, feedback)
            finally:
                # The sink writes (a GeoPackage commits) when it is deleted: here, not whenever the
                # last reference to it goes, which a reference cycle can put off past the end of the
                # run (a GeoPackage then had no table although the run reported its rows).
                del sink
        finally:
            reader.close()
        for line in skipped.lines(limit=_LISTED_SKIPPED):
            feedback.pushWarning(f"Left out {line}")
        if skipped:
            feedback.pushWarning(f"{skipped.summary()}; the output has gaps at their dates")
            _record_skipped(dest_id, skipped, feedback)
        feedback.pushInfo(f"Wrote {written} rows for {len(points)} points")
        return {self.OUTPUT: dest_id, self.SKIPPED_INPUTS: len(skipped), self.ROWS: written}

    def _write(self, sink, fields, reader, points, names, rule, plan, skipped: SkippedInputs, feedback) -> int:
        """Read every point's series into ``sink``; the rows written. Unreadable files go to ``skipped``."""
        written = 0
        for number, (point_id, lon, lat) in enumerate(points):
            if feedback.isCanceled():
                break

            def progress(done: int, total: int, number: int = number) -> None:
                feedback.setProgress(100.0 * (number + done / max(total, 1)) / len(points))

            try:
                series = read_series(reader, lon, lat, names, rule, plan=plan, on_progress=progress,
                                     is_canceled=feedback.isCanceled)
            except StopAtFirstBadInputError as error:
                raise QgsProcessingException(
                    f"Stopped at the first input that cannot be read ({self.FAIL_ON_BAD_INPUT} is set): "
                    f"{error.url}: {error.cause}") from None
            skipped.extend(series.skipped)
            for warning in series.warnings:
                feedback.pushWarning(f"Point {point_id}: {warning}")
            for row in series_to_rows(series, point_id):
                feature = QgsFeature(fields)
                feature.setAttributes([row[name] for name in fields.names()])
                if not sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert):
                    raise QgsProcessingException(f"Could not write a row of point {point_id}: {sink.lastError()}")
                written += 1
            feedback.pushInfo(f"Point {point_id}: {len(series.observations)} dates")
        return written


def _record_skipped(dest_id: str, skipped: SkippedInputs, feedback) -> None:
    """Count the skipped inputs in a GeoPackage output's layer metadata (CUBESCOPE_SKIPPED_INPUTS and the
    list); other formats have no place for it, the run's SKIPPED_INPUTS output and log say it."""
    path, _, options = dest_id.partition("|")
    if not path.lower().endswith(".gpkg"):
        return
    layer_name = next((o.split("=", 1)[1] for o in options.split("|") if o.startswith("layername=")), "")
    dataset = gdal.OpenEx(path, gdal.OF_VECTOR | gdal.OF_UPDATE)
    layer = None if dataset is None else (dataset.GetLayerByName(layer_name) if layer_name else dataset.GetLayer(0))
    if layer is None:
        feedback.pushWarning(f"Could not record the skipped inputs in {path}'s metadata")
        return
    for key, value in skipped.metadata().items():
        layer.SetMetadataItem(key, value)
    layer = None
    dataset = None
