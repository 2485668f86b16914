"""`cubescope:minicube`: an EarthNet-style minicube of several sources on one grid, as NetCDF or Zarr."""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterString,
)

from ..products.minicubes.build import MAX_SIDE
from ..qgis_crs import crs_text
from ..tasks.thread_state import keep_thread_state
from .analysis_params import (
    FAIL_ON_BAD_INPUT,
    add_fail_on_bad_input,
    add_scheduler_parameter,
    date_parameter,
    engine_log,
    scheduler_parameter,
)

FORMATS = ("netcdf", "zarr")


class MinicubeAlgorithm(QgsProcessingAlgorithm):
    SOURCES, POINT, EXTENT, SIZE, RESOLUTION = "SOURCES", "POINT", "EXTENT", "SIZE", "RESOLUTION"
    TARGET_CRS, START, END, CADENCE, FORMAT, OUTPUT = "TARGET_CRS", "START", "END", "CADENCE", "FORMAT", "OUTPUT"

    def name(self) -> str:
        return "minicube"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Minicube (several sources on one grid)"

    def group(self) -> str:
        return "Build your own cube"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "buildcube"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>An EarthNet-style minicube: <b>size</b> pixels at <b>resolution</b> around a <b>point</b> (or "
            "over an <b>extent</b>), in the point's UTM zone unless a target CRS is given, from several sources "
            "regridded onto that one grid.</p>"
            "<p><b>Sources</b>: one per line or separated by <i>;</i>, each "
            "<code>url|collection|band1,band2|aggregation</code>. The url is a STAC API or static catalog, or a "
            "Zarr store (<code>.zarr</code>, collection left empty, bands are its variables). <code>name=band</code> "
            "renames a band (<code>elevation=data</code>). Aggregation combines the observations of one "
            "cadence step: mean, min, max, sum, median, first; <i>static</i> makes a variable without time "
            "(found automatically for single-date layers such as a DEM or a land-cover map). Categorical and "
            "quality bands are resampled with nearest neighbour, the others bilinearly.</p>"
            "<p><b>Cadence</b>: P5D, P1D, P1W, P1M... (steps from the start date) or <i>native</i> (every "
            "acquisition). The output is NetCDF or Zarr with CF metadata (time units, grid mapping, units, "
            "long_name); every variable records its source URL, collection, asset, aggregation and resampling.</p>"
            "<p>The minicube is computed and written block by block (256 x 256 pixels), so memory does not grow "
            "with its size in Zarr; NetCDF (NetCDF-3) holds the whole file in memory while writing it and is "
            "limited to 4096 pixels a side. <b>Dask scheduler</b>: tcp://host:8786 reads and aggregates the STAC "
            "sources on that cluster (its workers need odc-stac and access to the assets; Zarr sources are read "
            "here); empty uses the plugin setting, <i>local</i> forces local threads.</p>"
        )

    def createInstance(self) -> MinicubeAlgorithm:  # noqa: N802 (QGIS name)
        return MinicubeAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        self.addParameter(QgsProcessingParameterString(
            self.SOURCES, "Sources (url|collection|bands|aggregation; one per line)", multiLine=True))
        self.addParameter(QgsProcessingParameterPoint(self.POINT, "Centre point", optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (instead of a point)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SIZE, "Size around the point (pixels)", Qgis.ProcessingNumberParameterType.Integer, 128, minValue=1,
            maxValue=MAX_SIDE))
        self.addParameter(QgsProcessingParameterNumber(
            self.RESOLUTION, "Resolution (CRS units)", Qgis.ProcessingNumberParameterType.Double, 10.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterCrs(self.TARGET_CRS, "Target CRS (empty = UTM zone)", optional=True))
        date = Qgis.ProcessingDateTimeParameterDataType.Date
        self.addParameter(QgsProcessingParameterDateTime(self.START, "Start date", date))
        self.addParameter(QgsProcessingParameterDateTime(self.END, "End date", date))
        self.addParameter(QgsProcessingParameterString(self.CADENCE, "Cadence (P5D, P1D, P1M or native)",
                                                       defaultValue="P5D"))
        self.addParameter(QgsProcessingParameterEnum(self.FORMAT, "Format", options=["NetCDF", "Zarr"],
                                                     defaultValue=0))
        add_scheduler_parameter(self)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "Minicube (.nc or .zarr)", fileFilter="NetCDF (*.nc);;Zarr (*.zarr)"))
        add_fail_on_bad_input(self)

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        from ..network import qgis_fetcher
        from ..products.minicubes.build import MinicubeError, MinicubeRequest, parse_sources, run
        from ..stac.http import HttpError

        fields: dict = {}
        if parameters.get(self.POINT):
            crs = self.parameterAsPointCrs(parameters, self.POINT, context)
            point = self.parameterAsPoint(parameters, self.POINT, context, crs)
            fields.update(point=(point.x(), point.y()), point_crs=crs_text(crs) or "EPSG:4326")
        elif parameters.get(self.EXTENT):
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
            fields.update(extent=(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
                          extent_crs=crs_text(crs) or "EPSG:4326")
        else:
            raise QgsProcessingException("Give a POINT or an EXTENT")
        if parameters.get(self.TARGET_CRS):
            fields["crs"] = crs_text(self.parameterAsCrs(parameters, self.TARGET_CRS, context))
        try:
            request = MinicubeRequest(
                sources=parse_sources(self.parameterAsString(parameters, self.SOURCES, context)),
                start=date_parameter(self, parameters, self.START, context),
                end=date_parameter(self, parameters, self.END, context, end_of_day=True),
                output=self.parameterAsFileOutput(parameters, self.OUTPUT, context),
                size=self.parameterAsInt(parameters, self.SIZE, context),
                resolution=self.parameterAsDouble(parameters, self.RESOLUTION, context),
                cadence=self.parameterAsString(parameters, self.CADENCE, context),
                format=FORMATS[self.parameterAsEnum(parameters, self.FORMAT, context)],
                dask_scheduler=scheduler_parameter(self, parameters, context),
                fail_on_bad_input=self.parameterAsBool(parameters, FAIL_ON_BAD_INPUT, context), **fields)
            path = run(request, fetch=qgis_fetcher(feedback=feedback), progress=feedback.setProgress,
                       is_canceled=feedback.isCanceled, log=engine_log(feedback))
        except InterruptedError:
            raise QgsProcessingException("Cancelled: nothing was written") from None
        except (MinicubeError, ValueError, OSError, RuntimeError, HttpError, KeyError) as error:
            raise QgsProcessingException(str(error)) from error
        return {self.OUTPUT: str(path)}
