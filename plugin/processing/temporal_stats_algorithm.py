"""`cubescope:temporalstats`: a per-pixel statistic of a band or index over time, as a COG."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm, QgsProcessingParameterEnum

from ..tasks.thread_state import keep_thread_state
from . import analysis_params as common

#: The engine's statistic names, in the enum's order (0 mean ... 6 slope).
STATISTICS = ("mean", "std", "min", "max", "median", "count", "slope")


class TemporalStatsAlgorithm(QgsProcessingAlgorithm):
    START, END, STATISTIC = "START", "END", "STATISTIC"

    def name(self) -> str:
        return "temporalstats"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Per-pixel time statistics"

    def group(self) -> str:
        return "Analysis"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "analysis"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>A statistic of each pixel's clear observations in the period: mean, standard deviation "
            "(population, as numpy), min, max, median, count of clear observations, or slope (least-squares "
            "linear trend per year, time in fractional years; needs two dates). The standard deviation of "
            "NDVI over several years is the Dutch Sentinel-2 cube's classic.</p>" + common.COMMON_HELP
        )

    def createInstance(self) -> TemporalStatsAlgorithm:  # noqa: N802 (QGIS name)
        return TemporalStatsAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        common.add_source_parameters(self)
        common.add_period(self, self.START, self.END)
        self.addParameter(QgsProcessingParameterEnum(self.STATISTIC, "Statistic", options=list(STATISTICS),
                                                     defaultValue=0))
        common.add_common_parameters(self)
        common.add_fail_on_bad_input(self)  # last: the parameters before it keep their places

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        fields = common.common_request_fields(self, parameters, context)
        fields.update(
            operation="statistics",
            periods=(common.period_parameter(self, parameters, self.START, self.END, context),),
            statistic=STATISTICS[self.parameterAsEnum(parameters, self.STATISTIC, context)],
        )
        return common.run_analysis(fields, feedback, context)
