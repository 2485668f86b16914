"""Processing provider `cubescope` (toolbox, modeler, batch and qgis_process)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .build_cube_algorithm import BuildCubeAlgorithm
from .chips_algorithm import ChipsAlgorithm
from .composite_algorithm import CompositeAlgorithm
from .demo_cube_algorithm import DemoCubeAlgorithm
from .difference_algorithm import DifferenceAlgorithm
from .minicube_algorithm import MinicubeAlgorithm
from .point_timeseries_algorithm import PointTimeSeriesAlgorithm
from .search_items_algorithm import SearchItemsAlgorithm
from .temporal_stats_algorithm import TemporalStatsAlgorithm

ICON = Path(__file__).resolve().parents[2] / "resources" / "icon.svg"


class CubescopeProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "cubescope"

    def name(self) -> str:
        return "Cubescope"

    def longName(self) -> str:  # noqa: N802 (QGIS name)
        return "Cubescope: Earth-observation data cubes"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS name)
        self.addAlgorithm(DemoCubeAlgorithm())
        self.addAlgorithm(SearchItemsAlgorithm())
        self.addAlgorithm(PointTimeSeriesAlgorithm())
        self.addAlgorithm(CompositeAlgorithm())
        self.addAlgorithm(DifferenceAlgorithm())
        self.addAlgorithm(TemporalStatsAlgorithm())
        self.addAlgorithm(MinicubeAlgorithm())
        self.addAlgorithm(ChipsAlgorithm())
        self.addAlgorithm(BuildCubeAlgorithm())
