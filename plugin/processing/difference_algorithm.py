"""`cubescope:difference`: composite of period B minus composite of period A, as a COG."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm, QgsProcessingParameterEnum

from ..tasks.thread_state import keep_thread_state
from . import analysis_params as common
from .composite_algorithm import METHODS


class DifferenceAlgorithm(QgsProcessingAlgorithm):
    START_A, END_A, START_B, END_B, METHOD = "START_A", "END_A", "START_B", "END_B", "METHOD"

    def name(self) -> str:
        return "difference"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Difference between two periods"

    def group(self) -> str:
        return "Analysis"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "analysis"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>Composites each period with the chosen method (median, mean, min, max, best-pixel, "
            "quality-mosaic) and writes period B minus period A per band or index, NaN where either "
            "composite has no data. An NDVI difference of the same season in two years shows clear-cuts, "
            "fires and new construction as strongly negative values.</p>" + common.COMMON_HELP
        )

    def createInstance(self) -> DifferenceAlgorithm:  # noqa: N802 (QGIS name)
        return DifferenceAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        common.add_source_parameters(self)
        common.add_period(self, self.START_A, self.END_A, "period A, before")
        common.add_period(self, self.START_B, self.END_B, "period B, after")
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, "Composite method", options=list(METHODS),
                                                     defaultValue=0))
        common.add_common_parameters(self)
        common.add_fail_on_bad_input(self)  # last: the parameters before it keep their places

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        fields = common.common_request_fields(self, parameters, context)
        fields.update(
            operation="difference",
            periods=(
                common.period_parameter(self, parameters, self.START_A, self.END_A, context),
                common.period_parameter(self, parameters, self.START_B, self.END_B, context),
            ),
            method=METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
        )
        return common.run_analysis(fields, feedback, context)
