"""The parameters the composite, difference and time-statistics algorithms share, and their run.

Each algorithm adds its own period and method parameters; this module adds the rest (SOURCE,
COLLECTION, BANDS, EXTENT, RESOLUTION, TARGET_CRS, MAX_CLOUD, QUALITY_BAND, CLEAR_VALUES,
DASK_SCHEDULER, OUTPUT), turns them into an ``AnalysisRequest`` and runs the pure engine with the
feedback's progress and cancel, STAC requests through QGIS's network stack.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..qgis_crs import crs_text
from ..qt_dates import utc_day

if TYPE_CHECKING:
    from ..analysis.engine.analysis_request import Period

SOURCE, COLLECTION, BANDS, EXTENT = "SOURCE", "COLLECTION", "BANDS", "EXTENT"
RESOLUTION, TARGET_CRS, MAX_CLOUD = "RESOLUTION", "TARGET_CRS", "MAX_CLOUD"
QUALITY_BAND, CLEAR_VALUES, DASK_SCHEDULER, OUTPUT = "QUALITY_BAND", "CLEAR_VALUES", "DASK_SCHEDULER", "OUTPUT"
FAIL_ON_BAD_INPUT = "FAIL_ON_BAD_INPUT"
#: Also the name Processing gives the loaded result's layer (QGIS 3.22), which its title replaces.
OUTPUT_DESCRIPTION = "Output (Cloud-Optimized GeoTIFF)"

COMMON_HELP = (
    "<p><b>Source</b>: a STAC API URL, a static catalog's catalog.json (URL or local path), or a Zarr "
    "cube (a .zarr store on disk, http(s) or s3://; its (time, y, x) variables are the bands, its time "
    "steps the dates; no collection id needed). "
    "<b>Bands</b>: comma-separated band names (asset key, common name such as red or nir, or band id "
    "such as B04; a common name several bands share, such as rededge, must be a band id instead; nir "
    "is Landsat's nir08) and/or indices (NDVI, EVI, NDWI, NBR, SAVI; computed on scaled reflectance). "
    "<b>Extent</b>: empty for the items' whole extent. <b>Resolution</b> 0 and no target CRS: the data's "
    "native CRS and finest resolution, aligned with its pixels (no resampling). "
    "<b>Quality band</b>: empty to use the collection's own (Sentinel-2 SCL, Landsat QA_PIXEL, Fmask, "
    "CMASK), <i>none</i> for no mask; <b>clear values</b> such as 4,5,6 (clear classes) or bits:1,3 "
    "(bits that mask). <b>Dask scheduler</b>: tcp://host:8786 to compute on a cluster; empty uses the "
    "plugin setting, <i>local</i> forces local threads.</p>"
    "<p>The output is a Cloud-Optimized GeoTIFF (float32, NaN no-data, deflate, overviews) whose "
    "metadata records the inputs, method and period; it is written to a temporary file and moved into "
    "place only when complete.</p>"
)


def add_source_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """SOURCE, COLLECTION and BANDS (first in the dialog)."""
    algorithm.addParameter(QgsProcessingParameterString(
        SOURCE, "STAC API URL, static catalog URL or path, or Zarr cube (.zarr URL or path)"))
    algorithm.addParameter(QgsProcessingParameterString(COLLECTION, "Collection id (empty for a Zarr cube)",
                                                        optional=True))
    algorithm.addParameter(QgsProcessingParameterString(BANDS, "Bands and/or indices (comma-separated)",
                                                        defaultValue="NDVI"))


def add_period(algorithm: QgsProcessingAlgorithm, start: str, end: str, label: str = "") -> None:
    suffix = f" ({label})" if label else ""
    algorithm.addParameter(QgsProcessingParameterDateTime(start, f"Start date{suffix}",
                                                          Qgis.ProcessingDateTimeParameterDataType.Date))
    algorithm.addParameter(QgsProcessingParameterDateTime(end, f"End date{suffix}",
                                                          Qgis.ProcessingDateTimeParameterDataType.Date))


def add_common_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """EXTENT ... OUTPUT (after the algorithm's own period and method parameters)."""
    algorithm.addParameter(QgsProcessingParameterExtent(EXTENT, "Extent", optional=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        RESOLUTION, "Resolution in the output CRS's units (0 = native)", Qgis.ProcessingNumberParameterType.Double,
        0.0, minValue=0.0))
    algorithm.addParameter(QgsProcessingParameterCrs(TARGET_CRS, "Target CRS (empty = native)", optional=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MAX_CLOUD, "Maximum cloud cover (%)", Qgis.ProcessingNumberParameterType.Double, 100.0, minValue=0,
        maxValue=100))
    algorithm.addParameter(QgsProcessingParameterString(
        QUALITY_BAND, "Quality band (empty = the collection's, none = no mask)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString(
        CLEAR_VALUES, "Clear values (e.g. 4,5,6) or masked bits (bits:1,3)", optional=True))
    add_scheduler_parameter(algorithm)
    algorithm.addParameter(QgsProcessingParameterRasterDestination(OUTPUT, OUTPUT_DESCRIPTION))


def add_fail_on_bad_input(algorithm: QgsProcessingAlgorithm) -> None:
    """FAIL_ON_BAD_INPUT (advanced): stop at the first input that cannot be read. Off, such inputs are
    left out, each reported by URL and cause, and counted in the output's metadata."""
    parameter = QgsProcessingParameterBoolean(
        FAIL_ON_BAD_INPUT, "Fail at the first input that cannot be read (else leave it out and report it)",
        defaultValue=False)
    parameter.setFlags(parameter.flags() | Qgis.ProcessingParameterFlag.Advanced)
    algorithm.addParameter(parameter)


def engine_log(feedback: Any) -> Callable[[str], None]:
    """The engine's log lines as Processing feedback: its "Warning: " lines (inputs left out, ...) as
    warnings, the rest as information."""
    def say(message: str) -> None:
        if message.startswith("Warning:"):
            feedback.pushWarning(message[len("Warning:"):].strip())
        else:
            feedback.pushInfo(message)

    return say


def add_scheduler_parameter(algorithm: QgsProcessingAlgorithm) -> None:
    """DASK_SCHEDULER: a cluster's address, empty for the plugin setting, ``local`` for local threads."""
    algorithm.addParameter(QgsProcessingParameterString(
        DASK_SCHEDULER, "Dask scheduler (empty = plugin setting, local = this computer)", optional=True))


def scheduler_parameter(algorithm: QgsProcessingAlgorithm, parameters: dict, context: Any) -> str:
    """The scheduler address to use: the parameter, else the plugin setting; empty for local threads."""
    return _scheduler(algorithm.parameterAsString(parameters, DASK_SCHEDULER, context))


def period_parameter(algorithm: QgsProcessingAlgorithm, parameters: dict, start: str, end: str,
                     context: Any) -> Period:
    """The engine's Period from a start and an end date parameter, the end day included whole."""
    from ..analysis.engine.analysis_request import Period

    first = date_parameter(algorithm, parameters, start, context)
    last = date_parameter(algorithm, parameters, end, context, end_of_day=True)
    if first > last:  # checked here, before any work, so Processing shows a message and no traceback
        raise QgsProcessingException(f"{start} {first:%Y-%m-%d} is after {end} {last:%Y-%m-%d}")
    try:
        return Period(first, last)
    except ValueError as error:
        raise QgsProcessingException(str(error)) from None


def date_parameter(algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context: Any,
                   end_of_day: bool = False) -> datetime:
    """A required date parameter as 00:00:00 (or 23:59:59) UTC of that day."""
    day = utc_day(algorithm.parameterAsDateTime(parameters, name, context), end_of_day) \
        if parameters.get(name) else None
    if day is None:
        raise QgsProcessingException(f"{name} is required (a date such as 2023-06-30)")
    return day


def _scheduler(text: str) -> str:
    text = text.strip()
    if text.casefold() == "local":
        return ""
    if text:
        return text
    try:
        from ..settings import dask_scheduler

        return dask_scheduler().strip()
    except Exception:  # noqa: BLE001 (settings unavailable: compute locally)
        return ""


def common_request_fields(algorithm: QgsProcessingAlgorithm, parameters: dict, context: Any) -> dict[str, Any]:
    """The AnalysisRequest fields every algorithm takes, read from its parameters."""
    from ..network import qgis_gdal_http_config
    from ..stac.sources import SourceKind, guess_kind

    source = algorithm.parameterAsString(parameters, SOURCE, context).strip()
    collection = algorithm.parameterAsString(parameters, COLLECTION, context).strip()
    if not source:
        raise QgsProcessingException("SOURCE is required")
    if not collection and guess_kind(source) != SourceKind.ZARR:
        raise QgsProcessingException(f"COLLECTION is required: {source} is a STAC catalog, not a Zarr cube")
    bands = tuple(b.strip() for b in algorithm.parameterAsString(parameters, BANDS, context).split(",") if b.strip())
    fields: dict[str, Any] = dict(source=source, collection=collection, bands=bands)
    if parameters.get(EXTENT):
        crs = algorithm.parameterAsExtentCrs(parameters, EXTENT, context)
        extent = algorithm.parameterAsExtent(parameters, EXTENT, context, crs)
        fields["extent"] = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        fields["extent_crs"] = crs_text(crs) or "EPSG:4326"
    fields["resolution"] = algorithm.parameterAsDouble(parameters, RESOLUTION, context)
    if parameters.get(TARGET_CRS):
        fields["crs"] = crs_text(algorithm.parameterAsCrs(parameters, TARGET_CRS, context))
    max_cloud = algorithm.parameterAsDouble(parameters, MAX_CLOUD, context)
    fields["max_cloud"] = None if max_cloud >= 100 else max_cloud
    fields["quality_band"] = algorithm.parameterAsString(parameters, QUALITY_BAND, context).strip()
    fields["clear_values"] = algorithm.parameterAsString(parameters, CLEAR_VALUES, context).strip()
    fields["dask_scheduler"] = scheduler_parameter(algorithm, parameters, context)
    fields["output"] = algorithm.parameterAsOutputLayer(parameters, OUTPUT, context)
    fields["gdal_options"] = tuple(sorted(qgis_gdal_http_config().items()))
    fields["fail_on_bad_input"] = algorithm.parameterAsBool(parameters, FAIL_ON_BAD_INPUT, context)
    return fields


def run_analysis(fields: dict[str, Any], feedback: Any, context: Any) -> dict[str, str]:
    """Build the request, run the engine with the feedback, and answer {OUTPUT: path}; a result the
    toolbox loads gets the dock's style (diverging difference, true colour...) once loaded."""
    try:
        import dask  # noqa: F401
        import odc.stac  # noqa: F401
    except ImportError as error:
        raise QgsProcessingException(
            f"Cubescope's analyses need odc-stac and dask, which are missing here ({error}); install them "
            "from the message Cubescope shows at startup, or with pip") from error
    from ..analysis.engine.analysis_request import AnalysisRequest
    from ..analysis.engine.pipeline import Canceled, run
    from ..network import qgis_fetcher, qgis_gdal_http_config
    from ..stac.http import HttpError
    from ..stac.object_store import ObjectStoreFetcher

    try:
        request = AnalysisRequest(**fields)
        path = run(request, progress=feedback.setProgress, is_canceled=feedback.isCanceled,
                   fetch=ObjectStoreFetcher(qgis_fetcher(feedback=feedback), options=qgis_gdal_http_config()),
                   log=engine_log(feedback))
    except Canceled:
        raise QgsProcessingException("Cancelled: nothing was written") from None
    except (ValueError, OSError, RuntimeError, HttpError, KeyError) as error:
        raise QgsProcessingException(str(error)) from error
    if context.willLoadLayerOnCompletion(request.output):
        from ..gui.result_style import ResultStyler

        context.layerToLoadOnCompletionDetails(request.output).setPostProcessor(
            ResultStyler.for_output(request.output, request, placeholder=OUTPUT_DESCRIPTION))
    return {OUTPUT: str(path)}
