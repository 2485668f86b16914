"""`cubescope:buildcube`: a regular cube (one composite per period) as a Zarr store or COGs + STAC."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from ..tasks.thread_state import keep_thread_state
from . import analysis_params as common
from .composite_algorithm import METHODS

#: The builder's format names, in the enum's order.
FORMATS = ("zarr", "cog-stac")


class BuildCubeAlgorithm(QgsProcessingAlgorithm):
    START, END, PERIOD, CYCLIC = "START", "END", "PERIOD", "CYCLIC"
    METHOD, EXTRA_BANDS, FORMAT, OUTPUT = "METHOD", "EXTRA_BANDS", "FORMAT", common.OUTPUT

    def name(self) -> str:
        return "buildcube"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Build a regular cube"

    def group(self) -> str:
        return "Analysis"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "analysis"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>Turns irregular acquisitions into a regular time series: one temporal composite per period "
            "of the timeline between the start and end dates. <b>Period</b>: an ISO 8601 duration such as "
            "P16D, P8D or P1M. <b>Cyclic</b>: the periods restart on January 1 of every year (as the Brazil "
            "Data Cube's 16-day cubes: 23 periods a year, the last ending on December 31); otherwise they "
            "follow each other from the start date. <b>Method</b> and <b>extra bands</b> as in the temporal "
            "composite.</p>"
            "<p><b>Format</b>: a Zarr store (time, y, x; one float32 variable per band or index; CF "
            "metadata; chunks of all periods x 256 x 256 px for time-series reads) that xarray, GDAL and "
            "Cubescope open; or one Cloud-Optimized GeoTIFF per band per period with a static STAC catalog "
            "(OUTPUT/catalog.json). <b>Output</b>: the .zarr path or the folder of the catalog. An "
            "interrupted build resumes from the first period not yet written when run again with the same "
            "parameters.</p>" + common.COMMON_HELP.split("<p>The output")[0]
        )

    def createInstance(self) -> BuildCubeAlgorithm:  # noqa: N802 (QGIS name)
        return BuildCubeAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        common.add_source_parameters(self)
        common.add_period(self, self.START, self.END)
        self.addParameter(QgsProcessingParameterString(self.PERIOD, "Period (P16D, P8D, P1M...)", defaultValue="P16D"))
        self.addParameter(QgsProcessingParameterBoolean(
            self.CYCLIC, "Restart the periods every January 1 (cyclic timeline)", defaultValue=False))
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, "Method", options=list(METHODS), defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.EXTRA_BANDS, "Add CLEAROB, TOTALOB and PROVENANCE bands", defaultValue=False))
        common.add_common_parameters(self)
        self.removeParameter(self.OUTPUT)  # the shared one is a raster; a cube is a folder
        self.addParameter(QgsProcessingParameterEnum(
            self.FORMAT, "Format", options=["Zarr", "COG + STAC catalog"], defaultValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Output (.zarr path or folder)"))
        common.add_fail_on_bad_input(self)  # last: the parameters before it keep their places

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        try:
            import dask  # noqa: F401
            import odc.stac  # noqa: F401
            import zarr  # noqa: F401
        except ImportError as error:
            raise QgsProcessingException(
                f"Building a cube needs odc-stac, dask and zarr, which are missing here ({error}); install them "
                "from the message Cubescope shows at startup, or with pip") from error
        from ..analysis.engine.analysis_request import AnalysisRequest
        from ..analysis.engine.pipeline import Canceled
        from ..network import qgis_fetcher
        from ..products.cubes.builder import CubeRequest, build_cube
        from ..stac.http import HttpError

        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output:
            raise QgsProcessingException("OUTPUT is required (a .zarr path or a folder)")
        fields = common.common_request_fields(self, parameters, context)
        fields.update(
            operation="composite", output=output,
            periods=(common.period_parameter(self, parameters, self.START, self.END, context),),
            method=METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
            extra_bands=self.parameterAsBoolean(parameters, self.EXTRA_BANDS, context),
        )
        try:
            cube = CubeRequest(
                AnalysisRequest(**fields), step=self.parameterAsString(parameters, self.PERIOD, context).strip(),
                cyclic=self.parameterAsBoolean(parameters, self.CYCLIC, context),
                format=FORMATS[self.parameterAsEnum(parameters, self.FORMAT, context)])
            path = build_cube(cube, progress=feedback.setProgress, is_canceled=feedback.isCanceled,
                              fetch=qgis_fetcher(feedback=feedback), log=common.engine_log(feedback))
        except Canceled as error:
            raise QgsProcessingException(str(error)) from None
        except (ValueError, OSError, RuntimeError, HttpError, KeyError) as error:
            raise QgsProcessingException(str(error)) from error
        return {self.OUTPUT: str(cube.output), "CATALOG": str(path) if path.name == "catalog.json" else ""}
