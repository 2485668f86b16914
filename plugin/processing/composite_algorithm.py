"""`cubescope:composite`: a temporal composite of a STAC collection over a period, as a COG."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
)

from ..tasks.thread_state import keep_thread_state
from . import analysis_params as common

#: The engine's method names, in the enum's order (0 median ... 5 quality-mosaic).
METHODS = ("median", "mean", "min", "max", "best-pixel", "quality-mosaic")


class CompositeAlgorithm(QgsProcessingAlgorithm):
    START, END, METHOD, EXTRA_BANDS = "START", "END", "METHOD", "EXTRA_BANDS"

    def name(self) -> str:
        return "composite"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Temporal composite"

    def group(self) -> str:
        return "Analysis"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "analysis"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>Composites every clear observation of the period into one raster per band or index: "
            "median, mean, min or max of the clear values; <b>best-pixel</b> as the Brazil Data Cube's "
            "LCF: scenes ordered by their share of clear pixels over the extent, per pixel the first clear "
            "value, else the first value with data; <b>quality-mosaic</b>: per pixel the clear observation "
            "with the highest NDVI. <b>Extra bands</b> adds CLEAROB (clear observations), TOTALOB "
            "(observations with data) and, for best-pixel and quality-mosaic, PROVENANCE (day of year of "
            "the chosen observation).</p>" + common.COMMON_HELP
        )

    def createInstance(self) -> CompositeAlgorithm:  # noqa: N802 (QGIS name)
        return CompositeAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        common.add_source_parameters(self)
        common.add_period(self, self.START, self.END)
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, "Method", options=list(METHODS), defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.EXTRA_BANDS, "Add CLEAROB, TOTALOB and PROVENANCE bands", defaultValue=False))
        common.add_common_parameters(self)
        common.add_fail_on_bad_input(self)  # last: the parameters before it keep their places

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        fields = common.common_request_fields(self, parameters, context)
        fields.update(
            operation="composite",
            periods=(common.period_parameter(self, parameters, self.START, self.END, context),),
            method=METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
            extra_bands=self.parameterAsBoolean(parameters, self.EXTRA_BANDS, context),
        )
        return common.run_analysis(fields, feedback, context)
